using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>
/// A planner's private, mutable copy of a <see cref="ConsolidationSnapshot"/>: hosts with ordered VM
/// lists, CPU shares, memory and bandwidth reservations, emulating CloudSim 3.0.3's host, VM scheduler
/// and provisioners so "what if" questions (does this VM fit there? is that host still overloaded?)
/// are answered the way CloudSim answers them. Built fresh for each round; never shared; the snapshot
/// it came from is never written.
/// </summary>
public sealed class PlanningState
{
    /// <summary>Length of the per-VM utilisation history CloudSim keeps.</summary>
    public const int HistoryLength = 30;

    private struct Entry
    {
        public int Vm;
        public double Requested;
        public double Allocated;
        public bool MigratingIn;
        public int Ram;
        public long Bw;
    }

    private readonly HostSpec[] _hostSpec;
    private readonly int[] _hostType;
    private readonly double[] _tickUtilMips;
    private readonly bool[] _hostOn;
    private readonly List<Entry>[] _hostVms;
    private readonly double[] _available;
    private readonly long[] _ramFree;
    private readonly long[] _bwFree;
    private readonly double[] _aggHistory;
    private readonly bool[] _aggValid;

    private readonly VmSpec[] _vmSpec;
    private readonly double[] _requested;
    private readonly int[] _vmHost;
    private readonly bool[] _inMigration;
    private readonly int[] _curRam;
    private readonly long[] _curBw;
    private readonly bool[] _instantiating;
    private readonly ReadOnlyMemory<double>[] _history;
    private readonly double[] _lastMigration;
    private readonly bool[] _dropped;
    private readonly List<int> _droppedList = [];

    private double[] _scratchReq = new double[16];
    private double[] _scratchAlloc = new double[16];
    private MigrationRole[] _scratchRoles = new MigrationRole[16];

    /// <summary>Copies a snapshot.</summary>
    /// <param name="snapshot">The input; never modified.</param>
    /// <param name="instantiating">VMs being created (not yet running): they ask for their full MIPS, memory and bandwidth, as CloudSim's initial placement does.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public PlanningState(ConsolidationSnapshot snapshot, IReadOnlyCollection<int>? instantiating = null)
    {
        Time = snapshot.Time;
        Interval = snapshot.SchedulingInterval;
        Reservations = snapshot.Reservations;
        var hosts = snapshot.Hosts;
        var h = hosts.Count;
        _hostSpec = new HostSpec[h];
        _hostType = new int[h];
        _tickUtilMips = new double[h];
        _hostOn = new bool[h];
        _hostVms = new List<Entry>[h];
        _available = new double[h];
        _ramFree = new long[h];
        _bwFree = new long[h];
        _aggHistory = new double[h * HistoryLength];
        _aggValid = new bool[h];
        var types = new List<HostSpec>();
        for (var i = 0; i < h; i++)
        {
            var spec = hosts[i].Spec;
            _hostSpec[i] = spec;
            var t = types.IndexOf(spec);
            if (t < 0)
            {
                types.Add(spec);
                t = types.Count - 1;
            }
            _hostType[i] = t;
            _tickUtilMips[i] = hosts[i].UtilizationMips;
            _hostOn[i] = hosts[i].IsOn;
            _ramFree[i] = spec.RamMb;
            _bwFree[i] = spec.BandwidthMbps;
        }
        HostTypeCount = types.Count;

        var vms = snapshot.Vms;
        var n = vms.Count;
        _vmSpec = new VmSpec[n];
        _requested = new double[n];
        _vmHost = new int[n];
        _inMigration = new bool[n];
        _curRam = new int[n];
        _curBw = new long[n];
        _instantiating = new bool[n];
        _history = new ReadOnlyMemory<double>[n];
        _lastMigration = new double[n];
        _dropped = new bool[n];
        for (var v = 0; v < n; v++)
        {
            var s = vms[v];
            _vmSpec[v] = s.Spec;
            _requested[v] = s.RequestedMips;
            _vmHost[v] = s.Host;
            _inMigration[v] = s.MigratingTo >= 0;
            _curRam[v] = s.HeldRamMb;
            _curBw[v] = s.HeldBandwidth;
            _history[v] = s.History;
            _lastMigration[v] = s.LastMigrationTime;
        }
        if (instantiating is not null)
        {
            foreach (var v in instantiating)
            {
                _instantiating[v] = true;
            }
        }
        for (var i = 0; i < h; i++)
        {
            var list = snapshot.HostVms[i];
            var entries = new List<Entry>(Math.Max(4, list.Count + 2));
            foreach (var v in list)
            {
                var migIn = vms[v].MigratingTo == i && vms[v].Host != i;
                var ram = Math.Min(_curRam[v], _vmSpec[v].RamMb);
                var bw = Math.Min(_curBw[v], _vmSpec[v].Bandwidth);
                entries.Add(new Entry { Vm = v, Requested = RequestedMips(v), MigratingIn = migIn, Ram = ram, Bw = bw });
                _ramFree[i] -= ram;
                _bwFree[i] -= bw;
            }
            _hostVms[i] = entries;
            Reallocate(i);
        }
    }

