using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>Options of <see cref="StratusConsolidationPlanner"/>; every fraction is of host MIPS.</summary>
public sealed record StratusPolicyOptions
{
    /// <summary>Defaults tuned on the PlanetLab days (CloudSim-compatible mode).</summary>
    public static StratusPolicyOptions Default { get; } = new();

    /// <summary>Pack hosts up to this forecast utilisation (0..1].</summary>
    public double Target { get; init; } = 1.0;

    /// <summary>A host is overloaded when its forecast exceeds this (fraction, may exceed 1 because the forecast is a recent peak).</summary>
    public double Upper { get; init; } = 1.1;

    /// <summary>Hosts under this forecast utilisation are evacuation candidates (0..1].</summary>
    public double Lower { get; init; } = 0.9;

    /// <summary>At most this many migrations per round.</summary>
    public int Budget { get; init; } = 150;

    /// <summary>A VM migrated within this many intervals is not moved by evacuation (hysteresis).</summary>
    public int CooldownIntervals { get; init; } = 2;

    /// <summary>History samples (most recent first) whose maximum is the VM's demand forecast.</summary>
    public int ForecastWindow { get; init; } = 3;

    /// <summary>
    /// CPU over-commitment at initial placement when VMs ask for their whole MIPS (≥ 1): a new VM is
    /// counted at MIPS / this ratio, since VMs rarely run flat out; the first round corrects overloads.
    /// </summary>
    public double InitialOvercommit { get; init; } = 1.5;
}

/// <summary>Initial placement of new VMs, decided by the consolidation policy.</summary>
public interface IInitialPlacementPolicy
{
    /// <summary>Chooses a host for each VM in order (−1 where none fits). Never mutates the snapshot.</summary>
    /// <param name="snapshot">The cluster before placement.</param>
    /// <param name="vmsInOrder">VMs to place, in order.</param>
    /// <param name="fullDemand">True: each VM asks for its whole MIPS; false: for its snapshot demand.</param>
    int[] PlaceInitial(ConsolidationSnapshot snapshot, IReadOnlyList<int> vmsInOrder, bool fullDemand);
}

