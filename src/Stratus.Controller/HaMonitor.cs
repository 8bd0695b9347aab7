using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Host = Stratus.Core.Compute.Host;

namespace Stratus.Controller;

/// <summary>Timings of failure detection and recovery; safe defaults, every one an option (tests shorten them).</summary>
public sealed class HaOptions
{
    /// <summary>The shared pool (where agents write storage heartbeats and fence records); HA is off without one.</summary>
    public string? SharedPool { get; init; }

    /// <summary>How often hosts are checked. Default 1 s.</summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A host whose last heartbeat is older (or whose stream is gone for this long) is suspected. Default 5 s.</summary>
    public TimeSpan SuspectAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Second witness: the host's storage heartbeat is older than this. Default 8 s (longer than the agent's lease, 6 s,
    /// so a cut-off agent has always fenced itself before its heartbeat can count as stopped).</summary>
    public TimeSpan StorageTimeout { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>After a controller restart, how long a recovery the previous process left in progress waits for its destination's agent
    /// to report before it is rolled back (and retried under the disk-lock guard). Default 15 s.</summary>
    public TimeSpan InterruptedWait { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The phases a test may hold a recovery after (see <see cref="HoldRecovery"/>).</summary>
    public static readonly IReadOnlyList<string> HoldPhases = ["claimed", "imported", "started"];

    /// <summary>
    /// Fault injection for tests; empty in production. The recovery of a server named here stops for good after the
    /// given phase — <c>claimed</c> (destination chosen and claimed in the store, nothing sent), <c>imported</c> (the VM
    /// defined there, stopped) or <c>started</c> (its QEMU runs there, the store not yet updated) — so a test can kill the
    /// controller at exactly that point.
    /// </summary>
    public IReadOnlyDictionary<string, string> HoldRecovery { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);
    /// <summary>
    /// Admission control: host failures the cloud must tolerate (0 = off, the default; range 0–100). When above 0, a server
    /// is created and HA switched on only if, afterwards, the HA servers of any this many failed hosts can still be
    /// restarted on the others within their allocation ratios (<see cref="Scheduler.Admission.FailoverReserve"/>).
    /// </summary>
    public int Tolerate { get; init; }

    /// <summary>
    /// Out-of-band fence (IPMI, Redfish, a PDU): a command run by <c>/bin/sh</c> as <c>COMMAND HOST_NAME HOST_ID EPOCH</c>
    /// (also in the environment as STRATUS_HOST_NAME, STRATUS_HOST_ID, STRATUS_EPOCH) when a host is declared failed on a
    /// stopped storage heartbeat; exit code 0 means the host is off. Null (the default): no command. See <see cref="HaMonitor"/>.
    /// </summary>
    public string? FenceCommand { get; init; }

    /// <summary>A fence command still running after this is killed and counts as failed. Default 30 s; range 1 s–10 min.</summary>
    public TimeSpan FenceTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After a failed fence command, the wait before it is run again (while the host stays failed). Default 30 s; range 1 s–1 h.</summary>
    public TimeSpan FenceRetry { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>Whether a VM's disk on the shared pool is still held open by a QEMU process (QEMU's image locking).</summary>
public interface IDiskLockProbe
{
    /// <summary>True when some process holds the VM's disk; false when it is free; null when there is no disk to probe.</summary>
    Task<bool?> IsLockedAsync(InstanceId id, CancellationToken ct);
}

/// <summary>
/// High availability: detects failed hosts and restarts their HA servers elsewhere, each exactly once.
/// A host is <b>suspected</b> after missed heartbeats; it is <b>declared failed</b> — its epoch (fencing
/// token) bumped first — only with a second witness: its storage heartbeat on the shared pool stopped, or
/// its own fence record is there. Each HA server on it is then restarted on another host, by priority,
/// but only once its disk is free (no QEMU holds it: the last guard against running twice — an agent
/// that crashed alone leaves its QEMU running, and nothing is restarted). <c>host_id</c> changes only
/// once QEMU runs on the new host. Every incident is a timeline in the store.
/// <para>
/// Across a controller restart: the monitor writes its own storage heartbeat (<see cref="ControllerBeatFile"/>), so
/// agents can tell a controller outage from a cut link and do not fence for it; silence it did not watch (before its
/// start) is not counted against a host; and recoveries the previous process left in progress are settled against
/// what the destinations report: a VM already running there is adopted, one that is not is removed there and retried.
/// </para>
/// <para><b>Out-of-band fence</b> (<see cref="IHostFence"/>, e.g. <see cref="HaOptions.FenceCommand"/>). When one is
/// configured, recovery needs positive evidence that the host is off, and a stopped storage heartbeat alone is no longer
/// enough: a host declared failed on its stopped heartbeat is fenced (with its new epoch) and its servers are restarted
/// only after the fence succeeds (<c>fence_ok</c>), or once the host's own fence record appears (<c>fence_record</c>:
/// the host fenced itself — or an operator who checked it is off wrote the record by hand). A failed or timed-out fence
/// (<c>fence_failed</c>, recorded once) is retried every <see cref="HaOptions.FenceRetry"/>; nothing is restarted
/// meanwhile. A host declared failed on its own fence record is not fenced at all: it is alive, has stopped its HA VMs
/// and keeps its other VMs. The fence runs only after the second witness, never on missed heartbeats alone, so a
/// controller cut off from its hosts does not power them all off; it never starts recovery sooner than the storage
/// witness would.</para>
/// </summary>
public sealed partial class HaMonitor(
    IStateStore store, AgentHub hub, Reconciler reconciler, ReconcileSignal signal, HaOptions options, IDiskLockProbe locks, TimeProvider time,
    ILogger<HaMonitor> log, IHostFence? fence = null) : BackgroundService
{
    /// <summary>The controller's storage heartbeat, in <c>SHARED/.ha/</c>, rewritten every check interval. An agent whose lease
    /// lapsed while this file stands still knows no controller can restart its VMs elsewhere, and does not fence.</summary>
    public const string ControllerBeatFile = "controller.hb";

    private readonly ConcurrentDictionary<HostId, Incident> _open = new();
    private readonly ConcurrentDictionary<InstanceId, Task> _recovering = new();
    private readonly ConcurrentDictionary<InstanceId, bool> _waitingNoted = new();
    private readonly ConcurrentDictionary<InstanceId, MigrationRecord> _interrupted = new();
    private readonly Dictionary<HostId, DateTimeOffset> _lastSeen = [];
    private readonly SemaphoreSlim _incidentGate = new(1, 1);
    private readonly DateTimeOffset _startedAt = time.GetUtcNow();
    private long _beatPendingSince;
    private volatile bool _beatFailed;
    private readonly ConcurrentDictionary<Guid, Task> _fencing = new();
    private readonly ConcurrentDictionary<Guid, (int Attempts, DateTimeOffset Next)> _fenceFailures = new();
    private readonly ConcurrentDictionary<Guid, bool> _fenceCleared = new();
    private CancellationToken _stopping;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        await LoadAsync(stoppingToken);
        if (options.SharedPool is null)
        {
            foreach (var m in _interrupted.Values)
            {
                if (await store.GetInstanceAsync(m.InstanceId, stoppingToken) is { } inst)
                {
                    await RollBackAsync(inst, m, "HA is off (no shared pool)", stoppingToken);
                }
            }
            return;
        }
        var beat = Task.Run(() => BeatLoopAsync(stoppingToken), CancellationToken.None);
        using var timer = new PeriodicTimer(options.CheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await CheckAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogCheckFailed(log, e);
                }
            }
        }
        finally
        {
            await beat.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>
    /// Reads what a previous controller process left: open incidents, and recoveries it had begun (a <c>recovery</c>
    /// row, the server in task <c>recovering</c>), which <see cref="CheckAsync"/> settles. Public for tests.
    /// </summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        foreach (var i in (await store.ListIncidentsAsync(ct)).Where(i => i.State == "open"))
        {
            _open[i.HostId] = i;
        }
        foreach (var m in (await store.ListMigrationsAsync(ct)).Where(m => m.Kind == "recovery" && !_recovering.ContainsKey(m.InstanceId)))
        {
            _interrupted[m.InstanceId] = m;
            LogInterrupted(log, m.InstanceId, m.Destination);
        }
    }

    /// <summary>Rewrites <see cref="ControllerBeatFile"/> every check interval; a write that fails or hangs marks the pool unreachable.</summary>
    private async Task BeatLoopAsync(CancellationToken ct)
    {
        var dir = Path.Combine(options.SharedPool!, ".ha");
        var file = Path.Combine(dir, ControllerBeatFile);
        using var timer = new PeriodicTimer(options.CheckInterval, time);
        try
        {
            do
            {
                Interlocked.Exchange(ref _beatPendingSince, time.GetUtcNow().UtcTicks);
                try
                {
                    Directory.CreateDirectory(dir);
                    await File.WriteAllTextAsync(file, $"{Environment.ProcessId} {time.GetUtcNow():O}\n", ct);
                    _beatFailed = false;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    if (!_beatFailed)
                    {
                        LogPoolUnreachable(log, e.Message);
                    }
                    _beatFailed = true;
                }
                Interlocked.Exchange(ref _beatPendingSince, 0);
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>False while the controller cannot write its own heartbeat to the shared pool: it then cannot read the
    /// hosts' either, and a missing storage heartbeat is no witness.</summary>
    private bool PoolReachable
    {
        get
        {
            var pending = Interlocked.Read(ref _beatPendingSince);
            return !_beatFailed && (pending == 0 || time.GetUtcNow().UtcTicks - pending < 3 * options.CheckInterval.Ticks);
        }
    }

    /// <summary>One pass over every host (public for tests).</summary>
    public async Task CheckAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        ResolveInterrupted(now);
        foreach (var h in await store.ListHostsAsync(ct))
        {
            var connected = hub.Session(h.Id) is not null;
            if (connected)
            {
                _lastSeen[h.Id] = now;
            }
            var seen = _lastSeen.TryGetValue(h.Id, out var s) ? s : h.LastHeartbeat ?? h.CreatedAt;
            var heartbeat = h.LastHeartbeat ?? h.CreatedAt;
            var lastSign = connected ? heartbeat : (seen < heartbeat ? seen : heartbeat);
            // This process did not watch the hosts before it started: their silence counts from its start at the earliest.
            var silent = now - (lastSign > _startedAt ? lastSign : _startedAt);
            if (h.State == HostState.Up && connected && silent < options.SuspectAfter)
            {
                if (_open.TryRemove(h.Id, out var back))
                {
                    _fenceFailures.TryRemove(back.Id, out _);
                    _fenceCleared.TryRemove(back.Id, out _);
                    await CloseAsync(back, "the host's agent is back; servers still on it were re-adopted", now, ct);
                }
                continue;
            }
            if (h.State == HostState.Up && silent >= options.SuspectAfter && await HaServersAsync(h.Id, ct) is { Count: > 0 })
            {
                var incident = _open.GetOrAdd(h.Id, _ => new Incident(Guid.CreateVersion7(), h.Id, "open", now, null,
                    [new IncidentEvent(now, "detected", $"host {h.Name}: no heartbeat for {silent.TotalSeconds:0.0} s")]));
                if (incident.Timeline.Count == 1 && incident.Timeline[0].Kind == "detected")
                {
                    await store.SaveIncidentAsync(incident, ct);
                    LogSuspected(log, h.Name, silent.TotalSeconds);
                }
                if (Witness(h) is { } witness)
                {
                    // The epoch is bumped before anything is restarted: an agent of the old epoch owns nothing any more.
                    if (await store.DeclareHostFailedAsync(h.Id, h.Epoch, ct) == CasOutcome.Ok)
                    {
                        var selfFenced = HasFenceRecord(h);
                        var next = fence is null ? "" : selfFenced ? "; no out-of-band fence needed" : "; fencing it out of band before anything is restarted";
                        await AddAsync(h.Id, new IncidentEvent(time.GetUtcNow(), "fenced", $"{witness}; declared failed, epoch {h.Epoch} → {h.Epoch + 1}{next}"), ct);
                        LogDeclared(log, h.Name, witness);
                        if (fence is not null && !selfFenced && _open.TryGetValue(h.Id, out var declared))
                        {
                            StartFence(h with { State = HostState.Failed, Epoch = h.Epoch + 1 }, declared.Id);
                        }
                    }
                }
                continue;
            }
            if (h.State == HostState.Failed)
            {
                await RecoverHostAsync(h, ct);
            }
        }
    }

    private async Task<List<Instance>> HaServersAsync(HostId host, CancellationToken ct) =>
        [.. (await store.ListInstancesOnHostAsync(host, ct)).Where(i => i.Ha && i.VmState is VmState.Active or VmState.Paused or VmState.Error)];

    /// <summary>True when the host's own fence record is on the shared pool (it stopped its HA VMs and its storage heartbeat).</summary>
    private bool HasFenceRecord(Host h) => File.Exists(Path.Combine(options.SharedPool!, ".ha", h.Name + ".fenced"));

    /// <summary>The second witness, or null: the host's own fence record (at its current epoch), or its storage heartbeat stopped.</summary>
    private string? Witness(Host h)
    {
        var dir = Path.Combine(options.SharedPool!, ".ha");
        if (HasFenceRecord(h))
        {
            return "the host fenced itself (fence record on the shared pool)";
        }
        if (!PoolReachable)
        {
            return null; // the controller cannot write the pool itself: a heartbeat it cannot read proves nothing
        }
        var beat = Path.Combine(dir, h.Name + ".hb");
        var age = File.Exists(beat) ? time.GetUtcNow() - File.GetLastWriteTimeUtc(beat) : TimeSpan.MaxValue;
        return age >= options.StorageTimeout
            ? age == TimeSpan.MaxValue ? "no storage heartbeat from the host on the shared pool" : $"its storage heartbeat stopped {age.TotalSeconds:0.0} s ago"
            : null;
    }

    private async Task RecoverHostAsync(Host h, CancellationToken ct)
    {
        var pending = (await HaServersAsync(h.Id, ct)).Where(i => i.Task is null).OrderByDescending(i => i.HaPriority).ThenBy(i => i.CreatedAt).ToList();
        if (!_open.TryGetValue(h.Id, out var incident))
        {
            return;
        }
        if (pending.Count == 0 && incident.Timeline.Any(e => e.Kind is "restarted" or "waiting"))
        {
            if ((await HaServersAsync(h.Id, ct)).Count == 0 && _open.TryRemove(h.Id, out var done))
            {
                _fenceFailures.TryRemove(done.Id, out _);
                _fenceCleared.TryRemove(done.Id, out _);
                await CloseAsync(done, "every HA server runs elsewhere", time.GetUtcNow(), ct);
            }
            return;
        }
        if (pending.Count > 0 && !await FencedEnoughAsync(h, incident, ct))
        {
            return;
        }
        foreach (var inst in pending)
        {
            if (_recovering.ContainsKey(inst.Id))
            {
                continue;
            }
            // Already running on another host (a recovery whose outcome was lost, its destination back late): adopt it there.
            if (hub.RunningOn(inst.Id, h.Id) is { } stray)
            {
                Run(inst.Id, () => AdoptStrayAsync(inst, h, stray.Host, stray.Vm, incident.DetectedAt));
                continue;
            }
            if (await locks.IsLockedAsync(inst.Id, ct) == true)
            {
                if (_waitingNoted.TryAdd(inst.Id, true))
                {
                    await AddAsync(h.Id, new IncidentEvent(time.GetUtcNow(), "waiting", $"server {inst.Name}: its QEMU still holds the disk; not restarted while it lives", inst.Id.ToString()), ct);
                }
                continue;
            }
            _waitingNoted.TryRemove(inst.Id, out _);
            Run(inst.Id, () => RecoverAsync(inst, h, incident.DetectedAt, CancellationToken.None));
        }
    }

    /// <summary>Runs one server's recovery work off the check loop; at most one at a time per server.</summary>
    private void Run(InstanceId id, Func<Task> work)
    {
        var gate = new TaskCompletionSource();
        if (!_recovering.TryAdd(id, gate.Task))
        {
            return;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await work();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogRecoveryFailed(log, e, id);
            }
            finally
            {
                _recovering.TryRemove(id, out _);
                gate.SetResult();
            }
        }, CancellationToken.None);
    }

    private async Task RecoverAsync(Instance inst, Host failed, DateTimeOffset detectedAt, CancellationToken ct)
    {
        var plan = await reconciler.PlanMoveAsync(inst, null, new HashSet<HostId> { failed.Id }, ct);
        if (plan is not Placed p)
        {
            await AddAsync(failed.Id, new IncidentEvent(time.GetUtcNow(), "no_room", $"server {inst.Name}: no host can take it now; retrying", inst.Id.ToString()), ct);
            return;
        }
        var now = time.GetUtcNow();
        var record = new MigrationRecord(inst.Id, failed.Id, p.Host, "recovery", inst.Resources, now);
        var recovering = inst with { Task = InstanceTask.Recovering, TaskRequestedAt = now, UpdatedAt = now };
        if (await store.BeginMigrationAsync(recovering, record, p.Generation,
            new InstanceAction(0, inst.Id, "recover", "ha", now, null, "pending", $"host {failed.Name} failed; restarting on host {p.Host}"), ct) != CasOutcome.Ok)
        {
            return; // lost a race; the next pass plans again
        }
        await HoldAsync(inst, "claimed");
        var dst = hub.Session(p.Host);
        try
        {
            if (dst is null)
            {
                throw new AgentRequestException("host_unreachable", "the chosen host's agent disconnected");
            }
            var desired = await reconciler.DesiredVmAsync(inst, DesiredPower.Stopped, ct);
            desired = desired with { Forwards = [.. desired.Forwards.Select(f => f with { HostPort = 0 })] };
            await dst.ImportStoppedAsync(desired, null, ct);
            await HoldAsync(inst, "imported");
            var running = await dst.StartVmAsync(inst.Id, ct);
            await HoldAsync(inst, "started");
            var done = time.GetUtcNow();
            await CommitAsync(inst.Id, failed.Id, p.Host, running, $"restarted on host {p.Host} {(done - detectedAt).TotalSeconds:0.0} s after host {failed.Name} was suspected",
                detectedAt, ct);
        }
        catch (Exception e) when (e is AgentRequestException or OperationCanceledException or TimeoutException)
        {
            var reason = e is AgentRequestException a ? $"{a.Code}: {a.Message}" : e.Message;
            if (dst is not null)
            {
                try
                {
                    await dst.StopAsyncSafe(inst.Id);
                }
                catch (AgentRequestException)
                {
                }
            }
            if (await store.GetInstanceAsync(inst.Id, CancellationToken.None) is { } fresh)
            {
                await RollBackAsync(fresh, record, reason, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// The server runs on <paramref name="destination"/>: one transaction moves it there (host_id, allocation, state
    /// active, the recovery row gone). Called only with the destination's word that QEMU runs.
    /// </summary>
    private async Task<bool> CommitAsync(InstanceId id, HostId failed, HostId destination, ActualVm running, string message, DateTimeOffset detectedAt,
        CancellationToken ct)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var fresh = await store.GetInstanceAsync(id, ct);
            if (fresh is null)
            {
                return false;
            }
            var done = time.GetUtcNow();
            var moved = fresh with
            {
                HostId = destination,
                Task = null,
                TaskRequestedAt = null,
                VmState = VmState.Active,
                PowerState = running.Power,
                Fault = null,
                Forwards = running.Forwards.Count > 0 ? [.. running.Forwards.Select(f => new Forward(f.HostPort, f.GuestPort))] : fresh.Forwards,
                UpdatedAt = done,
            };
            if (await store.FinishMigrationAsync(moved, true, new ActionFinish("success", message, done), ct) == CasOutcome.Ok)
            {
                await AddAsync(failed, new IncidentEvent(done, "restarted", $"server {fresh.Name}: {message}", id.ToString()), ct);
                LogRecovered(log, id, destination, (done - detectedAt).TotalSeconds);
                signal.Signal(destination);
                return true;
            }
        }
        return false;
    }

    /// <summary>Gives the destination's claim back; the server stays on the failed host without a task, and the next check retries it.</summary>
    private async Task RollBackAsync(Instance inst, MigrationRecord m, string reason, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var fresh = attempt == 0 ? inst : await store.GetInstanceAsync(inst.Id, ct);
            if (fresh is null)
            {
                break;
            }
            var outcome = await store.FinishMigrationAsync(fresh with { Task = null, TaskRequestedAt = null }, false,
                new ActionFinish("error", $"recovery attempt failed ({reason}); retrying", time.GetUtcNow()), ct);
            if (outcome is CasOutcome.Ok or CasOutcome.NotFound)
            {
                break;
            }
        }
        _interrupted.TryRemove(inst.Id, out _);
        await AddAsync(m.Source, new IncidentEvent(time.GetUtcNow(), "retry", $"server {inst.Name}: {reason}", inst.Id.ToString()), ct);
    }

    /// <summary>
    /// Settles the recoveries a previous controller process left in progress, once their destination's agent has reported
    /// to this one (its report lists every VM its hypervisor has, recovered ones included): running there → adopted;
    /// defined there but not running → removed there (refused while a start still in flight makes it run: the next report
    /// tells), then rolled back and retried; not there → rolled back and retried. A destination silent for
    /// <see cref="HaOptions.InterruptedWait"/> after this process started → rolled back; the disk-lock guard still keeps the
    /// server from starting anywhere while a QEMU of it lives, and a VM found running later is adopted where it runs.
    /// </summary>
    private void ResolveInterrupted(DateTimeOffset now)
    {
        foreach (var m in _interrupted.Values)
        {
            if (_recovering.ContainsKey(m.InstanceId))
            {
                continue;
            }
            var session = hub.Session(m.Destination);
            var report = session is null ? null : hub.LastReport(m.Destination);
            if (report is null && now - _startedAt < options.InterruptedWait)
            {
                continue;
            }
            Run(m.InstanceId, () => ResolveAsync(m, session, report, CancellationToken.None));
        }
    }

    private async Task ResolveAsync(MigrationRecord m, IAgentSession? session, HostReport? report, CancellationToken ct)
    {
        var inst = await store.GetInstanceAsync(m.InstanceId, ct);
        if (inst is not { Task: InstanceTask.Recovering })
        {
            _interrupted.TryRemove(m.InstanceId, out _);
            return;
        }
        if (report is null || session is null)
        {
            await RollBackAsync(inst, m, "the controller restarted during the recovery and the destination's agent did not report since", ct);
            return;
        }
        var vm = report.Vms.FirstOrDefault(v => v.Id == m.InstanceId && v.Exists);
        var detectedAt = _open.TryGetValue(m.Source, out var incident) ? incident.DetectedAt : m.StartedAt;
        if (vm is { Power: PowerState.Running or PowerState.Paused })
        {
            var message = $"adopted on host {m.Destination}, where it already ran when the controller restarted during its recovery";
            if (await CommitAsync(m.InstanceId, m.Source, m.Destination, vm, message, detectedAt, ct))
            {
                _interrupted.TryRemove(m.InstanceId, out _);
                LogAdopted(log, m.InstanceId, m.Destination);
            }
            return;
        }
        if (vm is not null)
        {
            try
            {
                await session.StopAsyncSafe(m.InstanceId);
            }
            catch (Exception e) when (e is AgentRequestException or OperationCanceledException or TimeoutException)
            {
                LogInterruptedCleanupFailed(log, m.InstanceId, m.Destination, e.Message);
                return; // kept; settled again on a later report
            }
        }
        await RollBackAsync(inst, m, $"the controller restarted during the recovery; host {m.Destination} had {(vm is null ? "not defined it" : "defined but not started it (removed)")}", ct);
    }

    /// <summary>A pending server of a failed host that another host reports running: claim it there and commit, nothing restarted.</summary>
    private async Task AdoptStrayAsync(Instance inst, Host failed, HostId host, ActualVm vm, DateTimeOffset detectedAt)
    {
        var ct = CancellationToken.None;
        if (await store.GetHostAsync(host, ct) is not { } h)
        {
            return;
        }
        var now = time.GetUtcNow();
        var record = new MigrationRecord(inst.Id, failed.Id, host, "recovery", inst.Resources, now);
        var outcome = await store.BeginMigrationAsync(inst with { Task = InstanceTask.Recovering, TaskRequestedAt = now, UpdatedAt = now }, record, h.Generation,
            new InstanceAction(0, inst.Id, "recover", "ha", now, null, "pending", $"host {failed.Name} failed; found running on host {h.Name}"), ct);
        if (outcome != CasOutcome.Ok)
        {
            if (_waitingNoted.TryAdd(inst.Id, true))
            {
                await AddAsync(failed.Id, new IncidentEvent(now, "waiting", $"server {inst.Name}: runs on host {h.Name}, which cannot take its claim ({outcome}); not restarted", inst.Id.ToString()), ct);
            }
            return;
        }
        await CommitAsync(inst.Id, failed.Id, host, vm, $"adopted on host {h.Name}, where it was found running", detectedAt, ct);
    }

    /// <summary>Test fault injection (<see cref="HaOptions.HoldRecovery"/>): never returns when this server's recovery is to be held here.</summary>
    private async Task HoldAsync(Instance inst, string phase)
    {
        if (options.HoldRecovery.TryGetValue(inst.Name, out var hold) && hold == phase)
        {
            LogHeld(log, inst.Id, inst.Name, phase);
            await Task.Delay(Timeout.InfiniteTimeSpan, time);
        }
    }

    /// <summary>
    /// Whether the failed host is known to be off, so its servers may be restarted: always without an out-of-band fence;
    /// with one, when the fence succeeded or the host's own fence record is there. Otherwise starts (or, after a failure,
    /// re-runs every <see cref="HaOptions.FenceRetry"/>) the fence and answers false.
    /// </summary>
    private async Task<bool> FencedEnoughAsync(Host h, Incident incident, CancellationToken ct)
    {
        if (fence is null || _fenceCleared.ContainsKey(incident.Id) || incident.Timeline.Any(e => e.Kind is "fence_ok" or "fence_record"))
        {
            return true;
        }
        if (HasFenceRecord(h))
        {
            _fenceCleared[incident.Id] = true; // the record goes when the agent is back; this incident stays cleared
            // Declared on the record itself: the "fenced" event says so already. Otherwise it is news worth a line.
            if (incident.Timeline.Any(e => e.Kind == "fence_failed") || _fencing.ContainsKey(incident.Id))
            {
                await AddAsync(h.Id, new IncidentEvent(time.GetUtcNow(), "fence_record",
                    $"host {h.Name}'s own fence record is on the shared pool: it fenced itself; restarting its servers"), ct);
            }
            return true;
        }
        if (!_fencing.ContainsKey(incident.Id)
            && (!_fenceFailures.TryGetValue(incident.Id, out var failed) || time.GetUtcNow() >= failed.Next))
        {
            StartFence(h, incident.Id); // first run after a controller restart, or the retry after a failure
        }
        return false;
    }

    /// <summary>Runs the out-of-band fence for <paramref name="failed"/> (its epoch already bumped) in the background and records the outcome.</summary>
    private void StartFence(Host failed, Guid incidentId)
    {
        if (_fencing.ContainsKey(incidentId))
        {
            return; // only the check loop starts fences, one pass at a time
        }
        var attempt = _fenceFailures.TryGetValue(incidentId, out var f) ? f.Attempts + 1 : 1;
        var stopping = _stopping;
        // Registered before it runs: a fence that fails at once must not remove itself before it is added.
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _fencing[incidentId] = Task.Run(async () =>
        {
            await registered.Task;
            try
            {
                var result = await fence!.FenceAsync(failed, failed.Epoch, stopping);
                var now = time.GetUtcNow();
                if (result.Fenced)
                {
                    _fenceFailures.TryRemove(incidentId, out _);
                    var tries = attempt > 1 ? $" (attempt {attempt})" : "";
                    await AddToAsync(failed.Id, incidentId, new IncidentEvent(now, "fence_ok", $"host {failed.Name} fenced out of band at epoch {failed.Epoch}{tries}: {result.Detail}"));
                    LogFenced(log, failed.Name, result.Detail);
                }
                else
                {
                    _fenceFailures[incidentId] = (attempt, now + options.FenceRetry);
                    // Recorded once per incident (also across a controller restart); later failures only go to the log.
                    if (!(_open.TryGetValue(failed.Id, out var current) && current.Timeline.Any(e => e.Kind == "fence_failed")))
                    {
                        await AddToAsync(failed.Id, incidentId, new IncidentEvent(now, "fence_failed",
                            $"host {failed.Name} could not be fenced out of band: {result.Detail}; nothing is restarted until a fence succeeds "
                            + $"(retried every {options.FenceRetry.TotalSeconds:0} s) or the host's own fence record appears"));
                    }
                    LogFenceFailed(log, failed.Name, attempt, result.Detail);
                }
            }
            catch (OperationCanceledException)
            {
                // the controller is stopping
            }
            catch (Exception e)
            {
                _fenceFailures[incidentId] = (attempt, time.GetUtcNow() + options.FenceRetry);
                LogFenceFailed(log, failed.Name, attempt, e.Message);
            }
            finally
            {
                _fencing.TryRemove(incidentId, out _);
            }
        }, CancellationToken.None);
        registered.SetResult();
    }

    /// <summary>The running fence of an incident, if any (tests wait on it).</summary>
    public Task? FenceTask(Guid incidentId) => _fencing.GetValueOrDefault(incidentId);

    /// <summary>Appends to the incident only if it is still the host's open one (a fence may finish after the host came back).</summary>
    private async Task AddToAsync(HostId host, Guid incidentId, IncidentEvent e)
    {
        if (_open.TryGetValue(host, out var current) && current.Id == incidentId)
        {
            await AddAsync(host, e, CancellationToken.None);
        }
    }

    private static Incident Add(Incident i, IncidentEvent e) => i with { Timeline = [.. i.Timeline, e] };

    /// <summary>Appends to the host's open incident (none open: nothing to record). Serialized, so saves never go back in time.</summary>
    private async Task AddAsync(HostId host, IncidentEvent e, CancellationToken ct)
    {
        await _incidentGate.WaitAsync(ct);
        try
        {
            if (_open.TryGetValue(host, out var current))
            {
                var updated = Add(current, e);
                _open[host] = updated;
                await store.SaveIncidentAsync(updated, ct);
            }
        }
        finally
        {
            _incidentGate.Release();
        }
    }

    private async Task CloseAsync(Incident i, string why, DateTimeOffset now, CancellationToken ct)
    {
        await _incidentGate.WaitAsync(ct);
        try
        {
            await store.SaveIncidentAsync(Add(i, new IncidentEvent(now, "closed", why)) with { State = "closed", ClosedAt = now }, ct);
        }
        finally
        {
            _incidentGate.Release();
        }
    }

    [LoggerMessage(40, LogLevel.Warning, "Host {HostName} suspected: no heartbeat for {Seconds:0.0} s")]
    private static partial void LogSuspected(ILogger log, string hostName, double seconds);

    [LoggerMessage(41, LogLevel.Warning, "Host {HostName} declared failed: {Witness}")]
    private static partial void LogDeclared(ILogger log, string hostName, string witness);

    [LoggerMessage(42, LogLevel.Information, "Server {InstanceId} recovered on host {HostId} {Seconds:0.0} s after detection")]
    private static partial void LogRecovered(ILogger log, InstanceId instanceId, HostId hostId, double seconds);

    [LoggerMessage(43, LogLevel.Error, "HA check failed")]
    private static partial void LogCheckFailed(ILogger log, Exception e);

    [LoggerMessage(44, LogLevel.Warning, "Server {InstanceId} ({Name}): recovery held after phase {Phase} (fault injection)")]
    private static partial void LogHeld(ILogger log, InstanceId instanceId, string name, string phase);

    [LoggerMessage(45, LogLevel.Warning, "Server {InstanceId}: a recovery to host {HostId} was in progress when the controller stopped; settled once that host reports")]
    private static partial void LogInterrupted(ILogger log, InstanceId instanceId, HostId hostId);

    [LoggerMessage(46, LogLevel.Information, "Server {InstanceId}: adopted on host {HostId}, where its interrupted recovery had already started it")]
    private static partial void LogAdopted(ILogger log, InstanceId instanceId, HostId hostId);

    [LoggerMessage(47, LogLevel.Warning, "Server {InstanceId}: host {HostId} could not remove the copy an interrupted recovery defined: {Reason}")]
    private static partial void LogInterruptedCleanupFailed(ILogger log, InstanceId instanceId, HostId hostId, string reason);

    [LoggerMessage(48, LogLevel.Error, "Server {InstanceId}: recovery step failed")]
    private static partial void LogRecoveryFailed(ILogger log, Exception e, InstanceId instanceId);

    [LoggerMessage(49, LogLevel.Warning, "The controller cannot write its heartbeat to the shared pool ({Reason}); a missing host heartbeat is no witness meanwhile")]
    private static partial void LogPoolUnreachable(ILogger log, string reason);
    [LoggerMessage(50, LogLevel.Warning, "Host {HostName} fenced out of band: {Detail}")]
    private static partial void LogFenced(ILogger log, string hostName, string detail);

    [LoggerMessage(51, LogLevel.Error, "Host {HostName} could not be fenced out of band (attempt {Attempt}): {Detail}")]
    private static partial void LogFenceFailed(ILogger log, string hostName, int attempt, string detail);
}

internal static class AgentSessionExtensions
{
    /// <summary>Removes a VM a failed recovery attempt defined on a host (stopped; its shared disk kept).</summary>
    public static async Task StopAsyncSafe(this IAgentSession session, InstanceId id)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await session.CompleteOutgoingAsync(id, cts.Token);
    }
}
