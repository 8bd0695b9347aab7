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
    private readonly ConcurrentDictionary<HostId, Incident> _open = new();
    private readonly ConcurrentDictionary<InstanceId, Task> _recovering = new();
    private readonly ConcurrentDictionary<InstanceId, bool> _waitingNoted = new();
    private readonly Dictionary<HostId, DateTimeOffset> _lastSeen = [];
    private readonly ConcurrentDictionary<Guid, Task> _fencing = new();
    private readonly ConcurrentDictionary<Guid, (int Attempts, DateTimeOffset Next)> _fenceFailures = new();
    private readonly ConcurrentDictionary<Guid, bool> _fenceCleared = new();
    private CancellationToken _stopping;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.SharedPool is null)
        {
            return;
        }
        _stopping = stoppingToken;
        foreach (var i in (await store.ListIncidentsAsync(stoppingToken)).Where(i => i.State == "open"))
        {
            _open[i.HostId] = i;
        }
        using var timer = new PeriodicTimer(options.CheckInterval, time);
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

    /// <summary>One pass over every host (public for tests).</summary>
    public async Task CheckAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        foreach (var h in await store.ListHostsAsync(ct))
        {
            var connected = hub.Session(h.Id) is not null;
            if (connected)
            {
                _lastSeen[h.Id] = now;
            }
            var seen = _lastSeen.TryGetValue(h.Id, out var s) ? s : h.LastHeartbeat ?? h.CreatedAt;
            var heartbeat = h.LastHeartbeat ?? h.CreatedAt;
            var silent = now - (connected ? heartbeat : (seen < heartbeat ? seen : heartbeat));
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
        if (pending.Count == 0 && !_recovering.Keys.Any(id => pending.Any(p => p.Id == id)) && incident.Timeline.Any(e => e.Kind is "restarted" or "waiting"))
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
            if (await locks.IsLockedAsync(inst.Id, ct) == true)
            {
                if (_waitingNoted.TryAdd(inst.Id, true))
                {
                    await AddAsync(h.Id, new IncidentEvent(time.GetUtcNow(), "waiting", $"server {inst.Name}: its QEMU still holds the disk; not restarted while it lives", inst.Id.ToString()), ct);
                }
                continue;
            }
            _waitingNoted.TryRemove(inst.Id, out _);
            _recovering[inst.Id] = Task.Run(async () =>
            {
                try
                {
                    await RecoverAsync(inst, h, incident.DetectedAt, CancellationToken.None);
                }
                finally
                {
                    _recovering.TryRemove(inst.Id, out _);
                }
            }, CancellationToken.None);
        }
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
            var running = await dst.StartVmAsync(inst.Id, ct);
            var done = time.GetUtcNow();
            for (var attempt = 0; attempt < 50; attempt++)
            {
                var fresh = await store.GetInstanceAsync(inst.Id, ct);
                if (fresh is null)
                {
                    return;
                }
                var moved = fresh with
                {
                    HostId = p.Host,
                    Task = null,
                    TaskRequestedAt = null,
                    VmState = VmState.Active,
                    PowerState = running.Power,
                    Fault = null,
                    Forwards = running.Forwards.Count > 0 ? [.. running.Forwards.Select(f => new Forward(f.HostPort, f.GuestPort))] : fresh.Forwards,
                    UpdatedAt = done,
                };
                var message = $"restarted on host {p.Host} {(done - detectedAt).TotalSeconds:0.0} s after host {failed.Name} was suspected";
                if (await store.FinishMigrationAsync(moved, true, new ActionFinish("success", message, done), ct) == CasOutcome.Ok)
                {
                    await AddAsync(failed.Id, new IncidentEvent(done, "restarted", $"server {inst.Name}: {message}", inst.Id.ToString()), ct);
                    LogRecovered(log, inst.Id, p.Host, (done - detectedAt).TotalSeconds);
                    signal.Signal(p.Host);
                    return;
                }
            }
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
            var fresh = await store.GetInstanceAsync(inst.Id, CancellationToken.None);
            if (fresh is not null)
            {
                await store.FinishMigrationAsync(fresh with { Task = null, TaskRequestedAt = null }, false,
                    new ActionFinish("error", $"recovery attempt failed ({reason}); retrying", time.GetUtcNow()), CancellationToken.None);
            }
            await AddAsync(failed.Id, new IncidentEvent(time.GetUtcNow(), "retry", $"server {inst.Name}: {reason}", inst.Id.ToString()), CancellationToken.None);
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

    private async Task AddAsync(HostId host, IncidentEvent e, CancellationToken ct)
    {
        Incident? updated = null;
        _open.AddOrUpdate(host, _ => throw new InvalidOperationException("no open incident"), (_, i) => updated = Add(i, e));
        if (updated is not null)
        {
            await store.SaveIncidentAsync(updated, ct);
        }
    }

    private async Task CloseAsync(Incident i, string why, DateTimeOffset now, CancellationToken ct) =>
        await store.SaveIncidentAsync(Add(i, new IncidentEvent(now, "closed", why)) with { State = "closed", ClosedAt = now }, ct);

    [LoggerMessage(40, LogLevel.Warning, "Host {HostName} suspected: no heartbeat for {Seconds:0.0} s")]
    private static partial void LogSuspected(ILogger log, string hostName, double seconds);

    [LoggerMessage(41, LogLevel.Warning, "Host {HostName} declared failed: {Witness}")]
    private static partial void LogDeclared(ILogger log, string hostName, string witness);

    [LoggerMessage(42, LogLevel.Information, "Server {InstanceId} recovered on host {HostId} {Seconds:0.0} s after detection")]
    private static partial void LogRecovered(ILogger log, InstanceId instanceId, HostId hostId, double seconds);

    [LoggerMessage(43, LogLevel.Error, "HA check failed")]
    private static partial void LogCheckFailed(ILogger log, Exception e);

    [LoggerMessage(44, LogLevel.Warning, "Host {HostName} fenced out of band: {Detail}")]
    private static partial void LogFenced(ILogger log, string hostName, string detail);

    [LoggerMessage(45, LogLevel.Error, "Host {HostName} could not be fenced out of band (attempt {Attempt}): {Detail}")]
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
