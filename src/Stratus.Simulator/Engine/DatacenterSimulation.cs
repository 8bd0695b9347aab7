using System.Diagnostics;
using Stratus.Scheduler.Consolidation;
using Stratus.Simulator.Scenarios;
using Stratus.Simulator.Traces;
using System.Runtime.CompilerServices;

namespace Stratus.Simulator.Engine;

/// <summary>A VM to simulate: its type and its CPU trace (fractions at the scheduling interval).</summary>
/// <param name="Spec">VM type.</param>
/// <param name="Samples">Utilisation samples; sample k applies at k × interval.</param>
public sealed record SimulatedVm(VmSpec Spec, double[] Samples);

/// <summary>
/// Discrete-event datacenter simulation with a virtual clock. In CloudSim mode it reproduces
/// CloudSim 3.0.3's power experiment accounting: hosts updated at every event, energy integrated
/// trapezoidally between events (a host whose utilisation was 0 at the start of a step draws 0),
/// live migration lasting RAM / (bandwidth / 2) with the VM at 90 % on the source and 10 % on the
/// destination, SLATAH from host state history, PDM from VM state history, VMs whose demand
/// reaches 0 retired, first scheduling round at 300.1 s. One instance per run.
/// </summary>
public sealed class DatacenterSimulation
{
    private const double FirstEventOffset = 0.1;

    private struct Entry
    {
        public int Vm;
        public bool MigratingIn;
        public double Allocated;
        public int Ram;
        public long Bw;
    }

    private readonly record struct Event(int Vm, int Target);

    private readonly bool _cloudSim;
    private readonly bool _retireIdle;
    private readonly bool _fullInitialDemand;
    private readonly double _interval;
    private readonly double _duration;
    private readonly RealisticSpec _realistic;
    private readonly IConsolidationPlanner? _planner;
    private readonly IOverloadDetector _initialDetector;

    private readonly HostSpec[] _hostSpec;
    private readonly List<Entry>[] _hostVms;
    private readonly double[] _util;
    private readonly double[] _prevUtil;
    private readonly long[] _ramFree;
    private readonly long[] _bwFree;
    private readonly bool[] _on;
    private readonly bool[] _prevOn;
    private readonly bool[] _dirty;
    private readonly List<int> _dirtyList = [];
    private readonly double[] _hLastTime;
    private readonly double[] _hLastAlloc;
    private readonly double[] _hLastReq;
    private readonly bool[] _hLastActive;
    private double _slaTime;
    private double _activeTime;

    private readonly VmSpec[] _vmSpec;
    private readonly double[][] _samples;
    private readonly int[] _vmHost;
    private readonly int[] _migratingTo;
    private readonly bool[] _inMigration;
    private readonly bool[] _removed;
    private readonly double[] _requested;
    private readonly double[] _reqTime;
    private readonly double[] _histBuf;
    private readonly int[] _histPos;
    private readonly int[] _histLen;
    private readonly double[] _histPrevTime;
    private readonly int[] _curRam;
    private readonly long[] _curBw;
    private readonly double[] _lastMigration;
    private readonly double[] _vLastTime;
    private readonly double[] _vLastAlloc;
    private readonly double[] _vLastReq;
    private readonly bool[] _vLastInMig;
    private double _totalRequested;
    private double _underMigration;

    private readonly EventQueue<Event> _events = new();
    private double _pointTime = double.NaN;
    private PlanetLabTrace.InterpolationPoint _point;
    private bool _historyTick;
    private double _lastProcess;
    private double _energyJ;
    private readonly double _floorJ;
    private double _servedFloorJ;
    private int _migrations;
    private readonly double _bestWattsPerMips;
    private readonly double _maxHostMips;
    private readonly List<SeriesPoint> _series = [];
    private double[] _scratchReq = new double[16];
    private double[] _scratchAlloc = new double[16];
    private MigrationRole[] _scratchRoles = new MigrationRole[16];

