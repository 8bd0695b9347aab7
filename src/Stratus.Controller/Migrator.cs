using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// Moves servers between hosts. Phases: check (state, destination chosen by the scheduler or named,
/// claim held on the destination in the same transaction that sets the task) → prepare the
/// destination → migrate (QEMU pre-copy; the source runs throughout) → complete at the destination →
/// commit (the server's host changes only now, once it runs there) → complete at the source. A
/// failure before the commit rolls back: the destination removes what it prepared, its claim is
/// given back, the server keeps running on the source and the action log says why.
/// </summary>
public sealed partial class Migrator(
    IStateStore store, AgentHub hub, Reconciler reconciler, ReconcileSignal signal, ControllerOptions options, TimeProvider time, ILogger<Migrator> log)
{
    private readonly ConcurrentDictionary<InstanceId, Running> _running = new();

    private sealed class Running(MigrationDto view, CancellationTokenSource cts, long requestedAt, Task? task = null)
    {
        public MigrationDto View = view;
        /// <summary>Stopwatch timestamp of the request that started the migration (phase timings count from it).</summary>
        public long RequestedAt { get; } = requestedAt;
        public CancellationTokenSource Cts { get; } = cts;
        public Task? Task { get; set; } = task;
        public string? AbortReason;
    }

    /// <summary>The migration in progress for a server (null when none).</summary>
    public MigrationDto? View(InstanceId id) => _running.TryGetValue(id, out var r) ? r.View : null;

    /// <summary>Migrations running now (for maintenance and tests).</summary>
    public int RunningCount => _running.Count;

    /// <summary>Waits until the server's migration (if any) has finished.</summary>
    public Task WhenDoneAsync(InstanceId id) => _running.TryGetValue(id, out var r) && r.Task is { } t ? t : Task.CompletedTask;

    public async Task<Outcome<Instance>> StartAsync(string reference, MigrateRequest request, string requestedBy, CancellationToken ct)
    {
        var requestedAt = Stopwatch.GetTimestamp();
        var inst = InstanceId.TryParse(reference, out var iid) ? await store.GetInstanceAsync(iid, ct) : await store.FindInstanceAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return Problem.NotFound("server", reference);
        }
        var errors = new List<FieldError>();
        if (request.MaxDowntimeMs is { } dt and (< 1 or > 60_000))
        {
            errors.Add(new FieldError("max_downtime_ms", "out_of_range", "must be between 1 and 60000"));
        }
        if (request.BandwidthMibps is { } bw and (< 1 or > 1_000_000))
        {
            errors.Add(new FieldError("bandwidth_mibps", "out_of_range", "must be between 1 and 1000000"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (inst.Task is { } task)
        {
            return Problem.Conflict("task_in_progress", $"server '{inst.Name}' is {Names.Of(task)}; migrate it once that finishes");
        }
        if (_running.TryGetValue(inst.Id, out var previous) && previous.Task is { } tail)
        {
            // The last move is committed but its clean-up (destination confirm, source removal) still runs:
            // a new move waits for it, so neither host still holds an old copy when the next one starts.
            try
            {
                await tail.WaitAsync(options.MigrationPhaseTimeout * 2, ct);
            }
            catch (TimeoutException)
            {
                return Problem.Conflict("task_in_progress", $"server '{inst.Name}' is still finishing its last migration; try again");
            }
            inst = await store.GetInstanceAsync(inst.Id, ct) ?? inst;
        }
        var live = request.Live ?? inst.VmState == VmState.Active;
        if (live && inst.VmState != VmState.Active)
        {
            return Problem.Conflict("invalid_state", $"server '{inst.Name}' is {Names.Of(inst.VmState)}; live migration needs it running (cold migration moves stopped servers)");
        }
        if (!live && inst.VmState != VmState.Stopped)
        {
            return Problem.Conflict("invalid_state", $"server '{inst.Name}' is {Names.Of(inst.VmState)}; cold migration needs it stopped (live migration moves running servers)");
        }
        if (inst.HostId is not { } source || hub.Session(source) is null)
        {
            return Problem.Conflict("host_unreachable", $"the agent of server '{inst.Name}''s host is not connected");
        }
        if (MigrationsTouching(source) >= options.MaxMigrationsPerHost)
        {
            return Problem.Conflict("too_many_migrations", $"host {source} already runs {options.MaxMigrationsPerHost} migrations; retry when one finishes");
        }
        HostId? only = null;
        if (request.Host is { } named)
        {
            var h = HostId.TryParse(named, out var hid) ? await store.GetHostAsync(hid, ct) : await store.FindHostAsync(named, ct);
            if (h is null)
            {
                return Problem.NotFound("host", named);
            }
            if (h.Id == source)
            {
                return Problem.Conflict("same_host", $"server '{inst.Name}' already runs on host {h.Name}");
            }
            only = h.Id;
        }
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var plan = await reconciler.PlanMoveAsync(inst, only, new HashSet<HostId>(), ct);
            if (plan is not Placed p)
            {
                var reasons = plan switch
                {
                    Unschedulable u => string.Join("; ", u.Reasons),
                    UnschedulableAndUnresolvable u => string.Join("; ", u.Reasons),
                    _ => "no host fits",
                };
                return Problem.Conflict("no_valid_host", $"no host can take server '{inst.Name}': {(reasons.Length > 0 ? reasons : "no other connected host of the same driver")}");
            }
            var now = time.GetUtcNow();
            var kind = live ? "live" : "cold";
            var updated = inst with { Task = InstanceTask.Migrating, TaskRequestedAt = now, UpdatedAt = now };
            var record = new MigrationRecord(inst.Id, source, p.Host, kind, inst.Resources, now);
            var action = new InstanceAction(0, inst.Id, live ? "live-migrate" : "migrate", requestedBy, now, null, "pending", $"to host {p.Host}");
            var outcome = await store.BeginMigrationAsync(updated, record, p.Generation, action, ct);
            if (outcome == CasOutcome.Ok)
            {
                var fresh = await store.GetInstanceAsync(inst.Id, ct) ?? updated;
                var settings = new MigrationSettings(request.MaxDowntimeMs, request.AutoConverge ?? false, request.PostCopy ?? false,
                    request.BandwidthMibps is { } mib ? mib * 1024 * 1024 : null);
                Launch(fresh, record, settings, requestedAt);
                return fresh;
            }
            if (outcome == CasOutcome.NotFound)
            {
                return Problem.NotFound("server", reference);
            }
            // Lost a race (the server or the destination changed): look again.
            inst = await store.GetInstanceAsync(inst.Id, ct);
            if (inst is null || inst.Task is not null)
            {
                return Problem.Conflict("task_in_progress", $"server '{reference}' changed while its migration was planned; try again");
            }
        }
        return Problem.Conflict("conflict", "the cluster kept changing while the migration was planned; try again");
    }

    /// <summary>Aborts a running migration: the server stays (or ends up) on its source.</summary>
    public async Task<Outcome<Instance>> AbortAsync(string reference, CancellationToken ct)
    {
        var inst = InstanceId.TryParse(reference, out var iid) ? await store.GetInstanceAsync(iid, ct) : await store.FindInstanceAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return Problem.NotFound("server", reference);
        }
        if (!_running.TryGetValue(inst.Id, out var r))
        {
            return Problem.Conflict("not_migrating", $"server '{inst.Name}' is not being migrated");
        }
        r.AbortReason = "aborted on request";
        await r.Cts.CancelAsync();
        return inst;
    }

    private int MigrationsTouching(HostId host) =>
        _running.Values.Count(r => r.View.SourceHostId == host.ToString() || r.View.DestinationHostId == host.ToString());

    private void Launch(Instance inst, MigrationRecord m, MigrationSettings settings, long requestedAt)
    {
        var cts = new CancellationTokenSource(options.MigrationTimeout);
        var view = new MigrationDto(m.Kind, "preparing", m.Source.ToString(), m.Destination.ToString(), "setup", 0, 0, 0, 0, 0, null, null, m.StartedAt);
        var running = new Running(view, cts, requestedAt);
        _running[inst.Id] = running;
        running.Task = Task.Run(async () =>
        {
            try
            {
                await RunAsync(inst, m, settings, running);
            }
            finally
            {
                _running.TryRemove(inst.Id, out _);
                cts.Dispose();
            }
        }, CancellationToken.None);
    }

    private async Task RunAsync(Instance inst, MigrationRecord m, MigrationSettings settings, Running r)
    {
        var ct = r.Cts.Token;
        var committed = false;
        var phases = new PhaseClock(r.RequestedAt);
        phases.Mark("accept");
        try
        {
            var src = hub.Session(m.Source) ?? throw new AgentRequestException("host_unreachable", "the source host's agent disconnected");
            var dst = hub.Session(m.Destination) ?? throw new AgentRequestException("host_unreachable", "the destination host's agent disconnected");
            // If the destination's agent goes away mid-way, abort at once: the source must not keep
            // sending the VM to a host nobody manages.
            _ = WatchAsync(m.Destination, dst, "the destination host's agent disconnected", r);
            ActualVm? arrived = null;
            MigrationStatus? final = null;
            if (m.Kind == "live")
            {
                var desired = await reconciler.DesiredVmAsync(inst, inst.VmState == VmState.Paused ? DesiredPower.Paused : DesiredPower.Running, ct);
                // Forwards: the destination binds its own host ports (on one machine the source still holds the old ones).
                // Hot-plugged vCPUs/DIMMs (a live resize since the source's QEMU started): the destination recreates the
                // same devices, as the source's agent last reported them.
                desired = desired with
                {
                    Forwards = [.. desired.Forwards.Select(f => f with { HostPort = 0 })],
                    HotPlugged = hub.LastReport(m.Source)?.Vms.FirstOrDefault(v => v.Id == inst.Id)?.HotPlugged,
                };
                var incoming = await PhaseAsync(t => dst.PrepareIncomingAsync(desired, t), ct);
                phases.Mark("prepare");
                r.View = r.View with { Phase = "migrating" };
                final = await src.MigrateOutAsync(inst.Id, incoming, settings, new Relay(s => r.View = r.View with
                {
                    Status = s.Status,
                    TotalBytes = s.TotalBytes + s.DiskTotalBytes,
                    TransferredBytes = s.TransferredBytes + s.DiskTransferredBytes,
                    RemainingBytes = s.RemainingBytes,
                    DirtyRateBytesPerSecond = s.DirtyRateBytesPerSecond,
                    ExpectedDowntimeMs = s.ExpectedDowntimeMs,
                }), ct);
                phases.Mark("migrate");
                r.View = r.View with { Phase = "completing", Status = final.Status, DowntimeMs = final.DowntimeMs, TotalTimeMs = final.TotalTimeMs };
                if (inst.StoragePool == "shared")
                {
                    // On the shared pool the destination's QEMU resumes by itself the moment the state has
                    // arrived ("completed"): the server already runs there, so it is committed now and the
                    // destination's bookkeeping (CompleteIncoming) follows, off the user's critical path.
                    committed = true;
                    await CommitAsync(inst.Id, m, new ActualVm(inst.Id, inst.PowerState == PowerState.Paused ? PowerState.Paused : PowerState.Running, null,
                        incoming.Forwards, 0, null, true), Moved(m, final, phases));
                    phases.Mark("commit");
                    try
                    {
                        await PhaseAsync(t => dst.CompleteIncomingAsync(inst.Id, t), CancellationToken.None);
                    }
                    catch (Exception e) when (e is AgentRequestException or TimeoutException)
                    {
                        LogDestinationConfirmFailed(log, inst.Id, e.Message);
                    }
                }
                else
                {
                    arrived = await PhaseAsync(t => dst.CompleteIncomingAsync(inst.Id, t), CancellationToken.None);
                    phases.Mark("complete");
                }
            }
            else
            {
                var disk = await PhaseAsync(t => src.ExportDiskAsync(inst.Id, t), ct);
                phases.Mark("export");
                var desired = await reconciler.DesiredVmAsync(inst, DesiredPower.Stopped, ct);
                arrived = await dst.ImportStoppedAsync(desired, disk, ct); // copying a disk may take long: the whole-migration timeout bounds it
                phases.Mark("import");
                r.View = r.View with { Phase = "completing", Status = "completed" };
                // A stopped server's commit point: once the source let go of it, it lives on the destination only.
                await PhaseAsync(async t => { await src.CompleteOutgoingAsync(inst.Id, t); return true; }, CancellationToken.None);
            }
            if (!committed)
            {
                committed = true;
                await CommitAsync(inst.Id, m, arrived!, Moved(m, final, phases));
                phases.Mark("commit");
            }
            if (m.Kind == "live")
            {
                try
                {
                    await PhaseAsync(async t => { await src.CompleteOutgoingAsync(inst.Id, t); return true; }, CancellationToken.None);
                }
                catch (Exception e) when (e is AgentRequestException or TimeoutException)
                {
                    LogSourceCleanupFailed(log, inst.Id, e.Message);
                }
            }
            LogMigrated(log, inst.Id, m.Source, m.Destination, final?.TotalTimeMs, final?.DowntimeMs, phases.ToString());
        }
        catch (Exception e) when (!committed)
        {
            var reason = e switch
            {
                OperationCanceledException when r.AbortReason is { } why => why,
                OperationCanceledException => $"did not finish within {options.MigrationTimeout.TotalSeconds:0} s",
                AgentRequestException a => $"{a.Code}: {a.Message}",
                TimeoutException => e.Message,
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            await RollbackAsync(inst.Id, m, reason);
        }
        catch (Exception e)
        {
            LogCommitFailed(log, e, inst.Id);
        }
        finally
        {
            signal.Signal(m.Source);
            signal.Signal(m.Destination);
        }
    }

    private async Task WatchAsync(HostId host, IAgentSession session, string reason, Running r)
    {
        try
        {
            while (!r.Cts.IsCancellationRequested && r.View.Phase is "preparing" or "migrating")
            {
                if (!ReferenceEquals(hub.Session(host), session))
                {
                    r.AbortReason = reason;
                    await r.Cts.CancelAsync();
                    return;
                }
                await Task.Delay(100, r.Cts.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>The action log's line for a finished move: QEMU's own figures, then where Stratus's time went up to the commit.</summary>
    private static string Moved(MigrationRecord m, MigrationStatus? final, PhaseClock phases) => final is null
        ? $"moved to host {m.Destination} (cold; {phases} from the request)"
        : $"moved to host {m.Destination}: total {final.TotalTimeMs} ms, downtime {final.DowntimeMs} ms, {final.TransferredBytes} bytes ({phases} from the request)";

    /// <summary>Milliseconds spent in each phase since the request, e.g. "accept 3 ms, prepare 51 ms, migrate 312 ms".</summary>
    private sealed class PhaseClock(long start)
    {
        private readonly List<(string Name, double Ms)> _marks = [];
        private long _last = start;

        public void Mark(string name)
        {
            var now = Stopwatch.GetTimestamp();
            _marks.Add((name, Stopwatch.GetElapsedTime(_last, now).TotalMilliseconds));
            _last = now;
        }

        public override string ToString() =>
            string.Join(", ", _marks.Select(p => $"{p.Name} {p.Ms.ToString("0", System.Globalization.CultureInfo.InvariantCulture)} ms"));
    }

    /// <summary>Runs one phase with the phase timeout (and the migration's own cancellation).</summary>
    private async Task<T> PhaseAsync<T>(Func<CancellationToken, Task<T>> phase, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.MigrationPhaseTimeout);
        try
        {
            return await phase(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"a migration phase got no answer within {options.MigrationPhaseTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary>The server runs on the destination: its host changes now (with the allocation), never earlier.</summary>
    private async Task CommitAsync(InstanceId id, MigrationRecord m, ActualVm arrived, string message)
    {
        for (var attempt = 0; ; attempt++)
        {
            var fresh = await store.GetInstanceAsync(id, CancellationToken.None) ?? throw new InvalidOperationException($"server {id} vanished during its migration");
            var now = time.GetUtcNow();
            var moved = fresh with
            {
                HostId = m.Destination,
                Task = null,
                TaskRequestedAt = null,
                PowerState = arrived.Power,
                Forwards = arrived.Forwards.Count > 0 ? [.. arrived.Forwards.Select(f => new Forward(f.HostPort, f.GuestPort))] : fresh.Forwards,
                UpdatedAt = now,
            };
            var outcome = await store.FinishMigrationAsync(moved, true, new ActionFinish("success", message, now), CancellationToken.None);
            if (outcome == CasOutcome.Ok || attempt > 50)
            {
                return;
            }
            await Task.Delay(20);
        }
    }

    private async Task RollbackAsync(InstanceId id, MigrationRecord m, string reason)
    {
        if (hub.Session(m.Destination) is { } dst)
        {
            try
            {
                await PhaseAsync(async t => { await dst.AbortIncomingAsync(id, t); return true; }, CancellationToken.None);
            }
            catch (Exception e) when (e is AgentRequestException or TimeoutException)
            {
                LogAbortFailed(log, id, e.Message); // a dead destination leaves nothing running; it cleans up when it returns
            }
        }
        for (var attempt = 0; ; attempt++)
        {
            var fresh = await store.GetInstanceAsync(id, CancellationToken.None);
            if (fresh is null)
            {
                return;
            }
            var now = time.GetUtcNow();
            var back = fresh with { Task = null, TaskRequestedAt = null, UpdatedAt = now };
            var outcome = await store.FinishMigrationAsync(back, false, new ActionFinish("error", $"rolled back: {reason}; the server stays on host {m.Source}", now), CancellationToken.None);
            if (outcome is CasOutcome.Ok or CasOutcome.NotFound || attempt > 50)
            {
                LogRolledBack(log, id, reason);
                return;
            }
            await Task.Delay(20);
        }
    }

    private readonly ConcurrentDictionary<HostId, Task> _evacuations = new();

    /// <summary>
    /// Puts a host in maintenance: no new server is placed on it from now on, and every server on it
    /// moves away — running ones live, stopped ones cold — with at most
    /// <see cref="ControllerOptions.MaxMigrationsPerHost"/> at a time, each placed by the scheduler
    /// (so group and trait rules hold). The evacuation runs in the background; the host's server
    /// count reaching 0 says it is done. Servers that cannot move (paused, in error, no room) stay and
    /// say why in their action log.
    /// </summary>
    public async Task<Outcome<Host>> MaintenanceAsync(string reference, CancellationToken ct)
    {
        var h = HostId.TryParse(reference, out var hid) ? await store.GetHostAsync(hid, ct) : await store.FindHostAsync(reference, ct);
        if (h is null)
        {
            return Problem.NotFound("host", reference);
        }
        if (h.State != HostState.Maintenance)
        {
            if (h.State != HostState.Up && h.State != HostState.Disabled)
            {
                return Problem.Conflict("invalid_state", $"host {h.Name} is {Names.Of(h.State)}; only an up or disabled host can enter maintenance");
            }
            for (var attempt = 0; ; attempt++)
            {
                var outcome = await store.SetHostStateAsync(h.Id, HostState.Maintenance, h.Generation, ct);
                if (outcome == CasOutcome.Ok)
                {
                    break;
                }
                h = await store.GetHostAsync(h.Id, ct);
                if (h is null || attempt > 20)
                {
                    return Problem.Conflict("conflict", "the host kept changing; try again");
                }
            }
        }
        if (!_evacuations.TryGetValue(h.Id, out var running) || running.IsCompleted)
        {
            _evacuations[h.Id] = Task.Run(() => EvacuateAsync(h.Id), CancellationToken.None);
        }
        return await store.GetHostAsync(h.Id, ct) ?? h;
    }

    /// <summary>Returns a host from maintenance (or disabled) to service; an evacuation in progress stops starting migrations.</summary>
    public async Task<Outcome<Host>> EnableAsync(string reference, CancellationToken ct)
    {
        var h = HostId.TryParse(reference, out var hid) ? await store.GetHostAsync(hid, ct) : await store.FindHostAsync(reference, ct);
        if (h is null)
        {
            return Problem.NotFound("host", reference);
        }
        // Enabling during an evacuation cancels it: the loop sees the host is no longer in
        // maintenance and starts no further migration (those running finish).
        for (var attempt = 0; h.State is HostState.Maintenance or HostState.Disabled; attempt++)
        {
            if (await store.SetHostStateAsync(h.Id, HostState.Up, h.Generation, ct) == CasOutcome.Ok || attempt > 20)
            {
                break;
            }
            h = await store.GetHostAsync(h.Id, ct) ?? h;
        }
        signal.Signal();
        return await store.GetHostAsync(h.Id, ct) ?? h;
    }

    /// <summary>Waits for a host's evacuation (tests, and the CLI's --wait through polling).</summary>
    public Task WhenEvacuatedAsync(HostId host) => _evacuations.TryGetValue(host, out var t) ? t : Task.CompletedTask;

    private async Task EvacuateAsync(HostId host)
    {
        var failures = new Dictionary<InstanceId, int>();
        while (true)
        {
            var current = await store.GetHostAsync(host, CancellationToken.None);
            if (current?.State != HostState.Maintenance)
            {
                return; // enabled again meanwhile
            }
            var movable = (await store.ListInstancesOnHostAsync(host, CancellationToken.None))
                .Where(i => i.Task is null && i.VmState is VmState.Active or VmState.Stopped && failures.GetValueOrDefault(i.Id) < 3)
                .ToList();
            if (movable.Count == 0 && !_running.Values.Any(r => r.View.SourceHostId == host.ToString()))
            {
                LogEvacuated(log, host);
                return;
            }
            foreach (var inst in movable)
            {
                if (MigrationsTouching(host) >= options.MaxMigrationsPerHost)
                {
                    break;
                }
                // Every attempt counts (a refusal, or a migration that later rolls back): three, then the server stays.
                failures[inst.Id] = failures.GetValueOrDefault(inst.Id) + 1;
                var started = await StartAsync(inst.Id.ToString(), new MigrateRequest(null, null, null, null, null, null), "maintenance", CancellationToken.None);
                if (!started.Ok)
                {
                    if (failures[inst.Id] == 3)
                    {
                        var now = time.GetUtcNow();
                        await store.UpdateInstanceAsync(inst, new InstanceAction(0, inst.Id, "evacuate", "maintenance", now, now, "error", started.Problem!.Detail),
                            CancellationToken.None);
                    }
                }
            }
            await Task.Delay(200);
        }
    }

    /// <summary>
    /// At start-up: migrations the store records but no workflow runs (the controller restarted
    /// mid-way) are rolled back — unless the server already runs at the destination only.
    /// </summary>
    public async Task RecoverAsync(CancellationToken ct)
    {
        // HA recoveries are settled by HaMonitor against what their destination reports (the VM may already run there).
        foreach (var m in (await store.ListMigrationsAsync(ct)).Where(m => m.Kind != "recovery"))
        {
            if (!_running.ContainsKey(m.InstanceId))
            {
                await RollbackAsync(m.InstanceId, m, "the controller restarted during the migration");
            }
        }
    }

    [LoggerMessage(35, LogLevel.Information, "Host {HostId} evacuated")]
    private static partial void LogEvacuated(ILogger log, HostId hostId);

    private sealed class Relay(Action<MigrationStatus> report) : IProgress<MigrationStatus>
    {
        public void Report(MigrationStatus value) => report(value);
    }

    [LoggerMessage(30, LogLevel.Information, "Server {InstanceId} migrated {Source} -> {Destination} (total {TotalMs} ms, downtime {DowntimeMs} ms; {Phases})")]
    private static partial void LogMigrated(ILogger log, InstanceId instanceId, HostId source, HostId destination, long? totalMs, long? downtimeMs, string phases);

    [LoggerMessage(31, LogLevel.Warning, "Server {InstanceId}: migration rolled back: {Reason}")]
    private static partial void LogRolledBack(ILogger log, InstanceId instanceId, string reason);

    [LoggerMessage(32, LogLevel.Warning, "Server {InstanceId}: the destination could not clean up after a failed migration: {Reason}")]
    private static partial void LogAbortFailed(ILogger log, InstanceId instanceId, string reason);

    [LoggerMessage(33, LogLevel.Warning, "Server {InstanceId}: the source could not clean up after the migration: {Reason}")]
    private static partial void LogSourceCleanupFailed(ILogger log, InstanceId instanceId, string reason);

    [LoggerMessage(36, LogLevel.Warning, "Server {InstanceId}: it runs on the destination, but the destination could not confirm: {Reason}")]
    private static partial void LogDestinationConfirmFailed(ILogger log, InstanceId instanceId, string reason);

    [LoggerMessage(34, LogLevel.Error, "Server {InstanceId}: committing the migration failed")]
    private static partial void LogCommitFailed(ILogger log, Exception e, InstanceId instanceId);
}
