using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Scheduler.Consolidation;
using Stratus.Storage;
using Host = Stratus.Core.Compute.Host;

namespace Stratus.Controller.Consolidation;

/// <summary>
/// The controller's consolidation loop (off unless <see cref="ConsolidationOptions.Enabled"/>): every
/// <see cref="ConsolidationOptions.Interval"/> it builds a <see cref="ConsolidationSnapshot"/> from the store and the
/// agents' CPU averages, runs the same planner as the simulator, applies the plan through live migration
/// (<see cref="PlanExecutor"/>) and puts hosts that stayed empty for <see cref="ConsolidationOptions.StandbyGrace"/>
/// in standby (<see cref="PowerManager"/>). Only <c>up</c> hosts are planned on or touched; standby hosts enter the
/// snapshot as powered off, and a plan that needs one (overload relief) wakes it for the next pass. Every pass is
/// recorded in a bounded in-memory log (<see cref="Passes"/>, <c>GET /v1/consolidation</c>).
/// Mapping to the planner's model: a core is 1,000 MIPS; a server's demand is its average CPU share over
/// <see cref="ConsolidationOptions.MetricsWindow"/> times its vCPUs (its whole vCPUs when it has no samples yet);
/// memory is always reserved (<see cref="ReservationMode.Reserved"/>).
/// </summary>
public sealed partial class ConsolidationLoop : BackgroundService
{
    private const double MipsPerCore = 1000;
    private readonly IStateStore _store;
    private readonly MetricsService _metrics;
    private readonly PlanExecutor _executor;
    private readonly PowerManager _power;
    private readonly ConsolidationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ConsolidationLoop> _log;
    private readonly IConsolidationPlanner _planner;
    private readonly DateTimeOffset _epoch;
    private readonly Dictionary<InstanceId, DateTimeOffset> _lastMoved = [];
    private readonly Dictionary<HostId, DateTimeOffset> _emptySince = [];
    private readonly LinkedList<ConsolidationPassDto> _passes = new();
    private readonly Lock _lock = new();
    private long _pass;
    private volatile bool _paused;

