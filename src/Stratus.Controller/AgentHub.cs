using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Resources;
using Stratus.Protocol;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// The controller's end of every agent stream: registers hosts, keeps the sessions to push
/// desired state to, and folds agents' reports into the store (finishing tasks, syncing power
/// state). Reports are level-triggered: a lost one is corrected by the next heartbeat.
/// </summary>
public sealed partial class AgentHub(IStateStore store, TimeProvider time, ReconcileSignal signal, ILogger<AgentHub> log, MetricsService? metrics = null) : IControllerEndpoint
{
    private readonly ConcurrentDictionary<HostId, IAgentSession> _sessions = new();
    private readonly ConcurrentDictionary<HostId, bool> _complete = new();
    private readonly ConcurrentDictionary<HostId, SemaphoreSlim> _reportLocks = new();
    private readonly ConcurrentDictionary<HostId, HostReport> _lastReports = new();

    /// <summary>Default allocation ratios and reserved resources for newly registered hosts.</summary>
    public AllocationRatios DefaultRatios { get; init; } = AllocationRatios.Default;

    /// <summary>How long a remote agent's lease lasts after each processed report; an agent that is not renewed within it fences its HA VMs. Default 6 s.</summary>
    public TimeSpan LeasePeriod { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>Resources held back on every host for its own OS and the agent.</summary>
    public ResourceVector DefaultReserved { get; init; } = ResourceVector.Zero;

    public async Task<(HostId HostId, long Epoch)> RegisterAsync(HostRegistration r, CancellationToken cancellationToken)
    {
        if (r.ProtocolMajor != ProtocolVersion.Major)
        {
            throw new InvalidOperationException($"agent speaks protocol {r.ProtocolMajor}, controller {ProtocolVersion.Major}");
        }
        var host = await store.RegisterHostAsync(new HostRegistrationRecord(
            r.Name, ResourceVector.Of(r.Cores, r.MemoryMib, r.DiskGib), DefaultReserved, DefaultRatios, "default", r.Accelerator, r.Driver, r.AgentPid)
        {
            HypervisorUser = r.HypervisorUser,
        },
            time.GetUtcNow(), cancellationToken);
        _complete[host.Id] = false;
        return (host.Id, host.Epoch);
    }

    /// <summary>Attaches the session of a registered agent and schedules a push of its desired state.</summary>
    public void Attach(IAgentSession session)
    {
        _sessions[session.HostId] = session;
        signal.Signal(session.HostId);
    }

    public void Detach(HostId host)
    {
        _sessions.TryRemove(host, out _);
        _complete.TryRemove(host, out _);
        _lastReports.TryRemove(host, out _);
    }

    /// <summary>Detaches <paramref name="session"/> only if it is still the host's current one (a reconnected agent's new session stays).</summary>
    public void Detach(HostId host, IAgentSession session)
    {
        if (_sessions.TryRemove(new KeyValuePair<HostId, IAgentSession>(host, session)))
        {
            _complete.TryRemove(host, out _);
            _lastReports.TryRemove(host, out _);
        }
    }

    /// <summary>
    /// The latest report of a connected host's agent received by this controller process (null before its first one).
    /// It lists every VM the host's hypervisor has, including ones no server of the host's desired state names
    /// (a recovery's VM before the store moved it there).
    /// </summary>
    public HostReport? LastReport(HostId host) => _sessions.ContainsKey(host) ? _lastReports.GetValueOrDefault(host) : null;

    /// <summary>A connected host other than <paramref name="except"/> whose latest report has this VM running or paused, or null.</summary>
    public (HostId Host, ActualVm Vm)? RunningOn(InstanceId id, HostId except)
    {
        foreach (var (host, report) in _lastReports)
        {
            if (host != except && _sessions.ContainsKey(host)
                && report.Vms.FirstOrDefault(v => v.Id == id && v.Exists && v.Power is PowerState.Running or PowerState.Paused) is { } vm)
            {
                return (host, vm);
            }
        }
        return null;
    }

    /// <summary>
    /// Folds one VM's actual state, as a request's reply carried it, into the host's latest report — so what the controller
    /// reads next (a live resize's new device model, before a migration) does not wait for the agent's next full report.
    /// </summary>
    public void NoteActual(HostId host, ActualVm vm)
    {
        while (_sessions.ContainsKey(host) && _lastReports.TryGetValue(host, out var r)
            && !_lastReports.TryUpdate(host, r with { Vms = [.. r.Vms.Where(v => v.Id != vm.Id), vm] }, r))
        {
        }
    }

    public IAgentSession? Session(HostId host) => _sessions.GetValueOrDefault(host);

    public IReadOnlyCollection<HostId> ConnectedHosts => _sessions.Keys.ToList();

    /// <summary>Hosts whose agent reported a complete pass (every VM converged at least once).</summary>
    public int CompleteHosts => _complete.Count(kv => kv.Value);

    public async Task ReportAsync(HostReport report, CancellationToken cancellationToken)
    {
        var gate = _reportLocks.GetOrAdd(report.HostId, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken);
        try
        {
            await store.HeartbeatAsync(report.HostId, time.GetUtcNow(), cancellationToken);
            var actual = report.Vms.ToDictionary(v => v.Id);
            foreach (var inst in await store.ListInstancesOnHostAsync(report.HostId, cancellationToken))
            {
                actual.TryGetValue(inst.Id, out var a);
                await ApplyAsync(inst, a, report.Complete, cancellationToken);
            }
            if (report.Complete)
            {
                _complete[report.HostId] = true;
            }
            if (_sessions.ContainsKey(report.HostId))
            {
                _lastReports[report.HostId] = report;
            }
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Forwards to <see cref="MetricsService.IngestAsync"/> (dropped when the controller keeps no metrics).</summary>
    public async Task ReportMetricsAsync(HostMetricsReport report, CancellationToken cancellationToken)
    {
        if (metrics is not null)
        {
            await metrics.IngestAsync(report, cancellationToken);
        }
    }

    private async Task ApplyAsync(Instance inst, ActualVm? a, bool complete, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var power = a is { Exists: true } ? a.Power : PowerState.NoState;
        var forwards = a is { Exists: true, Forwards.Count: > 0 }
            ? a.Forwards.Select(f => new Forward(f.HostPort, f.GuestPort)).ToList()
            : inst.Forwards;
        Instance? next = null;
        string? result = null;
        string? message = null;

        if (inst.Task is InstanceTask.Migrating or InstanceTask.Recovering)
        {
            return; // the migration workflow owns the server until it moves or rolls back
        }

        if (inst.Task == InstanceTask.Deleting)
        {
            if (a is null || !a.Exists)
            {
                var deleted = inst with { VmState = VmState.Deleted, Task = null, PowerState = PowerState.NoState, UpdatedAt = now, TaskRequestedAt = null };
                if (await store.ReleaseAsync(deleted, null, new ActionFinish("success", null, now), ct) == CasOutcome.Ok)
                {
                    LogTransition(log, inst.Id, "deleting", "deleted");
                }
            }
            return;
        }
        if (a?.Error is { } error && inst.Task is not null)
        {
            next = inst with { VmState = VmState.Error, Task = null, Fault = error, PowerState = power, UpdatedAt = now, TaskRequestedAt = null };
            result = "error";
            message = error;
        }
        else if (inst.Task is { } task && a is { Exists: true })
        {
            var done = task switch
            {
                InstanceTask.Spawning or InstanceTask.Starting or InstanceTask.Resuming => power == PowerState.Running ? VmState.Active : (VmState?)null,
                InstanceTask.Rebooting or InstanceTask.RebootingHard => power == PowerState.Running && a.RebootSeq >= inst.RebootSeq ? VmState.Active : null,
                InstanceTask.Stopping => power is PowerState.Shutdown or PowerState.Crashed ? VmState.Stopped : null,
                InstanceTask.Pausing => power == PowerState.Paused ? VmState.Paused : null,
                _ => null,
            };
            if (done is { } state)
            {
                next = inst with { VmState = state, Task = null, Fault = null, PowerState = power, Forwards = forwards, UpdatedAt = now, TaskRequestedAt = null };
                result = "success";
            }
        }
        else if (inst.Task is null && a is { Exists: true, Error: null, Fenced: false } && complete)
        {
            // (A fenced VM was stopped by its agent fencing itself, not by its guest or a user: the server keeps its state,
            // so it is started again where it is once the agent holds a lease, or recovered elsewhere — never marked stopped.)
            // The hypervisor process died under a running server: policy "error" — the server goes to
            // error with the reason, keeps its host and disk, and `reboot --hard` brings it back.
            if (inst.VmState is VmState.Active or VmState.Paused && power == PowerState.Crashed)
            {
                next = inst with { VmState = VmState.Error, PowerState = power, Fault = "the VM's hypervisor process exited unexpectedly", UpdatedAt = now };
                await store.UpdateInstanceAsync(next, new InstanceAction(0, inst.Id, "crash", "system", now, now, "error", next.Fault), ct);
                return;
            }
            // Power-state sync: the guest shut itself down.
            if (inst.VmState is VmState.Active or VmState.Paused && power == PowerState.Shutdown)
            {
                next = inst with { VmState = VmState.Stopped, PowerState = power, UpdatedAt = now };
                await store.UpdateInstanceAsync(next, new InstanceAction(0, inst.Id, "power-sync", "system", now, now, "success",
                    $"the hypervisor reports the server {Names.Of(power)}"), ct);
                return;
            }
        }
        if (next is null && (power != inst.PowerState || !SameForwards(forwards, inst.Forwards)) && a is { Exists: true })
        {
            next = inst with { PowerState = power, Forwards = forwards, UpdatedAt = now };
        }
        if (next is null)
        {
            return;
        }
        var finish = result is null ? null : new ActionFinish(result, message, now);
        if (await store.UpdateInstanceAsync(next, null, finish, ct) == CasOutcome.Ok && result is not null)
        {
            LogTransition(log, inst.Id, inst.Task is { } t ? Names.Of(t) : "-", Names.Of(next.VmState));
        }
    }

    private static bool SameForwards(IReadOnlyList<Forward>? a, IReadOnlyList<Forward>? b) =>
        (a ?? []).SequenceEqual(b ?? []);

    [LoggerMessage(10, LogLevel.Information, "Server {InstanceId}: {From} -> {To}")]
    private static partial void LogTransition(ILogger log, InstanceId instanceId, string from, string to);
}