    /// <summary>Builds a run.</summary>
    /// <param name="hosts">Hosts in CloudSim's list order.</param>
    /// <param name="vms">VMs in id order.</param>
    /// <param name="mode">Fidelity mode.</param>
    /// <param name="interval">Scheduling interval (s).</param>
    /// <param name="duration">Simulated time (s); events at or after it are not processed.</param>
    /// <param name="planner">Consolidation planner (null: no migrations).</param>
    /// <param name="initialDetector">Overload check used by the initial power-aware placement.</param>
    /// <param name="realistic">Realistic-mode parameters.</param>
    /// <param name="retireIdleVms">Retire VMs whose demand reaches 0 (CloudSim's behaviour).</param>
    /// <param name="fullInitialDemand">Initial placement asks for each VM's full MIPS (CloudSim) rather than its first sample.</param>
    public DatacenterSimulation(IReadOnlyList<HostSpec> hosts, IReadOnlyList<SimulatedVm> vms, SimulationMode mode, double interval, double duration,
        IConsolidationPlanner? planner, IOverloadDetector initialDetector, RealisticSpec? realistic = null, bool? retireIdleVms = null, bool fullInitialDemand = true)
    {
        _fullInitialDemand = fullInitialDemand;
        _retireIdle = retireIdleVms ?? mode == SimulationMode.CloudSim;
        _cloudSim = mode == SimulationMode.CloudSim;
        _interval = interval;
        _duration = duration;
        _planner = planner;
        _initialDetector = initialDetector;
        _realistic = realistic ?? new RealisticSpec();
        var h = hosts.Count;
        _hostSpec = hosts.ToArray();
        _hostVms = new List<Entry>[h];
        for (var i = 0; i < h; i++)
        {
            _hostVms[i] = [];
        }
        _util = new double[h];
        _prevUtil = new double[h];
        _ramFree = _hostSpec.Select(s => (long)s.RamMb).ToArray();
        _bwFree = _hostSpec.Select(s => s.BandwidthMbps).ToArray();
        _on = new bool[h];
        _prevOn = new bool[h];
        _dirty = new bool[h];
        _hLastTime = new double[h];
        Array.Fill(_hLastTime, -1);
        _hLastAlloc = new double[h];
        _hLastReq = new double[h];
        _hLastActive = new bool[h];

        var n = vms.Count;
        _vmSpec = vms.Select(v => v.Spec).ToArray();
        _samples = vms.Select(v => v.Samples).ToArray();
        _vmHost = new int[n];
        Array.Fill(_vmHost, -1);
        _migratingTo = new int[n];
        Array.Fill(_migratingTo, -1);
        _inMigration = new bool[n];
        _removed = new bool[n];
        _requested = new double[n];
        _reqTime = new double[n];
        Array.Fill(_reqTime, double.NaN);
        _histBuf = new double[n * HistoryBuffer];
        _histPos = new int[n];
        Array.Fill(_histPos, HistoryBuffer);
        _histLen = new int[n];
        _histPrevTime = new double[n];
        _curRam = _vmSpec.Select(v => v.RamMb).ToArray();
        _curBw = _vmSpec.Select(v => v.Bandwidth).ToArray();
        _lastMigration = new double[n];
        Array.Fill(_lastMigration, double.NegativeInfinity);
        _vLastTime = new double[n];
        Array.Fill(_vLastTime, -1);
        _vLastAlloc = new double[n];
        _vLastReq = new double[n];
        _vLastInMig = new bool[n];
        _bestWattsPerMips = _hostSpec.Min(s => s.Power.PeakWatts / s.TotalMips);
        _maxHostMips = _hostSpec.Max(s => s.TotalMips);

        // Workload floor: every sample of every VM served for one interval at the most efficient host's peak.
        var steps = (int)Math.Ceiling(duration / interval);
        for (var v = 0; v < n; v++)
        {
            var samples = _samples[v];
            double sum = 0;
            for (var k = 0; k < Math.Min(steps, samples.Length - 1); k++)
            {
                sum += samples[k];
            }
            _floorJ += sum * _vmSpec[v].Mips * _bestWattsPerMips * interval;
        }
    }

    private const int HistoryBuffer = 2 * PlanningState.HistoryLength;

    private ReservationMode Reservations => _cloudSim ? ReservationMode.CloudSimCompatible : ReservationMode.Reserved;