    /// <summary>Virtual time of the snapshot (s).</summary>
    public double Time { get; }

    /// <summary>Scheduling interval (s).</summary>
    public double Interval { get; }

    /// <summary>Memory/bandwidth accounting mode.</summary>
    public ReservationMode Reservations { get; }

    /// <summary>Number of hosts.</summary>
    public int HostCount => _hostSpec.Length;

    /// <summary>Number of VMs.</summary>
    public int VmCount => _vmSpec.Length;

    /// <summary>Number of distinct host specs.</summary>
    public int HostTypeCount { get; }

    /// <summary>VMs whose reservation was dropped by CloudSim-compatible accounting so far.</summary>
    public IReadOnlyList<int> DroppedReservations => _droppedList;

    /// <summary>Spec of a host.</summary>
    public HostSpec HostSpecOf(int host) => _hostSpec[host];

    /// <summary>Index of the host's spec among the distinct specs.</summary>
    public int HostTypeOf(int host) => _hostType[host];

    /// <summary>Whether the host was on at the snapshot.</summary>
    public bool IsHostOn(int host) => _hostOn[host];

    /// <summary>Spec of a VM.</summary>
    public VmSpec VmSpecOf(int vm) => _vmSpec[vm];

    /// <summary>Host the VM runs on (its source while migrating), −1 if none.</summary>
    public int HostOf(int vm) => _vmHost[vm];

    /// <summary>Whether a live migration of the VM is running.</summary>
    public bool IsInMigration(int vm) => _inMigration[vm];

    /// <summary>Start time of the VM's last migration, or −∞.</summary>
    public double LastMigrationTime(int vm) => _lastMigration[vm];

    /// <summary>Utilisation history of the VM (fractions, most recent first).</summary>
    public ReadOnlySpan<double> HistoryOf(int vm) => _history[vm].Span;

    /// <summary>Number of VMs listed on a host (migrating-in ones included).</summary>
    public int VmCountOn(int host) => _hostVms[host].Count;

    /// <summary>The i-th VM on a host, in arrival order.</summary>
    public int VmOn(int host, int i) => _hostVms[host][i].Vm;

    /// <summary>Whether the i-th VM on the host is migrating in.</summary>
    public bool IsMigratingIn(int host, int i) => _hostVms[host][i].MigratingIn;

    /// <summary>Current CPU demand of a VM in MIPS (full MIPS while being instantiated).</summary>
    public double RequestedMips(int vm) => _instantiating[vm] ? _vmSpec[vm].Mips : _requested[vm];

    /// <summary>Sum of the current demand of the VMs on a host, plus an optional extra VM.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double HostRequestedMips(int host, int extraVm = -1)
    {
        double total = 0;
        foreach (var e in _hostVms[host])
        {
            total += RequestedMips(e.Vm);
        }
        if (extraVm >= 0)
        {
            total += RequestedMips(extraVm);
        }
        return total;
    }

