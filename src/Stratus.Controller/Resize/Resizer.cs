using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;

namespace Stratus.Controller.Resize;

/// <summary>
/// Resizes servers to another flavor: a plan first (<see cref="ResizePlanner"/>: live or cold, and why; a move to another host
/// when this one lacks room), then the action, synchronously while the caller waits, one at a time per server.
/// <para>Phases: <b>claim</b> — one store transaction (<see cref="IStateStore.ResizeAsync"/>) changes the host's used
/// resources, the allocation, the project's quota use and the usage interval (billing follows from that instant), sets the
/// task <c>resizing</c> and opens the action; <b>run</b> — the host's agent resizes (live: hot-add, balloon, online disk
/// growth, checked against the guest's own report; cold: stop, change, start); <b>commit</b> — the task clears and the
/// action finishes; or <b>roll back</b> — a second ResizeAsync restores the old size and the action records the error. A cold
/// resize leaves the server in <c>verify_resize</c> (its previous size kept) until <see cref="ConfirmAsync"/> or
/// <see cref="RevertAsync"/>, which restores the previous flavor exactly.</para>
/// </summary>
public sealed partial class Resizer(
    IStateStore store, AgentHub hub, Reconciler reconciler, Migrator migrator, ReconcileSignal signal, TimeProvider time, ILogger<Resizer> log)
{
    private readonly ConcurrentDictionary<InstanceId, SemaphoreSlim> _locks = new();

    /// <summary>Longest wait for a move the plan needs before the resize (the migration keeps its own phase timeouts).</summary>
    public TimeSpan MoveTimeout { get; init; } = TimeSpan.FromMinutes(10);

    private sealed record Planned(Instance Server, Flavor From, Flavor To, ResizeDecision Decision, Host? MoveTo, ResizePlanDto Dto);

    private static Problem Bad(string field, string code, string message) => Problem.Validation([new FieldError(field, code, message)]);

    private async Task<Flavor?> FlavorAsync(string reference, Guid? scope, CancellationToken ct)
    {
        var f = Guid.TryParse(reference, out var g) ? await store.GetFlavorAsync(new FlavorId(g), ct) : await store.FindFlavorAsync(reference, ct);
        return f is not null && CloudService.FlavorVisible(f, scope) ? f : null;
    }

    private async Task<Instance?> ServerAsync(string reference, CancellationToken ct)
    {
        var inst = InstanceId.TryParse(reference, out var id) ? await store.GetInstanceAsync(id, ct) : await store.FindInstanceAsync(reference, ct);
        return inst is null || inst.VmState == VmState.Deleted ? null : inst;
    }

    /// <summary>The plan for resizing <paramref name="reference"/> to <paramref name="flavorRef"/>: always an answer for a valid
    /// request (a plan that cannot be carried out says why, <c>possible: false</c>).</summary>
    public async Task<Outcome<ResizePlanDto>> PlanAsync(string reference, string? flavorRef, string? mode, Guid? scope, CancellationToken ct)
    {
        var o = await PlanInternalAsync(reference, flavorRef, mode, scope, ct);
        return o.Ok ? o.Value!.Dto : o.Problem!;
    }

    private async Task<Outcome<Planned>> PlanInternalAsync(string reference, string? flavorRef, string? modeText, Guid? scope, CancellationToken ct, bool allowMove = true)
    {
        var errors = new List<FieldError>();
        var mode = ResizeMode.Auto;
        if (modeText is not null && !Enum.TryParse(modeText, ignoreCase: true, out mode) || modeText is not null && !Enum.IsDefined(mode) || modeText is { } m && char.IsDigit(m.FirstOrDefault()))
        {
            errors.Add(new FieldError("mode", "invalid", "must be auto, live or cold"));
        }
        Flavor? to = null;
        if (string.IsNullOrEmpty(flavorRef))
        {
            errors.Add(new FieldError("flavor", "required", "is required"));
        }
        else if ((to = await FlavorAsync(flavorRef, scope, ct)) is null)
        {
            errors.Add(new FieldError("flavor", "not_found", $"no flavor named or with id '{flavorRef}'"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var inst = await ServerAsync(reference, ct);
        if (inst is null)
        {
            return Problem.NotFound("server", reference);
        }
        var from = await store.GetFlavorAsync(inst.FlavorId, ct);
        if (from is null)
        {
            return Problem.Conflict("invalid_state", $"server '{inst.Name}''s flavor no longer exists");
        }
        if (from.Id == to!.Id || from.Resources == to.Resources && from.Name == to.Name)
        {
            return Bad("flavor", "same_flavor", $"server '{inst.Name}' already has flavor '{to.Name}'");
        }
        if (inst.Task is { } task)
        {
            return Problem.Conflict("task_in_progress", $"server '{inst.Name}' is {Names.Of(task)}; resize it once that finishes");
        }
        if (inst.PendingResize is not null)
        {
            return Problem.Conflict("resize_pending", $"server '{inst.Name}' waits for its last resize to be confirmed or reverted");
        }
        var host = inst.HostId is { } hid ? await store.GetHostAsync(hid, ct) : null;
        var project = await store.GetProjectAsync(inst.Project, ct);
        var usage = await store.GetProjectUsageAsync(inst.Project, ct);
        var quotas = inst.Project == Project.AdminId && project is null ? null : project?.Quotas ?? Quotas.Default;
        // Project usage rounds vCPUs up; the planner works in milli-vCPUs like the store.
        var use = new ProjectUsageSnapshot((long)usage.Vcpus * 1000, usage.RamMib, usage.DiskGib);
        var decision = ResizePlanner.Decide(new ResizePlanInput(inst, from, to, mode, host, quotas, use));
        Host? moveTo = null;
        var steps = decision.Steps.ToList();
        var refusal = decision.Refusal;
        var summary = decision.RefusalReason;
        if (refusal is null && decision.NeedsMove)
        {
            var others = hub.ConnectedHosts.Count(h => h != inst.HostId);
            var placement = allowMove && others > 0 ? await reconciler.PlanMoveAsync(inst with { Resources = to.Resources }, null, new HashSet<HostId>(), ct) : null;
            if (placement is Placed p && await store.GetHostAsync(p.Host, ct) is { } dest)
            {
                moveTo = dest;
                steps.Insert(0, $"{decision.ShortOf}: {(inst.VmState == VmState.Active ? "live-" : "")}migrate to {dest.Name} first, then resize");
            }
            else
            {
                var why = placement switch
                {
                    Unschedulable u => string.Join("; ", u.Reasons),
                    UnschedulableAndUnresolvable u => string.Join("; ", u.Reasons),
                    null when !allowMove => "the server was just moved",
                    null => "there is no other connected host",
                    _ => "no other connected host of the same driver",
                };
                refusal = "no_capacity";
                summary = $"{decision.ShortOf}, and no other host can take it ({(why.Length > 0 ? why : "no other connected host of the same driver")})";
                steps.Add(summary);
            }
        }
        var modeName = refusal is not null ? "none" : decision.Live ? "live" : "cold";
        summary ??= $"{modeName}{(moveTo is not null ? $" after a move to {moveTo.Name}" : "")}: " + string.Join("; ", steps);
        var dto = new ResizePlanDto(inst.Id.ToString(), Size(from), Size(to), modeName, refusal is null, moveTo?.Name, steps, summary, refusal,
            inst.VcpuCeiling, inst.MemoryCeilingMib);
        return new Planned(inst, from, to, decision, moveTo, dto);
    }

    private static ResizeSizeDto Size(Flavor f) => new(f.Name, f.Vcpus, f.RamMib, f.DiskGib);

    private static Problem RefusalProblem(ResizePlanDto plan) => plan.Refusal switch
    {
        "disk_shrink_refused" => new Problem("disk_shrink_refused", 422, "The resize is refused", plan.Summary),
        "live_impossible" => new Problem("live_impossible", 422, "The resize cannot be live", plan.Summary),
        "quota_exceeded" => new Problem("quota_exceeded", 409, "Quota exceeded", plan.Summary + "; nothing was changed"),
        "no_capacity" => Problem.Conflict("no_capacity", plan.Summary),
        _ => Problem.Conflict(plan.Refusal ?? "invalid_state", plan.Summary),
    };

    private static Problem FromAgent(AgentRequestException e, string rolledBack) => e.Code switch
    {
        "invalid_spec" => new Problem(e.Code, 422, "The host refused the resize", $"{e.Message}; {rolledBack}"),
        "invalid_state" or "resize_not_visible" or "resize_unsupported" or "unsupported_request" => Problem.Conflict(e.Code, $"{e.Message}; {rolledBack}"),
        _ => new Problem(e.Code, 502, "The host failed the resize", $"{e.Message}; {rolledBack}"),
    };

    private async Task<T> LockedAsync<T>(InstanceId id, Func<Task<T>> work, CancellationToken ct)
    {
        var gate = _locks.GetOrAdd(id, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            return await work();
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Plans and carries out a resize; answers once it is done (live) or in verify_resize (cold).</summary>
    public async Task<Outcome<ResizeResultDto>> ResizeAsync(string reference, ResizeRequest request, string requestedBy, Guid? scope, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var first = await PlanInternalAsync(reference, request.Flavor, request.Mode, scope, ct);
        if (!first.Ok)
        {
            return first.Problem!;
        }
        return await LockedAsync(first.Value!.Server.Id, async () =>
        {
            var planned = await PlanInternalAsync(reference, request.Flavor, request.Mode, scope, ct); // again, under the lock
            if (!planned.Ok)
            {
                return (Outcome<ResizeResultDto>)planned.Problem!;
            }
            var plan = planned.Value!;
            if (!plan.Dto.Possible)
            {
                return RefusalProblem(plan.Dto);
            }
            var inst = plan.Server;
            if (plan.MoveTo is { } dest)
            {
                var moved = await MoveFirstAsync(inst, dest, requestedBy, ct);
                if (moved is not null)
                {
                    return moved;
                }
                var again = await PlanInternalAsync(inst.Id.ToString(), plan.To.Id.ToString(), request.Mode, null, ct, allowMove: false);
                if (!again.Ok)
                {
                    return again.Problem!;
                }
                if (!again.Value!.Dto.Possible)
                {
                    return RefusalProblem(again.Value.Dto with { Summary = $"moved to {dest.Name}, but: {again.Value.Dto.Summary}" });
                }
                plan = again.Value with { Dto = again.Value.Dto with { MigrateTo = dest.Name, Steps = [.. plan.Dto.Steps.Take(1), .. again.Value.Dto.Steps] } };
                inst = plan.Server;
            }
            return await RunAsync(plan, requestedBy, sw, ct);
        }, ct);
    }

    /// <summary>Moves the server to <paramref name="dest"/> through the migrator and waits; null when it arrived.</summary>
    private async Task<Problem?> MoveFirstAsync(Instance inst, Host dest, string requestedBy, CancellationToken ct)
    {
        var live = inst.VmState == VmState.Active;
        var started = await migrator.StartAsync(inst.Id.ToString(), new MigrateRequest(dest.Id.ToString(), live, null, null, null, null), requestedBy, ct);
        if (!started.Ok)
        {
            return started.Problem! with { Detail = $"the resize needs a move to {dest.Name} first, which was refused: {started.Problem!.Detail}" };
        }
        var deadline = time.GetUtcNow() + MoveTimeout;
        while (true)
        {
            await migrator.WhenDoneAsync(inst.Id).WaitAsync(MoveTimeout, time, ct);
            var now = await store.GetInstanceAsync(inst.Id, ct);
            if (now is null)
            {
                return Problem.NotFound("server", inst.Id.ToString());
            }
            if (now.Task != InstanceTask.Migrating)
            {
                return now.HostId == dest.Id
                    ? null
                    : Problem.Conflict("migration_failed", $"the move to {dest.Name} the resize needs did not complete (see the server's actions); nothing was resized");
            }
            if (time.GetUtcNow() > deadline)
            {
                return Problem.Conflict("migration_timeout", $"the move to {dest.Name} did not finish within {MoveTimeout.TotalMinutes:0} min; nothing was resized");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct);
        }
    }

    private async Task<Outcome<ResizeResultDto>> RunAsync(Planned plan, string requestedBy, Stopwatch sw, CancellationToken ct)
    {
        var inst = plan.Server;
        if (inst.HostId is not { } host || hub.Session(host) is not { } session)
        {
            return Problem.Conflict("host_unreachable", $"the agent of server '{inst.Name}''s host is not connected");
        }
        var live = plan.Decision.Live;
        var now = time.GetUtcNow();
        var from = plan.From;
        var to = plan.To;
        var claimed = inst with
        {
            FlavorId = to.Id,
            Resources = to.Resources,
            Task = InstanceTask.Resizing,
            TaskRequestedAt = now,
            UpdatedAt = now,
            MaxVcpus = live ? inst.MaxVcpus : Math.Max(inst.VcpuCeiling, to.Vcpus),
            MaxMemoryMib = live ? inst.MaxMemoryMib : Math.Max(inst.MemoryCeilingMib, to.RamMib),
            PendingResize = live ? null : new PendingResize(from.Id, inst.Resources, inst.MaxVcpus, inst.MaxMemoryMib, now),
        };
        var action = new InstanceAction(0, inst.Id, live ? "resize-live" : "resize-cold", requestedBy, now, null, "pending",
            $"{from.Name} → {to.Name}: {plan.Dto.Summary}");
        var claim = await store.ResizeAsync(claimed, action, null, ct);
        if (claim != CasOutcome.Ok)
        {
            return ClaimProblem(claim, inst, to);
        }
        signal.Signal(host);
        var order = new ResizeOrder(inst.Id, live ? ResizePhase.Live : ResizePhase.Cold, to.Vcpus, to.RamMib, to.DiskGib, claimed.VcpuCeiling, claimed.MemoryCeilingMib);
        ResizeReport report;
        try
        {
            report = await session.ResizeAsync(order, ct);
        }
        catch (AgentRequestException e)
        {
            var back = await RollBackAsync(inst, e, ct);
            return FromAgent(e, back ? $"rolled back to {from.Name}" : "the roll-back did not apply (see the server's actions)");
        }
        hub.NoteActual(host, report.Vm); // a live resize changed the device model a migration must recreate
        var detail = string.Join("; ", report.Detail);
        var done = await UpdateAsync(inst.Id, i => i with { Task = null, TaskRequestedAt = null, UpdatedAt = time.GetUtcNow(), PowerState = report.Vm.Power },
            new ActionFinish("success", $"{from.Name} → {to.Name} {(live ? "live" : "cold, verify_resize")}: {detail}" +
                (live ? $" (guest-visible after {report.GuestVisibleMs} ms{(report.GuestVerified ? "" : ", not verified by the guest")})" : ""), time.GetUtcNow()), ct);
        signal.Signal(host);
        LogResized(log, inst.Id, live ? "live" : "cold", from.Name, to.Name, report.GuestVisibleMs);
        return new ResizeResultDto(plan.Dto, (done ?? claimed).ToDto(null), live ? "resized" : "verify_resize", report.GuestVerified, report.GuestCpus, report.GuestMemoryKib,
            live ? report.GuestVisibleMs : null, sw.ElapsedMilliseconds, report.Detail);
    }

    private static Problem ClaimProblem(CasOutcome claim, Instance inst, Flavor to) => claim switch
    {
        CasOutcome.NoCapacity => Problem.Conflict("no_capacity", $"host of server '{inst.Name}' has no room for flavor '{to.Name}' any more; nothing was changed"),
        CasOutcome.QuotaExceeded => new Problem("quota_exceeded", 409, "Quota exceeded", $"flavor '{to.Name}' would take the project past its quota; nothing was changed"),
        CasOutcome.NotFound => Problem.Conflict("not_placed", $"server '{inst.Name}' holds no resources on a host yet"),
        _ => Problem.Conflict("conflict", $"server '{inst.Name}' changed while its resize was planned; try again"),
    };

    /// <summary>Puts the size from before back (allocation, quota use, billing), clears the task, records the error.</summary>
    private async Task<bool> RollBackAsync(Instance before, AgentRequestException e, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var cur = await store.GetInstanceAsync(before.Id, CancellationToken.None);
            if (cur is null)
            {
                return false;
            }
            var now = time.GetUtcNow();
            var back = cur with
            {
                FlavorId = before.FlavorId,
                Resources = before.Resources,
                MaxVcpus = before.MaxVcpus,
                MaxMemoryMib = before.MaxMemoryMib,
                PendingResize = before.PendingResize,
                Task = null,
                TaskRequestedAt = null,
                UpdatedAt = now,
            };
            if (await store.ResizeAsync(back, null, new ActionFinish("error", $"{e.Code}: {e.Message}; rolled back", now), CancellationToken.None) == CasOutcome.Ok)
            {
                signal.Signal(before.HostId);
                return true;
            }
        }
        return false;
    }

    /// <summary>Re-reads and CAS-updates the server (an agent's report may have bumped its version meanwhile).</summary>
    private async Task<Instance?> UpdateAsync(InstanceId id, Func<Instance, Instance> change, ActionFinish? finish, CancellationToken ct, InstanceAction? action = null)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var cur = await store.GetInstanceAsync(id, CancellationToken.None);
            if (cur is null)
            {
                return null;
            }
            var next = change(cur);
            if (await store.UpdateInstanceAsync(next, action, finish, CancellationToken.None) == CasOutcome.Ok)
            {
                return next with { Version = next.Version + 1 };
            }
        }
        return null;
    }

    /// <summary>Keeps a cold resize: the previous size is forgotten (and, on the host, the disk kept for a revert).</summary>
    public async Task<Outcome<ResizeResultDto>> ConfirmAsync(string reference, string requestedBy, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var inst = await ServerAsync(reference, ct);
        if (inst is null)
        {
            return Problem.NotFound("server", reference);
        }
        return await LockedAsync(inst.Id, async () =>
        {
            inst = await store.GetInstanceAsync(inst.Id, ct);
            if (inst?.PendingResize is null)
            {
                return (Outcome<ResizeResultDto>)Problem.Conflict("no_resize_pending", $"server '{reference}' has no resize waiting for confirmation");
            }
            if (inst.Task is { } task)
            {
                return Problem.Conflict("task_in_progress", $"server '{inst.Name}' is {Names.Of(task)}; confirm once that finishes");
            }
            if (inst.HostId is not { } host || hub.Session(host) is not { } session)
            {
                return Problem.Conflict("host_unreachable", $"the agent of server '{inst.Name}''s host is not connected");
            }
            var now = time.GetUtcNow();
            ResizeReport report;
            try
            {
                report = await session.ResizeAsync(new ResizeOrder(inst.Id, ResizePhase.Confirm, 0, 0, 0, 0, 0), ct);
            }
            catch (AgentRequestException e)
            {
                await store.RecordActionAsync(new InstanceAction(0, inst.Id, "confirm-resize", requestedBy, now, time.GetUtcNow(), "error", $"{e.Code}: {e.Message}"), ct);
                return FromAgent(e, "still in verify_resize");
            }
            var flavor = await store.GetFlavorAsync(inst.FlavorId, ct);
            var done = await UpdateAsync(inst.Id, i => i with { PendingResize = null, UpdatedAt = time.GetUtcNow() }, null, ct,
                new InstanceAction(0, inst.Id, "confirm-resize", requestedBy, now, time.GetUtcNow(), "success", $"kept flavor '{flavor?.Name}'"));
            return new ResizeResultDto(null, (done ?? inst).ToDto(null), "confirmed", false, null, null, null, sw.ElapsedMilliseconds, report.Detail);
        }, ct);
    }

    /// <summary>Undoes a cold resize: the previous flavor, size, ceilings (and a grown disk) exactly as they were.</summary>
    public async Task<Outcome<ResizeResultDto>> RevertAsync(string reference, string requestedBy, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var inst = await ServerAsync(reference, ct);
        if (inst is null)
        {
            return Problem.NotFound("server", reference);
        }
        return await LockedAsync(inst.Id, async () =>
        {
            inst = await store.GetInstanceAsync(inst.Id, ct);
            if (inst?.PendingResize is not { } pending)
            {
                return (Outcome<ResizeResultDto>)Problem.Conflict("no_resize_pending", $"server '{reference}' has no resize to revert");
            }
            if (inst.Task is { } task)
            {
                return Problem.Conflict("task_in_progress", $"server '{inst.Name}' is {Names.Of(task)}; revert once that finishes");
            }
            if (inst.HostId is not { } host || hub.Session(host) is not { } session)
            {
                return Problem.Conflict("host_unreachable", $"the agent of server '{inst.Name}''s host is not connected");
            }
            var now = time.GetUtcNow();
            var from = await store.GetFlavorAsync(inst.FlavorId, ct);
            var to = await store.GetFlavorAsync(pending.FlavorId, ct);
            var claimed = inst with
            {
                FlavorId = pending.FlavorId,
                Resources = pending.Resources,
                MaxVcpus = pending.MaxVcpus,
                MaxMemoryMib = pending.MaxMemoryMib,
                PendingResize = null,
                Task = InstanceTask.Resizing,
                TaskRequestedAt = now,
                UpdatedAt = now,
            };
            var claim = await store.ResizeAsync(claimed, new InstanceAction(0, inst.Id, "revert-resize", requestedBy, now, null, "pending",
                $"{from?.Name} → {to?.Name} (back)"), null, ct);
            if (claim != CasOutcome.Ok)
            {
                return ClaimProblem(claim, inst, to ?? from!);
            }
            ResizeReport report;
            try
            {
                report = await session.ResizeAsync(new ResizeOrder(inst.Id, ResizePhase.Revert, 0, 0, 0, 0, 0), ct);
            }
            catch (AgentRequestException e)
            {
                await RollBackAsync(inst, e, ct);
                return FromAgent(e, "still in verify_resize");
            }
            var done = await UpdateAsync(inst.Id, i => i with { Task = null, TaskRequestedAt = null, UpdatedAt = time.GetUtcNow(), PowerState = report.Vm.Power },
                new ActionFinish("success", $"back to flavor '{to?.Name}': {string.Join("; ", report.Detail)}", time.GetUtcNow()), ct);
            signal.Signal(host);
            return new ResizeResultDto(null, (done ?? claimed).ToDto(null), "reverted", false, null, null, null, sw.ElapsedMilliseconds, report.Detail);
        }, ct);
    }

    [LoggerMessage(1, LogLevel.Information, "Server {InstanceId} resized {Kind}: {From} → {To} (guest-visible after {GuestVisibleMs} ms)")]
    private static partial void LogResized(ILogger log, InstanceId instanceId, string kind, string from, string to, long guestVisibleMs);
}