    /// <summary>Runs the whole scenario and returns the measurements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public SimulationResult Run(string scenarioName, string policyName)
    {
        var sw = Stopwatch.StartNew();
        PlaceInitial();
        _events.ScheduleAt(FirstEventOffset + _interval, new Event(-1, -1));
        while (_events.Count > 0 && _events.PeekTime() < _duration)
        {
            var e = _events.Dequeue();
            if (e.Vm < 0)
            {
                Tick(_events.Now);
            }
            else
            {
                CompleteMigration(_events.Now, e.Vm, e.Target);
            }
        }
        sw.Stop();
        var slatah = _activeTime > 0 ? _slaTime / _activeTime : 0;
        var pdm = _totalRequested > 0 ? _underMigration / _totalRequested : 0;
        var energyKwh = _energyJ / (3600 * 1000);
        var days = _duration / 86_400;
        return new SimulationResult
        {
            Scenario = scenarioName,
            Mode = _cloudSim ? "cloud_sim" : "realistic",
            Policy = policyName,
            Hosts = _hostSpec.Length,
            Vms = _vmSpec.Length,
            EnergyKwh = energyKwh,
            Migrations = _migrations,
            MigrationsPerVmPerDay = _vmSpec.Length == 0 ? 0 : _migrations / (double)_vmSpec.Length / days,
            SlatahPct = slatah * 100,
            PdmPct = pdm * 100,
            SlavPct = slatah * pdm * 100,
            Esv = energyKwh * slatah * pdm,
            EnergyFloorKwh = _floorJ / (3600 * 1000),
            ServedFloorKwh = _servedFloorJ / (3600 * 1000),
            MeanActiveHosts = _series.Count == 0 ? 0 : _series.Average(p => p.ActiveHosts),
            MeanLowerBoundHosts = _series.Count == 0 ? 0 : _series.Average(p => p.LowerBoundHosts),
            SimulatedS = _duration,
            EngineS = sw.Elapsed.TotalSeconds,
            Series = _series,
        };
    }

    private void PlaceInitial()
    {
        var order = Enumerable.Range(0, _vmSpec.Length).ToArray();
        if (!_fullInitialDemand)
        {
            for (var v = 0; v < order.Length; v++)
            {
                _requested[v] = _samples[v][0] * _vmSpec[v].Mips;
            }
        }
        var snapshot = BuildSnapshot(0);
        var hosts = _planner is IInitialPlacementPolicy policy
            ? policy.PlaceInitial(snapshot, order, _fullInitialDemand)
            : PowerAwareConsolidationPlanner.PlaceInitial(snapshot, order, _initialDetector, _fullInitialDemand);
        for (var v = 0; v < hosts.Length; v++)
        {
            var h = hosts[v];
            if (h < 0)
            {
                _removed[v] = true;
                continue;
            }
            var ram = _vmSpec[v].RamMb;
            var bw = _vmSpec[v].Bandwidth;
            _hostVms[h].Add(new Entry { Vm = v, Allocated = _fullInitialDemand ? _vmSpec[v].Mips : _requested[v], Ram = ram, Bw = bw });
            _ramFree[h] -= ram;
            _bwFree[h] -= bw;
            _curRam[v] = ram;
            _curBw[v] = bw;
            _vmHost[v] = h;
            _on[h] = true;
        }
    }

    private void Tick(double t)
    {
        if (!(t > _lastProcess))
        {
            return;
        }
        UpdateAll(t);
        if (!_cloudSim)
        {
            for (var h = 0; h < _hostSpec.Length; h++)
            {
                if (_on[h] && _hostVms[h].Count == 0)
                {
                    _on[h] = false;
                }
            }
        }
        var started = 0;
        if (_planner is not null)
        {
            var plan = _planner.Plan(BuildSnapshot(t));
            if (_cloudSim)
            {
                foreach (var v in plan.ReservationsDropped)
                {
                    DropReservation(v);
                }
            }
            started = StartMigrations(t, plan.Moves);
        }
        RecordSeries(t, started);
        _events.ScheduleAt(t + _interval, new Event(-1, -1));
    }

    private void DropReservation(int v)
    {
        _curRam[v] = 0;
        _curBw[v] = 0;
        var h = _vmHost[v];
        if (h < 0)
        {
            return;
        }
        var list = _hostVms[h];
        for (var i = 0; i < list.Count; i++)
        {
            var e = list[i];
            if (e.Vm == v && !e.MigratingIn)
            {
                _ramFree[h] += e.Ram;
                _bwFree[h] += e.Bw;
                e.Ram = 0;
                e.Bw = 0;
                list[i] = e;
            }
        }
    }

