namespace Stratus.Scheduler.Consolidation;

/// <summary>Options of <see cref="StratusConsolidationPlanner"/>; every fraction is of host MIPS.</summary>
public sealed record StratusPolicyOptions
{
    /// <summary>Defaults tuned on the PlanetLab days.</summary>
    public static StratusPolicyOptions Default { get; } = new();

    /// <summary>Pack hosts up to this forecast utilisation (0..1).</summary>
    public double Target { get; init; } = 1.0;

    /// <summary>A host is overloaded when its forecast exceeds this (0..1).</summary>
    public double Upper { get; init; } = 1.1;

    /// <summary>Hosts under this utilisation are evacuation candidates (0..1).</summary>
    public double Lower { get; init; } = 0.9;

    /// <summary>At most this many migrations per round.</summary>
    public int Budget { get; init; } = 150;

    /// <summary>A VM migrated within this many intervals is not moved by evacuation.</summary>
    public int CooldownIntervals { get; init; } = 2;

    /// <summary>History samples (most recent first) whose maximum is the VM's demand forecast.</summary>
    public int ForecastWindow { get; init; } = 3;
}

/// <summary>
/// Stratus's own consolidation policy. Differences from Beloglazov &amp; Buyya's: (1) each VM's demand
/// is forecast as the peak of its last few samples, so packing leaves room for the next interval;
/// (2) overload relief moves the fewest, cheapest VMs that bring a host back under the packing
/// target, never onto a host where a VM could not get a whole core; (3) evacuation is all-or-nothing
/// per host, most-wasteful hosts first (lowest utilisation, less efficient machine types first),
/// only onto hosts already running, and only with VMs not moved in the last few intervals
/// (hysteresis); (4) a per-round migration budget bounds churn; (5) new hosts are opened in order
/// of energy efficiency (watts per MIPS at peak). Pure: works on its own arrays, never on the snapshot.
/// </summary>
/// <param name="options">Thresholds and limits.</param>
public sealed class StratusConsolidationPlanner(StratusPolicyOptions options) : IConsolidationPlanner
{
    /// <summary>The options in force.</summary>
    public StratusPolicyOptions Options => options;