    /// <summary>
    /// Measured utilisation at the snapshot (fraction, CloudSim's rounding of 1..1.01 to 1); it does
    /// not change while planning, as in CloudSim.
    /// </summary>
    public double SnapshotUtilization(int host)
    {
        var u = _tickUtilMips[host] / _hostSpec[host].TotalMips;
        return u is > 1 and < 1.01 ? 1 : u;
    }

    /// <summary>Power at the snapshot's measured utilisation (W).</summary>
    public double SnapshotPower(int host) => _hostSpec[host].Power.PowerAt(SnapshotUtilization(host));

    /// <summary>CPU in MIPS allocated on a host by the current planned VM list (migrating-in VMs counted at their full potential).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double AllocatedMips(int host)
    {
        double total = 0;
        foreach (var e in _hostVms[host])
        {
            if (e.MigratingIn)
            {
                total += e.Allocated * 0.9 / 0.1;
            }
            total += e.Allocated;
        }
        return total;
    }

    /// <summary>MIPS still free for new VMs on a host (0 when over-subscribed).</summary>
    public double AvailableMips(int host) => _available[host];

    /// <summary>Memory not reserved on a host (MB).</summary>
    public long FreeRam(int host) => _ramFree[host];

    /// <summary>
    /// Whether the VM fits on the host (core capacity, free MIPS, memory, bandwidth), as CloudSim's
    /// <c>Host.isSuitableForVm</c>, including its side effect in compatible mode: asking drops the
    /// VM's memory and bandwidth reservation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool IsSuitable(int host, int vm)
    {
        var spec = _hostSpec[host];
        var req = RequestedMips(vm);
        if (!(spec.MipsPerPe >= req && _available[host] >= req))
        {
            return false;
        }
        var ram = RequestedRam(vm);
        var ramOk = _ramFree[host] >= ram;
        DropRam(vm);
        if (!ramOk)
        {
            return false;
        }
        var bwOk = _bwFree[host] >= RequestedBw(vm);
        DropBw(vm);
        return bwOk;
    }

    /// <summary>Places a VM on a host (appended to its list). Returns false if memory or bandwidth is short.</summary>
    public bool Create(int host, int vm)
    {
        var ram = RequestedRam(vm);
        var bw = RequestedBw(vm);
        if (_ramFree[host] < ram || _bwFree[host] < bw)
        {
            return false;
        }
        _ramFree[host] -= ram;
        _bwFree[host] -= bw;
        _curRam[vm] = ram;
        _curBw[vm] = bw;
        _hostVms[host].Add(new Entry { Vm = vm, Requested = RequestedMips(vm), Ram = ram, Bw = bw });
        _vmHost[vm] = host;
        _aggValid[host] = false;
        Reallocate(host);
        return true;
    }

    /// <summary>
    /// Places a VM that is being instantiated and marks it running: its CPU share keeps the full
    /// MIPS it asked for, while its current demand becomes 0 (it runs nothing yet), as in CloudSim
    /// between VM creation and the first scheduling interval.
    /// </summary>
    public bool CreateInstantiated(int host, int vm)
    {
        if (!Create(host, vm))
        {
            return false;
        }
        _instantiating[vm] = false;
        _requested[vm] = 0;
        return true;
    }