    private int StartMigrations(double t, IReadOnlyList<MigrationMove> moves)
    {
        int[]? inCount = null, outCount = null;
        if (!_cloudSim)
        {
            inCount = new int[_hostSpec.Length];
            outCount = new int[_hostSpec.Length];
        }
        var started = 0;
        foreach (var m in moves)
        {
            var v = m.Vm;
            var target = m.To;
            var source = _vmHost[v];
            if (_removed[v] || source < 0 || target == source)
            {
                continue;
            }
            var delay = _vmSpec[v].RamMb / ((double)_hostSpec[target].BandwidthMbps / (2 * 8000));
            if (!_cloudSim)
            {
                if (_inMigration[v] || inCount![target] >= _realistic.MaxMigrationsPerHost || outCount![source] >= _realistic.MaxMigrationsPerHost)
                {
                    continue;
                }
                var ramNeed = _vmSpec[v].RamMb;
                if (_ramFree[target] < ramNeed)
                {
                    continue;
                }
                inCount[target]++;
                outCount[source]++;
                if (!_on[target])
                {
                    _on[target] = true;
                    delay += _realistic.PowerOnSeconds;
                    _energyJ += _realistic.PowerOnPeakSeconds * _hostSpec[target].Power.PeakWatts;
                }
            }
            _inMigration[v] = true;
            _migratingTo[v] = target;
            _lastMigration[v] = t;
            var list = _hostVms[target];
            var already = false;
            foreach (var e in list)
            {
                if (e.Vm == v && e.MigratingIn)
                {
                    already = true;
                }
            }
            if (!already)
            {
                var ram = RequestedRam(v);
                var bw = RequestedBw(v);
                list.Add(new Entry { Vm = v, MigratingIn = true, Ram = ram, Bw = bw });
                _ramFree[target] -= ram;
                _bwFree[target] -= bw;
                _curRam[v] = ram;
                _curBw[v] = bw;
                _on[target] = true;
            }
            MarkDirty(target);
            MarkDirty(source);
            _migrations++;
            started++;
            _events.ScheduleAt(t + delay, new Event(v, target));
        }
        FlushDirty(t, removeIdle: false);
        return started;
    }

    private void CompleteMigration(double t, int v, int target)
    {
        if (t > _lastProcess)
        {
            UpdateAll(t);
        }
        var current = _vmHost[v];
        if (current >= 0)
        {
            RemoveEntry(current, v, migratingIn: false);
            MarkDirty(current);
        }
        RemoveEntry(target, v, migratingIn: true);
        var ram = RequestedRam(v);
        var bw = RequestedBw(v);
        _hostVms[target].Add(new Entry { Vm = v, Ram = ram, Bw = bw });
        _ramFree[target] -= ram;
        _bwFree[target] -= bw;
        _curRam[v] = ram;
        _curBw[v] = bw;
        _vmHost[v] = target;
        _inMigration[v] = false;
        _migratingTo[v] = -1;
        MarkDirty(target);
        if (!(_events.PeekTime() == t))
        {
            FlushDirty(t, removeIdle: _retireIdle);
        }
    }