    public ConsolidationLoop(IStateStore store, MetricsService metrics, PlanExecutor executor, PowerManager power, ConsolidationOptions options, TimeProvider time,
        ILogger<ConsolidationLoop> log)
    {
        if (options.Validate() is { Count: > 0 } errors)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }
        _store = store;
        _metrics = metrics;
        _executor = executor;
        _power = power;
        _options = options;
        _time = time;
        _log = log;
        _epoch = time.GetUtcNow();
        _planner = ConsolidationPolicies.Create(options.Policy, new StratusPolicyOptions
        {
            Target = options.Target,
            Upper = options.Upper,
            Lower = options.Lower,
            Budget = options.MaxMovesPerPass,
        });
        power.Woken += (h, reason) => Append(new ConsolidationPassDto(Interlocked.Increment(ref _pass), "capacity", _time.GetUtcNow(), _time.GetUtcNow(), _options.Policy,
            0, 0, 0, 0, 0, 0, 0, [], [h.Name], [new("wake", null, h.Name, null, reason)], null));
    }

    /// <summary>The options in force.</summary>
    public ConsolidationOptions Options => _options;

    /// <summary>True while an operator paused the loop (passes are skipped; wakes for capacity still happen).</summary>
    public bool Paused => _paused;

    /// <summary>Stops planning until <see cref="Resume"/> (migrations already running finish).</summary>
    public void Pause() => _paused = true;

    /// <summary>Plans again from the next interval on.</summary>
    public void Resume() => _paused = false;

    /// <summary>The newest passes, newest first.</summary>
    public IReadOnlyList<ConsolidationPassDto> Passes
    {
        get
        {
            lock (_lock)
            {
                return [.. _passes];
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }
        LogStarted(_log, _options.Policy, _options.Interval.TotalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.Interval, _time, stoppingToken);
                if (!_paused)
                {
                    await RunOnceAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(_log, e);
            }
        }
    }

    /// <summary>One pass: snapshot, plan, execute, standby. Never throws for expected outcomes; the pass record says what happened.</summary>
    public async Task<ConsolidationPassDto> RunOnceAsync(CancellationToken ct)
    {
        var startedAt = _time.GetUtcNow();
        var pass = Interlocked.Increment(ref _pass);
        var decisions = new List<ConsolidationDecisionDto>();
        var woken = new List<string>();
        var standby = new List<string>();
        ConsolidationPassDto record;
        try
        {
            var hosts = (await _store.ListHostsAsync(ct)).Where(h => h.State is HostState.Up or HostState.Standby).OrderBy(h => h.Name, StringComparer.Ordinal).ToList();
            var names = hosts.ToDictionary(h => h.Id, h => h.Name);
            var (snapshot, vmIds, servers) = await SnapshotAsync(hosts, startedAt, ct);
            var plan = _planner.Plan(snapshot);
            var moves = Translate(plan, snapshot, hosts, vmIds, servers, decisions);
            foreach (var h in plan.HostsToSwitchOn.Select(i => hosts[i]).Where(h => h.State == HostState.Standby))
            {
                var why = await _power.WakeAsync(h.Id, "the consolidation plan needs its capacity", ct);
                decisions.Add(new("wake", null, h.Name, null, why ?? "the plan moves servers onto it (next pass)"));
                if (why is null)
                {
                    woken.Add(h.Name);
                }
            }
            var result = await _executor.ExecuteAsync(moves, ct);
            foreach (var id in result.Moved)
            {
                _lastMoved[id] = _time.GetUtcNow();
            }
            decisions.AddRange(result.Decisions.Select(d => d with { Host = Name(names, d.Host), To = Name(names, d.To) }));
            if (_options.Standby)
            {
                standby.AddRange(await StandbyIdleAsync(decisions, ct));
            }
            record = new ConsolidationPassDto(pass, "interval", startedAt, _time.GetUtcNow(), _options.Policy, hosts.Count, servers.Count, plan.Moves.Count,
                result.Started, result.Finished, result.Failed, result.Skipped, standby, woken, decisions, null);
            if (plan.Moves.Count > 0 || standby.Count > 0 || woken.Count > 0)
            {
                LogPass(_log, pass, plan.Moves.Count, result.Started, result.Finished, result.Failed, standby.Count);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogPassFailed(_log, e);
            record = new ConsolidationPassDto(pass, "interval", startedAt, _time.GetUtcNow(), _options.Policy, 0, 0, 0, 0, 0, 0, 0, standby, woken, decisions,
                $"{e.GetType().Name}: {e.Message}");
        }
        Append(record);
        return record;
    }

    private static string? Name(Dictionary<HostId, string> names, string? id) =>
        id is not null && HostId.TryParse(id, out var h) && names.TryGetValue(h, out var n) ? n : id;

    private void Append(ConsolidationPassDto record)
    {
        lock (_lock)
        {
            _passes.AddFirst(record);
            while (_passes.Count > _options.LogSize)
            {
                _passes.RemoveLast();
            }
        }
    }

    /// <summary>The cluster as the planner sees it: up hosts (on) and standby hosts (off), active servers on up hosts with their CPU demand.</summary>
    private async Task<(ConsolidationSnapshot Snapshot, List<InstanceId> VmIds, List<Instance> Servers)> SnapshotAsync(List<Host> hosts, DateTimeOffset now,
        CancellationToken ct)
    {
        var aggregates = await _store.ListAggregatesAsync(ct);
        var migrations = (await _store.ListMigrationsAsync(ct)).ToDictionary(m => m.InstanceId);
        var index = hosts.Select((h, i) => (h.Id, i)).ToDictionary(x => x.Id, x => x.i);
        var hostVms = hosts.Select(_ => new List<int>()).ToList();
        var vms = new List<VmLoadSnapshot>();
        var ids = new List<InstanceId>();
        var servers = new List<Instance>();
        var load = new double[hosts.Count];
        for (var hi = 0; hi < hosts.Count; hi++)
        {
            if (hosts[hi].State != HostState.Up)
            {
                continue;
            }
            foreach (var inst in await _store.ListInstancesOnHostAsync(hosts[hi].Id, ct))
            {
                if (inst.VmState is not (VmState.Active or VmState.Paused))
                {
                    continue;
                }
                var mips = Math.Max(1, inst.Resources.MilliVcpus / 1000.0 * MipsPerCore);
                var cpu = await _metrics.AverageCpuAsync(inst.Id, _options.MetricsWindow, ct);
                var demand = cpu is { } c ? c / 100 * mips : mips;
                var spec = new VmSpec(inst.Name, mips, (int)Math.Min(int.MaxValue, inst.Resources.MemoryMib), 0);
                var to = migrations.TryGetValue(inst.Id, out var m) && index.TryGetValue(m.Destination, out var d) ? d : -1;
                var last = _lastMoved.TryGetValue(inst.Id, out var at) ? (at - _epoch).TotalSeconds : double.NegativeInfinity;
                hostVms[hi].Add(vms.Count);
                vms.Add(new VmLoadSnapshot(spec, hi, demand, new[] { demand / mips }, to, spec.RamMb, 0, last));
                ids.Add(inst.Id);
                servers.Add(inst);
                load[hi] += demand;
            }
        }
        var specs = new Dictionary<(int, long, double, double), HostSpec>();
        var snapshotHosts = new List<HostLoadSnapshot>(hosts.Count);
        for (var hi = 0; hi < hosts.Count; hi++)
        {
            var h = hosts[hi];
            var (idle, max, _) = EnergyReporter.WattsOf(h, aggregates, _options);
            var cores = (int)Math.Max(1, h.Total.MilliVcpus / 1000);
            var key = (cores, h.Capacity.MemoryMib, idle, max);
            if (!specs.TryGetValue(key, out var spec))
            {
                specs[key] = spec = new HostSpec($"{cores}c-{h.Capacity.MemoryMib}m", cores, MipsPerCore, (int)Math.Min(int.MaxValue, h.Capacity.MemoryMib), 0,
                    new LinearPowerModel(idle, max));
            }
            snapshotHosts.Add(new HostLoadSnapshot(spec, h.State == HostState.Up ? load[hi] : 0, h.State == HostState.Up));
        }
        var snapshot = new ConsolidationSnapshot((now - _epoch).TotalSeconds, _options.Interval.TotalSeconds, snapshotHosts,
            hostVms.Select(l => (IReadOnlyList<int>)l).ToList(), vms, ReservationMode.Reserved);
        return (snapshot, ids, servers);
    }

    /// <summary>The plan's moves as server → destination (a server moved twice in one plan goes straight to its last destination).</summary>
    private static List<PlannedMove> Translate(MigrationPlan plan, ConsolidationSnapshot snapshot, List<Host> hosts, List<InstanceId> ids, List<Instance> servers,
        List<ConsolidationDecisionDto> decisions)
    {
        var final = new Dictionary<int, int>();
        var order = new List<int>();
        foreach (var m in plan.Moves)
        {
            if (!final.ContainsKey(m.Vm))
            {
                order.Add(m.Vm);
            }
            final[m.Vm] = m.To;
        }
        var off = plan.HostsToSwitchOff.ToHashSet();
        var moves = new List<PlannedMove>();
        foreach (var v in order)
        {
            var from = snapshot.Vms[v].Host;
            var to = final[v];
            if (to == from)
            {
                continue;
            }
            var reason = off.Contains(from)
                ? $"evacuating {hosts[from].Name} (load {snapshot.Hosts[from].UtilizationMips / snapshot.Hosts[from].Spec.TotalMips:P0}) so it can go to standby"
                : $"relieving {hosts[from].Name} (load {snapshot.Hosts[from].UtilizationMips / snapshot.Hosts[from].Spec.TotalMips:P0})";
            if (hosts[to].State != HostState.Up)
            {
                decisions.Add(new("skip", servers[v].Name, hosts[from].Name, hosts[to].Name, $"destination {hosts[to].Name} is being woken; the next pass moves it"));
                continue;
            }
            moves.Add(new PlannedMove(ids[v], servers[v].Name, hosts[from].Id, hosts[to].Id, reason));
        }
        return moves;
    }

    /// <summary>Hosts that stayed up, empty and untouched by migrations for the grace period go to standby (keeping <see cref="ConsolidationOptions.MinHostsUp"/>).</summary>
    private async Task<List<string>> StandbyIdleAsync(List<ConsolidationDecisionDto> decisions, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var hosts = await _store.ListHostsAsync(ct);
        var migrations = await _store.ListMigrationsAsync(ct);
        var counts = (await _store.ListAllocationsAsync(ct)).GroupBy(a => a.HostId).ToDictionary(g => g.Key, g => g.Count());
        var up = hosts.Count(h => h.State == HostState.Up);
        var done = new List<string>();
        foreach (var h in hosts.OrderBy(h => h.Name, StringComparer.Ordinal))
        {
            var empty = h.State == HostState.Up && counts.GetValueOrDefault(h.Id) == 0 && h.Used == default
                && !migrations.Any(m => m.Source == h.Id || m.Destination == h.Id);
            if (!empty)
            {
                _emptySince.Remove(h.Id);
                continue;
            }
            if (!_emptySince.TryGetValue(h.Id, out var since))
            {
                _emptySince[h.Id] = since = now;
            }
            if (now - since < _options.StandbyGrace)
            {
                continue;
            }
            if (up - 1 < _options.MinHostsUp)
            {
                continue;
            }
            var reason = $"empty for {(now - since).TotalSeconds:0} s";
            var why = await _power.StandbyAsync(h.Id, reason, ct);
            if (why is null)
            {
                up--;
                _emptySince.Remove(h.Id);
                done.Add(h.Name);
                decisions.Add(new("standby", null, h.Name, null, reason));
            }
            else
            {
                decisions.Add(new("skip", null, h.Name, null, $"standby not possible: {why}"));
            }
        }
        return done;
    }

    [LoggerMessage(50, LogLevel.Information, "Consolidation loop started: policy {Policy}, every {IntervalSeconds} s")]
    private static partial void LogStarted(ILogger log, string policy, double intervalSeconds);

    [LoggerMessage(51, LogLevel.Information, "Consolidation pass {Pass}: {Moves} moves planned, {Started} started, {Finished} finished, {Failed} failed, {Standby} hosts to standby")]
    private static partial void LogPass(ILogger log, long pass, int moves, int started, int finished, int failed, int standby);

    [LoggerMessage(52, LogLevel.Error, "Consolidation pass failed")]
    private static partial void LogPassFailed(ILogger log, Exception e);
}