    /// <summary>Removes a VM from a host's list, releasing its shares (and, in compatible mode, its reservation).</summary>
    public void Destroy(int host, int vm)
    {
        var list = _hostVms[host];
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i].Vm == vm && !list[i].MigratingIn)
            {
                _ramFree[host] += list[i].Ram;
                _bwFree[host] += list[i].Bw;
                list.RemoveAt(i);
                break;
            }
        }
        DropRam(vm);
        DropBw(vm);
        if (_vmHost[vm] == host)
        {
            _vmHost[vm] = -1;
        }
        _aggValid[host] = false;
        Reallocate(host);
    }

    /// <summary>
    /// The host's utilisation history (fractions of host MIPS, most recent first), built from its
    /// VMs' histories as CloudSim's <c>PowerHostUtilizationHistory</c> does, optionally with one
    /// more VM appended, trailing zeros trimmed.
    /// </summary>
    /// <returns>The history length.</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int HostHistory(int host, int extraVm, Span<double> destination)
    {
        var agg = _aggHistory.AsSpan(host * HistoryLength, HistoryLength);
        var hostMips = _hostSpec[host].TotalMips;
        if (!_aggValid[host])
        {
            agg.Clear();
            foreach (var e in _hostVms[host])
            {
                Accumulate(agg, e.Vm, hostMips);
            }
            _aggValid[host] = true;
        }
        agg.CopyTo(destination);
        if (extraVm >= 0)
        {
            Accumulate(destination[..HistoryLength], extraVm, hostMips);
        }
        var len = HistoryLength;
        while (len > 0 && destination[len - 1] == 0)
        {
            len--;
        }
        return len;
    }

    /// <summary>Longest live-migration time (s) among the host's VMs (plus an extra VM): RAM over half the host's bandwidth, as CloudSim.</summary>
    public double MaxMigrationTime(int host, int extraVm = -1)
    {
        var maxRam = int.MinValue;
        foreach (var e in _hostVms[host])
        {
            maxRam = Math.Max(maxRam, _vmSpec[e.Vm].RamMb);
        }
        if (extraVm >= 0)
        {
            maxRam = Math.Max(maxRam, _vmSpec[extraVm].RamMb);
        }
        return maxRam / ((double)_hostSpec[host].BandwidthMbps / (2 * 8000));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Accumulate(Span<double> dest, int vm, double hostMips)
    {
        var hist = _history[vm].Span;
        var mips = _vmSpec[vm].Mips;
        var n = Math.Min(hist.Length, HistoryLength);
        for (var i = 0; i < n; i++)
        {
            dest[i] += hist[i] * mips / hostMips;
        }
    }

    private int RequestedRam(int vm) => _instantiating[vm] || Reservations == ReservationMode.Reserved ? _vmSpec[vm].RamMb : Math.Min(_curRam[vm], _vmSpec[vm].RamMb);

    private long RequestedBw(int vm) => _instantiating[vm] || Reservations == ReservationMode.Reserved ? _vmSpec[vm].Bandwidth : Math.Min(_curBw[vm], _vmSpec[vm].Bandwidth);

    private void DropRam(int vm)
    {
        if (Reservations == ReservationMode.Reserved || _curRam[vm] == 0)
        {
            return;
        }
        _curRam[vm] = 0;
        MarkDropped(vm);
    }

    private void DropBw(int vm)
    {
        if (Reservations == ReservationMode.Reserved || _curBw[vm] == 0)
        {
            return;
        }
        _curBw[vm] = 0;
        MarkDropped(vm);
    }

    private void MarkDropped(int vm)
    {
        if (!_dropped[vm] && !_instantiating[vm])
        {
            _dropped[vm] = true;
            _droppedList.Add(vm);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Reallocate(int host)
    {
        var list = _hostVms[host];
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
            _scratchReq[i] = e.Requested;
            _scratchRoles[i] = e.MigratingIn ? MigrationRole.In : _inMigration[e.Vm] ? MigrationRole.Out : MigrationRole.None;
        }
        var spec = _hostSpec[host];
        _available[host] = CloudSimCpuScheduler.Allocate(spec.TotalMips, spec.MipsPerPe, _scratchReq.AsSpan(0, n), _scratchRoles.AsSpan(0, n), _scratchAlloc.AsSpan(0, n));
        for (var i = 0; i < n; i++)
        {
            var e = list[i];
            e.Allocated = _scratchAlloc[i];
            list[i] = e;
        }
    }
}
