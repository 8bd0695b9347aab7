using System.Collections.Frozen;
using System.Collections.Immutable;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;
using Stratus.Scheduler.Batch;
using Stratus.Scheduler.Framework;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// The controller's main loop: places servers waiting for a host (on an immutable snapshot,
/// claims committed with compare-and-swap, a lost race re-plans), pushes each host's desired
/// state to its agent, and times out stuck tasks. Level-triggered and restartable: everything it
/// needs is in the store.
/// </summary>
public sealed partial class Reconciler(
    IStateStore store,
    AgentHub hub,
    IPlacementEngine placement,
    ControllerOptions options,
    ReconcileSignal signal,
    TimeProvider time,
    ILogger<Reconciler> log,
    Consolidation.ICapacityWaker? waker = null) : BackgroundService
{
    private long _passes;
    private readonly Dictionary<string, IPlacementEngine> _engines = new(StringComparer.Ordinal);
    private Dictionary<string, string> _zoneProfiles = new(StringComparer.Ordinal);
    private DateTimeOffset _lastFullPush = DateTimeOffset.MinValue;

    /// <summary>Completed reconcile passes since start.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(log, e);
            }
            try
            {
                await signal.WaitAsync(options.ReconcileInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>One pass: schedule, time out, push.</summary>
    public async Task RunOnceAsync(CancellationToken ct)
    {
        await ScheduleAsync(ct);
        await TimeoutTasksAsync(ct);
        var now = time.GetUtcNow();
        IEnumerable<HostId> toPush = signal.TakeDirty();
        if (now - _lastFullPush >= options.FullPushInterval)
        {
            toPush = hub.ConnectedHosts;
            _lastFullPush = now;
        }
        foreach (var host in toPush.Distinct())
        {
            await PushAsync(host, ct);
        }
        Interlocked.Increment(ref _passes);
    }

    private async Task ScheduleAsync(CancellationToken ct)
    {
        var waiting = await store.ListInstancesWithTaskAsync(InstanceTask.Scheduling, options.ScheduleBatch, ct);
        if (waiting.Count == 0)
        {
            return;
        }
        var snapshot = await SnapshotAsync(ct);
        // All-or-nothing batches are placed together; a batch cut by the page limit waits for the next pass.
        var batches = waiting.Where(i => i is { BatchId: not null, BatchAllOrNothing: true }).GroupBy(i => i.BatchId!.Value).ToList();
        if (waiting.Count >= options.ScheduleBatch && batches.Count > 0 && waiting[^1].BatchId == batches[^1].Key)
        {
            batches.RemoveAt(batches.Count - 1);
        }
        foreach (var batch in batches)
        {
            try
            {
                snapshot = await ScheduleBatchAsync(batch.ToList(), snapshot, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // A bug in one batch must not stall every other server's placement.
                LogPassFailed(log, e);
                snapshot = await SnapshotAsync(ct);
            }
        }
        foreach (var inst in waiting.Where(i => i is not { BatchId: not null, BatchAllOrNothing: true }))
        {
            for (var attempt = 0; ; attempt++)
            {
                var (group, groupClaim) = await GroupAsync(inst, ct);
                var result = EngineFor(inst.Zone).Place(new PlacementRequest(inst.Id, inst.Resources, inst.Zone)
                {
                    Group = group,
                    RequiredTraits = [.. (inst.Traits ?? []).Where(t => !t.StartsWith('!'))],
                    ForbiddenTraits = [.. (inst.Traits ?? []).Where(t => t.StartsWith('!')).Select(t => t[1..])],
                }, snapshot);
                await RecordAsync(inst, result, ct);
                if (result is Placed p)
                {
                    var now = time.GetUtcNow();
                    var claimed = inst with { HostId = p.Host, Task = InstanceTask.Spawning, UpdatedAt = now };
                    var outcome = await store.ClaimAsync(claimed, p.Host, p.Generation, inst.Resources, groupClaim, ct);
                    if (outcome == CasOutcome.Ok)
                    {
                        snapshot = Apply(snapshot, p.Host, inst.Resources);
                        signal.Signal(p.Host);
                        LogPlaced(log, inst.Id, p.Host);
                        break;
                    }
                    if (outcome == CasOutcome.Conflict && await store.GetInstanceAsync(inst.Id, ct) is { } fresh && fresh.Version != inst.Version)
                    {
                        break; // the server changed (deleted, say) while we planned: the next pass sees it anew
                    }
                    if (attempt < 10)
                    {
                        snapshot = await SnapshotAsync(ct); // lost a race: re-plan on a fresh snapshot
                        continue;
                    }
                    break;
                }
                if (result is Unschedulable && waker is not null && await waker.WakeForAsync(inst, ct))
                {
                    break; // a standby host is being woken for it: it keeps waiting in `scheduling`
                }
                var reasons = result switch
                {
                    Unschedulable u => u.Reasons,
                    UnschedulableAndUnresolvable u => u.Reasons,
                    _ => ImmutableArray<string>.Empty,
                };
                var fault = "no valid host: " + string.Join("; ", reasons);
                var t = time.GetUtcNow();
                var failed = inst with { VmState = VmState.Error, Task = null, Fault = fault, UpdatedAt = t, TaskRequestedAt = null };
                if (await store.UpdateInstanceAsync(failed, null, new ActionFinish("error", fault, t), ct) == CasOutcome.Ok)
                {
                    LogUnschedulable(log, inst.Id, fault);
                }
                break;
            }
        }
    }

    /// <summary>Places an all-or-nothing batch in one decision and claims it in one transaction; or refuses every member with the reason.</summary>
    private async Task<ClusterSnapshot> ScheduleBatchAsync(List<Instance> members, ClusterSnapshot snapshot, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var requests = new List<PlacementRequest>();
            var groupClaims = new Dictionary<Guid, GroupClaim>();
            foreach (var inst in members)
            {
                var (group, groupClaim) = await GroupAsync(inst, ct);
                if (groupClaim is not null)
                {
                    groupClaims.TryAdd(groupClaim.GroupId, groupClaim);
                }
                requests.Add(new PlacementRequest(inst.Id, inst.Resources, inst.Zone)
                {
                    Group = group,
                    Attempt = attempt,
                    RequiredTraits = [.. (inst.Traits ?? []).Where(t => !t.StartsWith('!'))],
                    ForbiddenTraits = [.. (inst.Traits ?? []).Where(t => t.StartsWith('!')).Select(t => t[1..])],
                });
            }
            var result = BatchPlacer.Place(EngineFor(members[0].Zone), new BatchPlacementRequest([.. requests], AllOrNothing: true), snapshot);
            // An all-or-nothing decision stops at the first refusal: members after it have no result.
            for (var i = 0; i < members.Count && i < result.Results.Length; i++)
            {
                await RecordAsync(members[i], result.Results[i], ct);
            }
            var now = time.GetUtcNow();
            if (!result.Complete)
            {
                var fault = $"no valid host for the batch of {members.Count} (all or nothing): " + string.Join("; ", result.Reasons);
                foreach (var inst in members)
                {
                    await store.UpdateInstanceAsync(inst with { VmState = VmState.Error, Task = null, Fault = fault, UpdatedAt = now, TaskRequestedAt = null }, null,
                        new ActionFinish("error", fault, now), ct);
                }
                LogUnschedulable(log, members[0].Id, fault);
                return snapshot;
            }
            var updated = members.Select((inst, i) => inst with { HostId = ((Placed)result.Results[i]).Host, Task = InstanceTask.Spawning, UpdatedAt = now }).ToList();
            var claims = result.Claims.Select(c => new HostClaimRecord(c.Host, c.Generation, c.Demand)).ToList();
            if (await store.ClaimBatchAsync(updated, claims, [.. groupClaims.Values], ct) == CasOutcome.Ok)
            {
                foreach (var c in result.Claims)
                {
                    snapshot = Apply(snapshot, c.Host, c.Demand);
                    signal.Signal(c.Host);
                }
                return snapshot;
            }
            snapshot = await SnapshotAsync(ct); // lost a race (or a member changed): re-plan the whole batch
            var fresh = new List<Instance>();
            foreach (var inst in members)
            {
                if (await store.GetInstanceAsync(inst.Id, ct) is { Task: InstanceTask.Scheduling } f)
                {
                    fresh.Add(f);
                }
            }
            if (fresh.Count != members.Count)
            {
                return snapshot; // a member was deleted meanwhile: the next pass sees the batch anew
            }
            members = fresh;
        }
        return snapshot;
    }

    /// <summary>
    /// Capacity check without a claim: places <paramref name="count"/> servers of <paramref name="each"/> joining
    /// <paramref name="groupId"/> on the current snapshot, exactly as the next pass would (filters, scorers, group rule,
    /// each placement counted before the next). Pure: nothing is written, nothing is reserved.
    /// </summary>
    public async Task<BatchPlacementResult> DryRunAsync(Core.Resources.ResourceVector each, int count, Guid? groupId, CancellationToken ct)
    {
        var snapshot = await SnapshotAsync(ct);
        var (group, _) = await GroupAsync(groupId, ct);
        var requests = Enumerable.Range(0, count).Select(_ => new PlacementRequest(InstanceId.New(), each, null) { Group = group }).ToImmutableArray();
        return BatchPlacer.Place(placement, new BatchPlacementRequest(requests, AllOrNothing: false), snapshot);
    }

    /// <summary>The server group the instance joins, as placement sees it, and the generation its claim must find.</summary>
    private Task<(ServerGroupSnapshot? Group, GroupClaim? Claim)> GroupAsync(Instance inst, CancellationToken ct) => GroupAsync(inst.GroupId, ct);

    private async Task<(ServerGroupSnapshot? Group, GroupClaim? Claim)> GroupAsync(Guid? groupId, CancellationToken ct)
    {
        if (groupId is not { } gid || await store.FindGroupAsync(gid.ToString("D"), ct) is not { } g)
        {
            return (null, null);
        }
        var members = await store.GroupMembersPerHostAsync(gid, ct);
        var policy = g.Policy switch
        {
            "affinity" => ServerGroupPolicy.Affinity,
            "anti-affinity" => ServerGroupPolicy.AntiAffinity,
            "soft-affinity" => ServerGroupPolicy.SoftAffinity,
            _ => ServerGroupPolicy.SoftAntiAffinity,
        };
        return (new ServerGroupSnapshot(g.Name, policy, g.MaxPerHost, members.ToImmutableDictionary(), g.Generation), new GroupClaim(gid, g.Generation));
    }

    private async Task RecordAsync(Instance inst, PlacementResult result, CancellationToken ct)
    {
        var t = result.Trace;
        var (outcome, host, reasons) = result switch
        {
            Placed p => ("placed", p.Host.ToString(), ImmutableArray<string>.Empty),
            Unschedulable u => ("unschedulable", null, u.Reasons),
            UnschedulableAndUnresolvable u => ("unschedulable_and_unresolvable", null, u.Reasons),
            _ => ("unknown", (string?)null, ImmutableArray<string>.Empty),
        };
        var dto = new Core.Wire.PlacementDto(inst.Id.ToString(), outcome, host, reasons, t.Profile, t.FleetSize, t.HostsConsidered, t.SampleSize,
            t.Filters.Select(f => new Core.Wire.FilterStepDto(f.Filter, f.Before, f.Removed)).ToList(),
            t.Top.Select(c => new Core.Wire.CandidateDto(c.Host.ToString(), c.Name, Math.Round(c.Score, 6))).ToList(), time.GetUtcNow());
        await store.RecordPlacementAsync(inst.Id, System.Text.Json.JsonSerializer.Serialize(dto, Core.Wire.WireJson.Options), dto.DecidedAt, ct);
    }

    /// <summary>
    /// The engine for a zone: the profile named by the <c>scheduler_profile</c> metadata of the
    /// zone's aggregate (spread, pack, energy), else the default engine.
    /// </summary>
    private IPlacementEngine EngineFor(string? zone)
    {
        if (zone is null || !_zoneProfiles.TryGetValue(zone, out var profile))
        {
            return placement;
        }
        if (!_engines.TryGetValue(profile, out var engine))
        {
            _engines[profile] = engine = new FrameworkPlacementEngine(Scheduler.Profiles.Profiles.Get(profile));
        }
        return engine;
    }

    /// <summary>The fleet as placement sees it: hosts with their traits, aggregates and effective zone.</summary>
    private async Task<ClusterSnapshot> SnapshotAsync(CancellationToken ct)
    {
        var hosts = await store.ListHostsAsync(ct);
        var aggregates = await store.ListAggregatesAsync(ct);
        _zoneProfiles = aggregates
            .Where(a => a.Zone is not null && a.Metadata.TryGetValue("scheduler_profile", out var p) && Scheduler.Profiles.Profiles.TryGet(p, out _))
            .GroupBy(a => a.Zone!).ToDictionary(g => g.Key, g => g.First().Metadata["scheduler_profile"], StringComparer.Ordinal);
        return new ClusterSnapshot(hosts.Select(h => HostSnapshot.From(h) with
        {
            Zone = Mapping.ZoneOf(h, aggregates),
            Traits = (h.Traits ?? []).ToFrozenSet(StringComparer.Ordinal),
            Aggregates = [.. aggregates.Where(a => a.Hosts.Contains(h.Id)).Select(a => new AggregateSnapshot(a.Name, a.Metadata.ToImmutableDictionary()))],
        }).ToImmutableArray());
    }

    private static ClusterSnapshot Apply(ClusterSnapshot s, HostId host, Core.Resources.ResourceVector claim)
    {
        var hosts = s.Hosts.Select(h => h.Id == host ? h with { Used = h.Used + claim, Generation = h.Generation + 1 } : h).ToImmutableArray();
        return new ClusterSnapshot(hosts);
    }

    private async Task TimeoutTasksAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        foreach (var inst in await store.ListInstancesWithTaskAsync(null, 1000, ct))
        {
            // Migrations keep their own phase timeouts and roll back instead of failing the server.
            if (inst.Task is InstanceTask.Scheduling or InstanceTask.Deleting or InstanceTask.Migrating or InstanceTask.Recovering || inst.TaskRequestedAt is not { } at || now - at < options.TaskTimeout)
            {
                continue;
            }
            var fault = $"task {Core.Lifecycle.Names.Of(inst.Task!.Value)} did not finish within {options.TaskTimeout.TotalSeconds:0} s";
            await store.UpdateInstanceAsync(inst with { VmState = VmState.Error, Task = null, Fault = fault, UpdatedAt = now, TaskRequestedAt = null }, null,
                new ActionFinish("error", fault, now), ct);
        }
    }

    /// <summary>Builds and pushes a host's full desired state.</summary>
    public async Task PushAsync(HostId host, CancellationToken ct)
    {
        if (hub.Session(host) is not { } session || await store.GetHostAsync(host, ct) is not { } h)
        {
            return;
        }
        var vms = new List<DesiredVm>();
        foreach (var inst in await store.ListInstancesOnHostAsync(host, ct))
        {
            if (Desired(inst) is { } power)
            {
                vms.Add(await DesiredVmAsync(inst, power, ct));
            }
        }
        try
        {
            await session.PushAsync(new DesiredHostState(host, h.Epoch, vms), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogPushFailed(log, e, host);
        }
    }

    /// <summary>The desired state of one server as an agent receives it.</summary>
    public async Task<DesiredVm> DesiredVmAsync(Instance inst, DesiredPower power, CancellationToken ct)
    {
        var image = await store.GetImageAsync(inst.ImageId, ct);
        var key = inst.KeyName is { } keyName ? (await store.FindKeypairAsync(keyName, ct))?.PublicKey : null;
        return new DesiredVm(inst.Id, inst.Name, (int)(inst.Resources.MilliVcpus / 1000), inst.Resources.MemoryMib, inst.Resources.DiskGib,
            image?.Path, image?.DiskFormat, inst.UserData, key is null ? [] : [key], (inst.Forwards ?? []).Select(f => new ForwardSpec(f.HostPort, f.GuestPort)).ToList(),
            power, inst.RebootSeq, inst.Task == InstanceTask.RebootingHard, inst.StoragePool, inst.Ha, inst.VcpuCeiling, inst.MemoryCeilingMib);
    }

    /// <summary>
    /// Chooses where a running server may move: the same filters and scoring as a new placement
    /// (capacity, traits, group rules, zone profile), over the hosts whose agent is connected, that
    /// run the same driver and are not excluded; <paramref name="only"/> restricts it to one host
    /// (so a refusal explains why that host will not do).
    /// </summary>
    public async Task<PlacementResult> PlanMoveAsync(Instance inst, HostId? only, IReadOnlySet<HostId> exclude, CancellationToken ct)
    {
        var snapshot = await SnapshotAsync(ct);
        var connected = hub.ConnectedHosts.ToHashSet();
        var drivers = (await store.ListHostsAsync(ct)).ToDictionary(h => h.Id, h => h.Driver);
        var driver = inst.HostId is { } src ? drivers.GetValueOrDefault(src) : null;
        var hosts = snapshot.Hosts.Where(h => h.Id != inst.HostId && connected.Contains(h.Id) && !exclude.Contains(h.Id)
            && (driver is null || drivers.GetValueOrDefault(h.Id) == driver) && (only is null || h.Id == only)).ToImmutableArray();
        var (group, _) = await GroupAsync(inst, ct);
        return EngineFor(inst.Zone).Place(new PlacementRequest(inst.Id, inst.Resources, inst.Zone)
        {
            Group = group,
            RequiredTraits = [.. (inst.Traits ?? []).Where(t => !t.StartsWith('!'))],
            ForbiddenTraits = [.. (inst.Traits ?? []).Where(t => t.StartsWith('!')).Select(t => t[1..])],
        }, new ClusterSnapshot(hosts));
    }

    /// <summary>What the hypervisor should be doing for a server, from its state and task.</summary>
    public static DesiredPower? Desired(Instance i) => i.Task switch
    {
        InstanceTask.Deleting => DesiredPower.Absent,
        // Recovering: the server is being started on another host; the failed host, should its agent come back
        // meanwhile, must not start it too (its disk lock would refuse one of the two starts at best).
        InstanceTask.Recovering => DesiredPower.Stopped,
        InstanceTask.Stopping => DesiredPower.Stopped,
        InstanceTask.Pausing => DesiredPower.Paused,
        InstanceTask.Spawning or InstanceTask.Starting or InstanceTask.Resuming or InstanceTask.Rebooting or InstanceTask.RebootingHard => DesiredPower.Running,
        InstanceTask.Scheduling => null,
        _ => i.VmState switch
        {
            VmState.Active => DesiredPower.Running,
            VmState.Paused => DesiredPower.Paused,
            VmState.Stopped or VmState.Error => DesiredPower.Stopped,
            VmState.Deleted => DesiredPower.Absent,
            _ => null,
        },
    };

    [LoggerMessage(20, LogLevel.Information, "Server {InstanceId} placed on host {HostId}")]
    private static partial void LogPlaced(ILogger log, InstanceId instanceId, HostId hostId);

    [LoggerMessage(21, LogLevel.Warning, "Server {InstanceId} cannot be placed: {Fault}")]
    private static partial void LogUnschedulable(ILogger log, InstanceId instanceId, string fault);

    [LoggerMessage(22, LogLevel.Error, "Reconcile pass failed")]
    private static partial void LogPassFailed(ILogger log, Exception e);

    [LoggerMessage(23, LogLevel.Warning, "Push to host {HostId} failed")]
    private static partial void LogPushFailed(ILogger log, Exception e, HostId hostId);
}