/// <summary>
/// Stratus's own consolidation policy. Differences from Beloglazov &amp; Buyya's: (1) each VM's demand
/// is forecast as the peak of its last few samples, so packing leaves room for the next interval;
/// (2) overload relief moves the fewest, cheapest VMs that bring a host back under the packing
/// target, never onto a host where the VM could not get a whole core; (3) evacuation is
/// all-or-nothing per host, least-utilised hosts first, only onto hosts already running, and only
/// with VMs not moved in the last few intervals (hysteresis); (4) a per-round migration budget
/// bounds churn; (5) new hosts are opened in order of energy efficiency (watts per MIPS at peak);
/// (6) destinations are found by exact best fit in a bucketed free-capacity index, so it scales to
/// 10,000 hosts. Pure: works on its own arrays, never on the snapshot.
/// </summary>
/// <param name="options">Thresholds and limits.</param>
public sealed class StratusConsolidationPlanner(StratusPolicyOptions options) : IConsolidationPlanner, IInitialPlacementPolicy
{
    /// <summary>The options in force.</summary>
    public StratusPolicyOptions Options => options;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public MigrationPlan Plan(ConsolidationSnapshot snapshot)
    {
        var w = new Workspace(snapshot, options, Forecasts(snapshot));
        var hostCount = snapshot.Hosts.Count;

        // 1. Overload relief.
        var overloaded = new bool[hostCount];
        for (var h = 0; h < hostCount; h++)
        {
            if (w.VmsOn[h].Count == 0)
            {
                continue;
            }
            var spec = snapshot.Hosts[h].Spec;
            if (w.Load[h] <= options.Upper * spec.TotalMips && !w.CoreStarved(h))
            {
                continue;
            }
            overloaded[h] = true;
            w.Index.Remove(h);
        }
        for (var h = 0; h < hostCount && w.Moves.Count < options.Budget; h++)
        {
            if (!overloaded[h])
            {
                continue;
            }
            var spec = snapshot.Hosts[h].Spec;
            while (w.Moves.Count < options.Budget)
            {
                var excess = w.Load[h] - (options.Target * spec.TotalMips);
                var starved = w.CoreStarved(h);
                if (excess <= 0 && !starved)
                {
                    break;
                }
                var pick = -1;
                foreach (var v in w.VmsOn[h])
                {
                    if (snapshot.Vms[v].MigratingTo >= 0)
                    {
                        continue;
                    }
                    if (snapshot.Vms[v].RequestedMips > spec.MipsPerPe)
                    {
                        pick = v;
                        break;
                    }
                    if (pick < 0 || w.BetterToRelieve(v, pick, excess))
                    {
                        pick = v;
                    }
                }
                if (pick < 0)
                {
                    break;
                }
                var to = w.BestActive(pick, overloaded, h);
                if (to < 0)
                {
                    to = w.OpenIdle(pick);
                }
                if (to < 0)
                {
                    break;
                }
                w.Move(pick, to);
            }
        }

        // 2. Evacuation of the least utilised hosts, all or nothing.
        var candidates = new List<int>();
        for (var h = 0; h < hostCount; h++)
        {
            if (w.VmsOn[h].Count > 0 && !overloaded[h] && !w.Touched[h] && w.Load[h] < options.Lower * snapshot.Hosts[h].Spec.TotalMips)
            {
                candidates.Add(h);
            }
        }
        candidates.Sort((a, b) =>
        {
            var c = (w.Load[a] / snapshot.Hosts[a].Spec.TotalMips).CompareTo(w.Load[b] / snapshot.Hosts[b].Spec.TotalMips);
            return c != 0 ? c : a.CompareTo(b);
        });
        var cooldown = options.CooldownIntervals * snapshot.SchedulingInterval;
        var evacuated = new bool[hostCount];
        var tentative = new List<(int Vm, int To)>();
        var order = new List<int>();
        foreach (var h in candidates)
        {
            if (w.Moves.Count >= options.Budget)
            {
                break;
            }
            var vms = w.VmsOn[h];
            if (w.Touched[h] || vms.Count == 0 || w.Moves.Count + vms.Count > options.Budget)
            {
                continue;
            }
            var blocked = false;
            foreach (var v in vms)
            {
                if (snapshot.Time - snapshot.Vms[v].LastMigrationTime < cooldown || snapshot.Vms[v].MigratingTo >= 0)
                {
                    blocked = true;
                    break;
                }
            }
            if (blocked)
            {
                continue;
            }
            evacuated[h] = true;
            w.Index.Remove(h);
            tentative.Clear();
            order.Clear();
            order.AddRange(vms);
            order.Sort((a, b) => w.Forecast[b].CompareTo(w.Forecast[a]));
            var ok = true;
            foreach (var v in order)
            {
                var to = w.BestActive(v, evacuated, h);
                if (to < 0)
                {
                    ok = false;
                    break;
                }
                w.Reserve(v, to, +1);
                tentative.Add((v, to));
            }
            foreach (var (v, to) in tentative)
            {
                w.Reserve(v, to, -1);
            }
            if (!ok)
            {
                evacuated[h] = false;
                w.Index.Set(h, w.Free(h));
                continue;
            }
            foreach (var (v, to) in tentative)
            {
                w.Move(v, to);
            }
            w.Index.Remove(h);
        }
        return w.BuildPlan();
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int[] PlaceInitial(ConsolidationSnapshot snapshot, IReadOnlyList<int> vmsInOrder, bool fullDemand)
    {
        var forecast = new double[snapshot.Vms.Count];
        foreach (var v in vmsInOrder)
        {
            forecast[v] = fullDemand ? snapshot.Vms[v].Spec.Mips / options.InitialOvercommit : snapshot.Vms[v].RequestedMips;
        }
        var w = new Workspace(snapshot, options, forecast);
        var result = new int[snapshot.Vms.Count];
        Array.Fill(result, -1);
        var none = new bool[snapshot.Hosts.Count];
        foreach (var v in vmsInOrder)
        {
            var to = w.BestActive(v, none, -1);
            if (to < 0)
            {
                to = w.OpenIdle(v);
            }
            if (to >= 0)
            {
                w.Place(v, to);
                result[v] = to;
            }
        }
        return result;
    }

    private double[] Forecasts(ConsolidationSnapshot snapshot)
    {
        var forecast = new double[snapshot.Vms.Count];
        for (var v = 0; v < forecast.Length; v++)
        {
            var s = snapshot.Vms[v];
            if (s.Host < 0)
            {
                continue;
            }
            var f = s.RequestedMips;
            var hist = s.History.Span;
            var n = Math.Min(options.ForecastWindow, hist.Length);
            for (var i = 0; i < n; i++)
            {
                f = Math.Max(f, hist[i] * s.Spec.Mips);
            }
            forecast[v] = Math.Min(f, s.Spec.Mips);
        }
        return forecast;
    }

    /// <summary>
    /// Free capacity (target × MIPS − forecast load) of running hosts, bucketed per host type, for
    /// exact best fit in near-constant time: the first bucket at or above the need that holds a
    /// fitting host holds the best one.
    /// </summary>
    private sealed class FreeIndex
    {
        private const int Buckets = 512;
        private readonly int[] _type;
        private readonly double[] _width;
        private readonly List<int>[][] _buckets;
        private readonly int[] _bucketOf;
        private readonly int[] _pos;
        private readonly double[] _key;

        public FreeIndex(int[] hostType, HostSpec[] types, double target)
        {
            _type = hostType;
            _width = types.Select(t => Math.Max(1e-9, target * t.TotalMips / Buckets)).ToArray();
            _buckets = new List<int>[types.Length][];
            for (var t = 0; t < types.Length; t++)
            {
                _buckets[t] = new List<int>[Buckets + 1];
                for (var b = 0; b <= Buckets; b++)
                {
                    _buckets[t][b] = [];
                }
            }
            _bucketOf = new int[hostType.Length];
            Array.Fill(_bucketOf, -1);
            _pos = new int[hostType.Length];
            _key = new double[hostType.Length];
        }

        public int Types => _buckets.Length;

        public double KeyOf(int h) => _key[h];

        public bool Contains(int h) => _bucketOf[h] >= 0;

        public void Set(int h, double free)
        {
            Remove(h);
            var t = _type[h];
            var b = BucketFor(t, free);
            var list = _buckets[t][b];
            _pos[h] = list.Count;
            list.Add(h);
            _bucketOf[h] = b;
            _key[h] = free;
        }

        public void Remove(int h)
        {
            var b = _bucketOf[h];
            if (b < 0)
            {
                return;
            }
            var list = _buckets[_type[h]][b];
            var i = _pos[h];
            var last = list[^1];
            list[i] = last;
            _pos[last] = i;
            list.RemoveAt(list.Count - 1);
            _bucketOf[h] = -1;
        }

        /// <summary>The host of type t with the least free capacity ≥ need accepted by the predicate, or −1.</summary>
        public int BestFit(int t, double need, Func<int, bool> accept, out double free)
        {
            free = double.MaxValue;
            var buckets = _buckets[t];
            for (var b = BucketFor(t, need); b <= Buckets; b++)
            {
                var best = -1;
                foreach (var h in buckets[b])
                {
                    var k = _key[h];
                    if (k < need - 1e-9 || k > free || (k == free && h > best) || !accept(h))
                    {
                        continue;
                    }
                    free = k;
                    best = h;
                }
                if (best >= 0)
                {
                    return best;
                }
            }
            return -1;
        }

        private int BucketFor(int t, double free) => free <= 0 ? 0 : (int)Math.Min(Buckets, free / _width[t]);
    }

    private sealed class Workspace
    {
        private readonly ConsolidationSnapshot _s;
        private readonly StratusPolicyOptions _o;
        private readonly int[] _hostType;
        private readonly HostSpec[] _types;
        private readonly long[] _ram;
        private readonly long[] _bw;
        private readonly int[] _location;
        private readonly int[] _idleOrder;
        private int _idleCursor;

        public Workspace(ConsolidationSnapshot s, StratusPolicyOptions o, double[] forecast)
        {
            _s = s;
            _o = o;
            Forecast = forecast;
            var hostCount = s.Hosts.Count;
            var types = new List<HostSpec>();
            _hostType = new int[hostCount];
            for (var h = 0; h < hostCount; h++)
            {
                var t = types.IndexOf(s.Hosts[h].Spec);
                if (t < 0)
                {
                    types.Add(s.Hosts[h].Spec);
                    t = types.Count - 1;
                }
                _hostType[h] = t;
            }
            _types = types.ToArray();
            Load = new double[hostCount];
            _ram = new long[hostCount];
            _bw = new long[hostCount];
            VmsOn = new List<int>[hostCount];
            Touched = new bool[hostCount];
            Index = new FreeIndex(_hostType, _types, o.Target);
            for (var h = 0; h < hostCount; h++)
            {
                VmsOn[h] = [.. s.HostVms[h]];
                foreach (var v in VmsOn[h])
                {
                    Load[h] += forecast[v];
                    _ram[h] += s.Vms[v].HeldRamMb;
                    _bw[h] += s.Vms[v].HeldBandwidth;
                }
                if (VmsOn[h].Count > 0)
                {
                    Index.Set(h, Free(h));
                }
            }
            _location = new int[s.Vms.Count];
            for (var v = 0; v < _location.Length; v++)
            {
                _location[v] = s.Vms[v].Host;
            }
            _idleOrder = Enumerable.Range(0, hostCount)
                .OrderBy(h => s.Hosts[h].Spec.Power.PeakWatts / s.Hosts[h].Spec.TotalMips)
                .ThenBy(h => h)
                .ToArray();
        }

        public double[] Forecast { get; }

        public double[] Load { get; }

        public List<int>[] VmsOn { get; }

        public bool[] Touched { get; }

        public FreeIndex Index { get; }

        public List<MigrationMove> Moves { get; } = [];

        public double Free(int h) => (_o.Target * _s.Hosts[h].Spec.TotalMips) - Load[h];

        public bool CoreStarved(int h)
        {
            var pe = _s.Hosts[h].Spec.MipsPerPe;
            foreach (var v in VmsOn[h])
            {
                if (_s.Vms[v].RequestedMips > pe)
                {
                    return true;
                }
            }
            return false;
        }

        public bool Fits(int h, int v)
        {
            var spec = _s.Hosts[h].Spec;
            var vm = _s.Vms[v];
            return vm.Spec.Mips <= spec.MipsPerPe
                && Load[h] + Forecast[v] <= _o.Target * spec.TotalMips
                && _ram[h] + vm.HeldRamMb <= spec.RamMb
                && _bw[h] + vm.HeldBandwidth <= spec.BandwidthMbps;
        }

        public bool BetterToRelieve(int a, int b, double excess)
        {
            // Prefer VMs whose removal alone clears the excess, then the cheapest to move (least RAM), then the smallest such; else the largest.
            var aClears = Forecast[a] >= excess;
            var bClears = Forecast[b] >= excess;
            if (aClears != bClears)
            {
                return aClears;
            }
            if (aClears)
            {
                var ra = _s.Vms[a].Spec.RamMb;
                var rb = _s.Vms[b].Spec.RamMb;
                return ra != rb ? ra < rb : Forecast[a] < Forecast[b];
            }
            return Forecast[a] > Forecast[b];
        }

        /// <summary>Best fit among running hosts: least free capacity left that still fits.</summary>
        public int BestActive(int v, bool[] excluded, int self)
        {
            var best = -1;
            var bestFree = double.MaxValue;
            var need = Forecast[v];
            for (var t = 0; t < Index.Types; t++)
            {
                if (_s.Vms[v].Spec.Mips > _types[t].MipsPerPe)
                {
                    continue;
                }
                var h = Index.BestFit(t, need, x => x != self && !excluded[x] && Fits(x, v), out var free);
                if (h >= 0 && (free < bestFree || (free == bestFree && h < best)))
                {
                    bestFree = free;
                    best = h;
                }
            }
            return best;
        }

        /// <summary>The most energy-efficient host with no VMs that fits the VM.</summary>
        public int OpenIdle(int v)
        {
            while (_idleCursor < _idleOrder.Length && VmsOn[_idleOrder[_idleCursor]].Count > 0)
            {
                _idleCursor++;
            }
            for (var i = _idleCursor; i < _idleOrder.Length; i++)
            {
                var h = _idleOrder[i];
                if (VmsOn[h].Count == 0 && !Index.Contains(h) && Fits(h, v))
                {
                    return h;
                }
            }
            return -1;
        }

        public void Reserve(int v, int h, int sign)
        {
            Load[h] += sign * Forecast[v];
            _ram[h] += sign * _s.Vms[v].HeldRamMb;
            _bw[h] += sign * _s.Vms[v].HeldBandwidth;
            if (Index.Contains(h))
            {
                Index.Set(h, Free(h));
            }
        }

        public void Place(int v, int to)
        {
            VmsOn[to].Add(v);
            Load[to] += Forecast[v];
            _ram[to] += _s.Vms[v].HeldRamMb;
            _bw[to] += _s.Vms[v].HeldBandwidth;
            _location[v] = to;
            Index.Set(to, Free(to));
        }

        public void Move(int v, int to)
        {
            var from = _location[v];
            VmsOn[from].Remove(v);
            Load[from] -= Forecast[v];
            _ram[from] -= _s.Vms[v].HeldRamMb;
            _bw[from] -= _s.Vms[v].HeldBandwidth;
            if (Index.Contains(from))
            {
                Index.Set(from, Free(from));
            }
            VmsOn[to].Add(v);
            Load[to] += Forecast[v];
            _ram[to] += _s.Vms[v].HeldRamMb;
            _bw[to] += _s.Vms[v].HeldBandwidth;
            Index.Set(to, Free(to));
            _location[v] = to;
            Touched[from] = true;
            Touched[to] = true;
            Moves.Add(new MigrationMove(v, _s.Vms[v].Host, to));
        }

        public MigrationPlan BuildPlan()
        {
            var off = new List<int>();
            var on = new List<int>();
            for (var h = 0; h < VmsOn.Length; h++)
            {
                if (VmsOn[h].Count == 0 && _s.HostVms[h].Count > 0)
                {
                    off.Add(h);
                }
                if (VmsOn[h].Count > 0 && !_s.Hosts[h].IsOn)
                {
                    on.Add(h);
                }
            }
            return new MigrationPlan(Moves, off, on, []);
        }
    }
}