    private void RemoveEntry(int host, int v, bool migratingIn)
    {
        var list = _hostVms[host];
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i].Vm == v && list[i].MigratingIn == migratingIn)
            {
                _ramFree[host] += list[i].Ram;
                _bwFree[host] += list[i].Bw;
                list.RemoveAt(i);
                break;
            }
        }
        if (_cloudSim)
        {
            _curRam[v] = 0;
            _curBw[v] = 0;
        }
    }

    private int RequestedRam(int v) => _cloudSim ? _curRam[v] : _vmSpec[v].RamMb;

    private long RequestedBw(int v) => _cloudSim ? _curBw[v] : _vmSpec[v].Bandwidth;

    private void MarkDirty(int h)
    {
        if (!_dirty[h])
        {
            _dirty[h] = true;
            _dirtyList.Add(h);
        }
    }

    private void FlushDirty(double t, bool removeIdle)
    {
        foreach (var h in _dirtyList)
        {
            _dirty[h] = false;
            UpdateHost(h, t);
        }
        if (removeIdle)
        {
            foreach (var h in _dirtyList)
            {
                RemoveIdleVms(h);
            }
        }
        _dirtyList.Clear();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void UpdateAll(double t)
    {
        var dt = t - _lastProcess;
        var hosts = _hostSpec.Length;
        for (var h = 0; h < hosts; h++)
        {
            _prevUtil[h] = _util[h];
            _prevOn[h] = _on[h];
            // An empty host already recorded as idle (and off, in realistic mode) would only record
            // another idle entry, which changes no metric: skip it.
            if (_hostVms[h].Count == 0 && _util[h] == 0 && !_hLastActive[h] && (_cloudSim || !_on[h]))
            {
                continue;
            }
            UpdateHost(h, t);
        }
        if (dt > 0)
        {
            double frame = 0;
            for (var h = 0; h < hosts; h++)
            {
                frame += StepEnergy(h, dt);
            }
            _energyJ += frame;
        }
        if (_retireIdle)
        {
            for (var h = 0; h < hosts; h++)
            {
                RemoveIdleVms(h);
            }
        }
        _lastProcess = t;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double StepEnergy(int h, double dt)
    {
        var spec = _hostSpec[h];
        var from = Clamp(_prevUtil[h] / spec.TotalMips);
        var to = Clamp(_util[h] / spec.TotalMips);
        if (_cloudSim)
        {
            if (from == 0)
            {
                return 0;
            }
        }
        else if (!_prevOn[h])
        {
            return 0;
        }
        var pf = spec.Power.PowerAt(from);
        var pt = spec.Power.PowerAt(to);
        return (pf + ((pt - pf) / 2)) * dt;
    }

    private static double Clamp(double u) => u is > 1 and < 1.01 ? 1 : Math.Min(u, 1);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RemoveIdleVms(int h)
    {
        var list = _hostVms[h];
        for (var i = list.Count - 1; i >= 0; i--)
        {
            var v = list[i].Vm;
            if (!_inMigration[v] && _requested[v] == 0)
            {
                _ramFree[h] += list[i].Ram;
                _bwFree[h] += list[i].Bw;
                list.RemoveAt(i);
                _removed[v] = true;
                _vmHost[v] = -1;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrepareTime(double t)
    {
        if (t != _pointTime)
        {
            _pointTime = t;
            _point = PlanetLabTrace.InterpolationPoint.At(t, _interval);
            _historyTick = (t - FirstEventOffset) % _interval == 0;
        }
    }

    private void UpdateVm(int v, double t)
    {
        if (_reqTime[v] == t)
        {
            return;
        }
        PrepareTime(t);
        var u = PlanetLabTrace.UtilizationAt(_samples[v], _point);
        _requested[v] = u * _vmSpec[v].Mips;
        _reqTime[v] = t;
        if (_historyTick && t > _histPrevTime[v])
        {
            if (t != 0 || u != 0)
            {
                AddHistory(v, u);
            }
            _histPrevTime[v] = t;
        }
    }

    private void AddHistory(int v, double u)
    {
        var baseIdx = v * HistoryBuffer;
        var pos = _histPos[v];
        if (pos == 0)
        {
            var keep = Math.Min(_histLen[v], PlanningState.HistoryLength - 1);
            Array.Copy(_histBuf, baseIdx, _histBuf, baseIdx + HistoryBuffer - keep, keep);
            pos = HistoryBuffer - keep;
        }
        pos--;
        _histBuf[baseIdx + pos] = u;
        _histPos[v] = pos;
        _histLen[v] = Math.Min(_histLen[v] + 1, PlanningState.HistoryLength);
    }

    private ReadOnlyMemory<double> History(int v) => new(_histBuf, (v * HistoryBuffer) + _histPos[v], _histLen[v]);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void UpdateHost(int h, double t)
    {
        var list = _hostVms[h];
        var n = list.Count;
        if (_scratchReq.Length < n)
        {
            _scratchReq = new double[n * 2];
            _scratchAlloc = new double[n * 2];
            _scratchRoles = new MigrationRole[n * 2];
        }
        for (var i = 0; i < n; i++)
        {
            var e = list[i];
            UpdateVm(e.Vm, t);
            _scratchReq[i] = _requested[e.Vm];
            _scratchRoles[i] = e.MigratingIn ? MigrationRole.In : _inMigration[e.Vm] ? MigrationRole.Out : MigrationRole.None;
        }
        var spec = _hostSpec[h];
        CloudSimCpuScheduler.Allocate(spec.TotalMips, spec.MipsPerPe, _scratchReq.AsSpan(0, n), _scratchRoles.AsSpan(0, n), _scratchAlloc.AsSpan(0, n));
        double util = 0, hostReq = 0;
        for (var i = 0; i < n; i++)
        {
            var e = list[i];
            var alloc = _scratchAlloc[i];
            e.Allocated = alloc;
            list[i] = e;
            var req = _scratchReq[i];
            if (!e.MigratingIn)
            {
                RecordVm(e.Vm, t, alloc, req, _inMigration[e.Vm]);
                if (_inMigration[e.Vm])
                {
                    alloc /= 0.9;
                }
            }
            util += alloc;
            hostReq += req;
        }
        _util[h] = util;
        RecordHost(h, t, util, hostReq, util > 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RecordVm(int v, double t, double alloc, double req, bool inMigration)
    {
        var last = _vLastTime[v];
        if (last >= 0 && last != t)
        {
            var dt = t - last;
            _totalRequested += _vLastReq[v] * dt;
            if (_vLastAlloc[v] < _vLastReq[v] && _vLastInMig[v])
            {
                _underMigration += (_vLastReq[v] - _vLastAlloc[v]) * dt;
            }
        }
        _vLastTime[v] = t;
        _vLastAlloc[v] = alloc;
        _vLastReq[v] = req;
        _vLastInMig[v] = inMigration;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RecordHost(int h, double t, double alloc, double req, bool active)
    {
        var last = _hLastTime[h];
        if (last >= 0 && last != t && _hLastActive[h])
        {
            var dt = t - last;
            _activeTime += dt;
            if (_hLastAlloc[h] < _hLastReq[h])
            {
                _slaTime += dt;
            }
        }
        _hLastTime[h] = t;
        _hLastAlloc[h] = alloc;
        _hLastReq[h] = req;
        _hLastActive[h] = active;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RecordSeries(double t, int migrations)
    {
        var active = 0;
        var sla = 0;
        double power = 0, demand = 0, served = 0;
        for (var h = 0; h < _hostSpec.Length; h++)
        {
            var isActive = _cloudSim ? _util[h] > 0 : _on[h];
            if (!isActive)
            {
                continue;
            }
            active++;
            power += _hostSpec[h].Power.PowerAt(Clamp(_util[h] / _hostSpec[h].TotalMips));
            if (_hLastAlloc[h] < _hLastReq[h])
            {
                sla++;
            }
        }
        // The analytic bound is the workload's: every VM's trace demand, retired or not.
        for (var v = 0; v < _requested.Length; v++)
        {
            demand += PlanetLabTrace.UtilizationAt(_samples[v], t, _interval) * _vmSpec[v].Mips;
            if (!_removed[v])
            {
                served += _requested[v];
            }
        }
        _servedFloorJ += served * _bestWattsPerMips * _interval;
        _series.Add(new SeriesPoint(t, active, (int)Math.Ceiling(demand / _maxHostMips), power, active == 0 ? 0 : 100.0 * sla / active, migrations));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ConsolidationSnapshot BuildSnapshot(double t)
    {
        var hosts = new HostLoadSnapshot[_hostSpec.Length];
        var hostVms = new IReadOnlyList<int>[_hostSpec.Length];
        for (var h = 0; h < hosts.Length; h++)
        {
            hosts[h] = new HostLoadSnapshot(_hostSpec[h], _util[h], _cloudSim ? _hostVms[h].Count > 0 || _util[h] > 0 : _on[h]);
            var list = _hostVms[h];
            var ids = new int[list.Count];
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = list[i].Vm;
            }
            hostVms[h] = ids;
        }
        var vms = new VmLoadSnapshot[_vmSpec.Length];
        for (var v = 0; v < vms.Length; v++)
        {
            vms[v] = new VmLoadSnapshot(_vmSpec[v], _vmHost[v], _removed[v] ? 0 : _requested[v], History(v), _migratingTo[v], _curRam[v], _curBw[v], _lastMigration[v]);
        }
        return new ConsolidationSnapshot(t, _interval, hosts, hostVms, vms, Reservations);
    }
}