    /// <inheritdoc />
    public MigrationPlan Plan(ConsolidationSnapshot snapshot)
    {
        var hostCount = snapshot.Hosts.Count;
        var vmCount = snapshot.Vms.Count;
        var forecast = new double[vmCount];
        for (var v = 0; v < vmCount; v++)
        {
            var s = snapshot.Vms[v];
            if (s.Host < 0)
            {
                continue;
            }
            var f = s.RequestedMips;
            var hist = s.History.Span;
            var w = Math.Min(options.ForecastWindow, hist.Length);
            for (var i = 0; i < w; i++)
            {
                f = Math.Max(f, hist[i] * s.Spec.Mips);
            }
            forecast[v] = Math.Min(f, s.Spec.Mips);
        }

        var load = new double[hostCount];
        var ram = new long[hostCount];
        var bw = new long[hostCount];
        var vmsOn = new List<int>[hostCount];
        var active = new bool[hostCount];
        for (var h = 0; h < hostCount; h++)
        {
            vmsOn[h] = new List<int>(snapshot.HostVms[h]);
            foreach (var v in vmsOn[h])
            {
                load[h] += forecast[v];
                ram[h] += snapshot.Vms[v].HeldRamMb;
                bw[h] += snapshot.Vms[v].HeldBandwidth;
            }
            active[h] = vmsOn[h].Count > 0;
        }
        var location = new int[vmCount];
        for (var v = 0; v < vmCount; v++)
        {
            location[v] = snapshot.Vms[v].Host;
        }

        var moves = new List<MigrationMove>();
        var receivedOrGave = new bool[hostCount];
        var cooldown = options.CooldownIntervals * snapshot.SchedulingInterval;
        bool Cooling(int v) => snapshot.Time - snapshot.Vms[v].LastMigrationTime < cooldown;
        double Cap(int h) => snapshot.Hosts[h].Spec.TotalMips;

        bool Fits(int h, int v, double limit)
        {
            var spec = snapshot.Hosts[h].Spec;
            var vm = snapshot.Vms[v];
            return vm.Spec.Mips <= spec.MipsPerPe
                && load[h] + forecast[v] <= limit * spec.TotalMips
                && ram[h] + vm.HeldRamMb <= spec.RamMb
                && bw[h] + vm.HeldBandwidth <= spec.BandwidthMbps;
        }

        void Move(int v, int to)
        {
            var from = location[v];
            vmsOn[from].Remove(v);
            load[from] -= forecast[v];
            ram[from] -= snapshot.Vms[v].HeldRamMb;
            bw[from] -= snapshot.Vms[v].HeldBandwidth;
            vmsOn[to].Add(v);
            load[to] += forecast[v];
            ram[to] += snapshot.Vms[v].HeldRamMb;
            bw[to] += snapshot.Vms[v].HeldBandwidth;
            active[to] = true;
            location[v] = to;
            receivedOrGave[from] = true;
            receivedOrGave[to] = true;
            moves.Add(new MigrationMove(v, snapshot.Vms[v].Host, to));
        }

        // Idle hosts to open, most efficient first.
        var idleOrder = Enumerable.Range(0, hostCount)
            .OrderBy(h => snapshot.Hosts[h].Spec.Power.PeakWatts / snapshot.Hosts[h].Spec.TotalMips)
            .ThenBy(h => h)
            .ToArray();

        int BestActive(int v, double limit, bool[]? excluded, int self)
        {
            var best = -1;
            var bestSlack = double.MaxValue;
            for (var h = 0; h < hostCount; h++)
            {
                if (!active[h] || h == self || (excluded is not null && excluded[h]) || !Fits(h, v, limit))
                {
                    continue;
                }
                var slack = (limit * Cap(h)) - load[h] - forecast[v];
                if (slack < bestSlack)
                {
                    bestSlack = slack;
                    best = h;
                }
            }
            return best;
        }

        int OpenIdle(int v)
        {
            foreach (var h in idleOrder)
            {
                if (!active[h] && vmsOn[h].Count == 0 && Fits(h, v, options.Target))
                {
                    return h;
                }
            }
            return -1;
        }

        // 1. Overload relief.
        var overloaded = new bool[hostCount];
        for (var h = 0; h < hostCount; h++)
        {
            if (!active[h])
            {
                continue;
            }
            var spec = snapshot.Hosts[h].Spec;
            var peViolation = vmsOn[h].Exists(v => snapshot.Vms[v].RequestedMips > spec.MipsPerPe);
            if (load[h] <= options.Upper * spec.TotalMips && !peViolation)
            {
                continue;
            }
            overloaded[h] = true;
            while (moves.Count < options.Budget)
            {
                var excess = load[h] - (options.Target * spec.TotalMips);
                var pick = -1;
                foreach (var v in vmsOn[h])
                {
                    if (snapshot.Vms[v].MigratingTo >= 0)
                    {
                        continue;
                    }
                    if (snapshot.Vms[v].Spec.Mips > spec.MipsPerPe && snapshot.Vms[v].RequestedMips > spec.MipsPerPe)
                    {
                        pick = v;
                        break;
                    }
                    if (pick < 0 || Better(v, pick, excess))
                    {
                        pick = v;
                    }
                }
                if (pick < 0 || (excess <= 0 && !vmsOn[h].Exists(v => snapshot.Vms[v].RequestedMips > spec.MipsPerPe)))
                {
                    break;
                }
                var to = BestActive(pick, options.Target, overloaded, h);
                if (to < 0)
                {
                    to = OpenIdle(pick);
                }
                if (to < 0)
                {
                    break;
                }
                Move(pick, to);
            }
        }

        bool Better(int a, int b, double excess)
        {
            // Prefer VMs whose removal alone clears the excess, then the cheapest to move (least RAM), then the largest.
            var aClears = forecast[a] >= excess;
            var bClears = forecast[b] >= excess;
            if (aClears != bClears)
            {
                return aClears;
            }
            if (aClears)
            {
                var ra = snapshot.Vms[a].Spec.RamMb;
                var rb = snapshot.Vms[b].Spec.RamMb;
                return ra != rb ? ra < rb : forecast[a] < forecast[b];
            }
            return forecast[a] > forecast[b];
        }

        // 2. Evacuation of wasteful hosts, all or nothing.
        var candidates = Enumerable.Range(0, hostCount)
            .Where(h => active[h] && !overloaded[h] && !receivedOrGave[h] && load[h] < options.Lower * Cap(h))
            .OrderBy(h => load[h] / Cap(h))
            .ThenByDescending(h => snapshot.Hosts[h].Spec.Power.PeakWatts / Cap(h))
            .ToList();
        var evacuated = new bool[hostCount];
        var tentative = new List<(int Vm, int To)>();
        foreach (var h in candidates)
        {
            if (receivedOrGave[h] || vmsOn[h].Count == 0)
            {
                continue;
            }
            if (moves.Count + vmsOn[h].Count > options.Budget)
            {
                continue;
            }
            if (vmsOn[h].Exists(v => Cooling(v) || snapshot.Vms[v].MigratingTo >= 0))
            {
                continue;
            }
            evacuated[h] = true;
            tentative.Clear();
            var ok = true;
            foreach (var v in vmsOn[h].OrderByDescending(v => forecast[v]).ToList())
            {
                var to = BestActive(v, options.Target, evacuated, h);
                if (to < 0)
                {
                    ok = false;
                    break;
                }
                // Tentatively account, so the next VM of this host sees the load.
                load[to] += forecast[v];
                ram[to] += snapshot.Vms[v].HeldRamMb;
                bw[to] += snapshot.Vms[v].HeldBandwidth;
                tentative.Add((v, to));
            }
            foreach (var (v, to) in tentative)
            {
                load[to] -= forecast[v];
                ram[to] -= snapshot.Vms[v].HeldRamMb;
                bw[to] -= snapshot.Vms[v].HeldBandwidth;
            }
            if (!ok)
            {
                evacuated[h] = false;
                continue;
            }
            foreach (var (v, to) in tentative)
            {
                Move(v, to);
            }
            active[h] = false;
        }
        return BuildPlan(snapshot, moves, vmsOn);
    }

    private static MigrationPlan BuildPlan(ConsolidationSnapshot snapshot, List<MigrationMove> moves, List<int>[] vmsOn)
    {
        var off = new List<int>();
        var on = new List<int>();
        for (var h = 0; h < vmsOn.Length; h++)
        {
            if (vmsOn[h].Count == 0 && snapshot.HostVms[h].Count > 0)
            {
                off.Add(h);
            }
            if (vmsOn[h].Count > 0 && !snapshot.Hosts[h].IsOn)
            {
                on.Add(h);
            }
        }
        return new MigrationPlan(moves, off, on, []);
    }
}
