using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Scheduler.Framework;
using Stratus.Storage;

namespace Stratus.Controller.Scaling;

/// <summary>
/// Converges every scaling group to its desired count, every <see cref="ScalingOptions.CheckInterval"/> (or when
/// signalled). One pass per group, in this order: members that were deleted, failed or stopped by hand leave the
/// group (failed and stopped ones are removed); draining members are stopped gracefully, then deleted; members past
/// their grace are health-checked and the unhealthy ones drained; due scheduled changes apply; metric policies may
/// change desired (never beyond min/max, not within a cooldown); then the group grows — after a dry-run placement
/// against the current cluster snapshot, so a group that cannot grow records why instead of creating servers that
/// fail — or shrinks (newest or least-loaded members first). Every state change is one compare-and-swap on the
/// group's version, written right after its side effect, so a restarted controller resumes where this one stopped.
/// </summary>
public sealed partial class ScalingLoop(
    IStateStore store,
    CloudService cloud,
    Reconciler reconciler,
    MetricsService metrics,
    IHealthProbe probe,
    ScalingOptions options,
    ScalingSignal signal,
    TimeProvider time,
    ILogger<ScalingLoop> log) : BackgroundService
{
    private long _passes;

    /// <summary>Completed passes since start.</summary>
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
                await signal.WaitAsync(options.CheckInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>One pass over every group; a failure in one group does not stop the others.</summary>
    public async Task RunOnceAsync(CancellationToken ct)
    {
        foreach (var g in await store.ListScalingGroupsAsync(ct))
        {
            try
            {
                await ReconcileAsync(g.Id, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogGroupFailed(log, e, g.Name);
            }
        }
        Interlocked.Increment(ref _passes);
    }

    /// <summary>Conditions that hold pass after pass: a repeat replaces the newest event of its kind instead of flooding the log.</summary>
    private static readonly HashSet<string> Ongoing = new(StringComparer.Ordinal) { "at_limit", "cannot_grow", "quota" };

    /// <summary>
    /// Appends an event unless it repeats the newest one (a group that cannot grow says so once, not every pass); an ongoing
    /// condition (at a bound, cannot grow) right after one of its kind replaces it with the fresh numbers. Keeps the newest <paramref name="keep"/>.
    /// </summary>
    public static ScalingGroupState WithEvent(ScalingGroupState s, ScalingEvent e, int keep)
    {
        if (s.Events.Count > 0 && s.Events[^1].Kind == e.Kind && s.Events[^1].Message == e.Message)
        {
            return s;
        }
        var events = s.Events.Count > 0 && s.Events[^1].Kind == e.Kind && Ongoing.Contains(e.Kind) ? s.Events.Take(s.Events.Count - 1).Append(e).ToList() : s.Events.Append(e).ToList();
        return s with { Events = events.Count > keep ? events[^keep..] : events };
    }

    private ScalingGroupState Event(ScalingGroupState s, string kind, string message) => WithEvent(s, new ScalingEvent(time.GetUtcNow(), kind, message), options.EventLogSize);

    private async Task ReconcileAsync(Guid id, CancellationToken ct)
    {
        if (await store.GetScalingGroupAsync(id, ct) is not { } g)
        {
            return;
        }
        var deleting = g.State.Status == "deleting";
        var instances = await SortMembersAsync(g, deleting, ct);
        if (instances is null)
        {
            return;
        }
        await DrainAsync(id, g.Name, ct);
        if (!deleting)
        {
            await CheckHealthAsync(id, instances, ct);
            await ApplySchedulesAsync(id, ct);
            await ApplyPoliciesAsync(id, instances, ct);
        }
        await ConvergeAsync(id, ct);
    }

    // ---------------- 1. members that left ----------------

    /// <summary>Drops members deleted by hand; moves failed and hand-stopped ones to draining; notes when members become active.</summary>
    private async Task<Dictionary<Guid, Instance>?> SortMembersAsync(ScalingGroup g, bool deleting, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var instances = new Dictionary<Guid, Instance>();
        var gone = new List<(ScalingMember M, string Why)>();
        var failed = new List<(ScalingMember M, string Why, bool NoRoom)>();
        var activated = new HashSet<Guid>();
        foreach (var m in g.State.Members)
        {
            var i = await store.GetInstanceAsync(new InstanceId(m.Id), ct);
            if (i is null || i.VmState == VmState.Deleted || i.Task == InstanceTask.Deleting)
            {
                gone.Add((m, $"member {m.Name} was deleted"));
                continue;
            }
            instances[m.Id] = i;
            if (i is { VmState: VmState.Error, Task: null })
            {
                var noRoom = i.Fault?.StartsWith("no valid host", StringComparison.Ordinal) == true;
                failed.Add((m, noRoom ? $"member {m.Name} found no host: {i.Fault}" : $"member {m.Name} is in error: {i.Fault ?? "no reason given"}", noRoom));
            }
            else if (i is { VmState: VmState.Stopped, Task: null })
            {
                failed.Add((m, $"member {m.Name} was stopped outside the group", false));
            }
            else if (i is { VmState: VmState.Active } && m.ActiveSince is null)
            {
                activated.Add(m.Id);
            }
        }
        if (gone.Count == 0 && failed.Count == 0 && activated.Count == 0)
        {
            return instances;
        }
        var replacing = deleting ? "" : "; replacing it";
        var written = await MutateAsync(g.Id, cur =>
        {
            var s = cur.State;
            var leaving = gone.Select(x => x.M.Id).Concat(failed.Select(x => x.M.Id)).ToHashSet();
            var members = cur.State.Members.Where(m => !leaving.Contains(m.Id))
                .Select(m => activated.Contains(m.Id) && m.ActiveSince is null ? m with { ActiveSince = now } : m).ToList();
            var draining = cur.State.Draining.Concat(failed.Select(f => f.M).Where(f => cur.State.Members.Any(m => m.Id == f.Id))).ToList();
            s = s with { Members = members, Draining = draining };
            foreach (var (m, why) in gone.Where(x => cur.State.Members.Any(m => m.Id == x.M.Id)))
            {
                s = Event(s, "member_lost", why + replacing);
            }
            foreach (var (m, why, noRoom) in failed.Where(x => cur.State.Members.Any(m => m.Id == x.M.Id)))
            {
                s = noRoom
                    ? Event(s with { Status = "cannot_grow", StatusReason = why, RetryAfter = now + options.GrowRetry }, "cannot_grow", why)
                    : Event(s, "member_failed", why + replacing);
            }
            return cur with { State = s };
        }, ct);
        if (written is null)
        {
            return null;
        }
        foreach (var (m, why) in gone)
        {
            LogMemberLost(log, g.Name, m.Name, why);
        }
        return instances;
    }

    // ---------------- 2. draining: stop, then delete ----------------

    private async Task DrainAsync(Guid id, string groupName, CancellationToken ct)
    {
        if (await store.GetScalingGroupAsync(id, ct) is not { } g || g.State.Draining.Count == 0)
        {
            return;
        }
        var now = time.GetUtcNow();
        var actor = await ActorAsync(g, ct);
        var finished = new HashSet<Guid>();
        var stopAsked = new HashSet<Guid>();
        foreach (var d in g.State.Draining)
        {
            var i = await store.GetInstanceAsync(new InstanceId(d.Id), ct);
            if (i is null || i.VmState == VmState.Deleted)
            {
                finished.Add(d.Id);
            }
            else if (i.Task == InstanceTask.Deleting)
            {
                continue;
            }
            else if (i is { VmState: VmState.Active, Task: null } && d.StopRequestedAt is null)
            {
                // Graceful: the guest is asked to shut down first; the delete follows once it has stopped (or StopTimeout).
                if ((await cloud.ActAsync(d.Id.ToString("D"), new ServerActionRequest("stop", null), actor, ct)).Ok)
                {
                    stopAsked.Add(d.Id);
                }
            }
            else if (i.Task is null or InstanceTask.Scheduling || d.StopRequestedAt is { } at && now - at >= options.StopTimeout)
            {
                await cloud.DeleteServerAsync(d.Id.ToString("D"), actor, ct);
            }
        }
        if (finished.Count == 0 && stopAsked.Count == 0)
        {
            return;
        }
        await MutateAsync(id, cur => cur with
        {
            State = cur.State with
            {
                Draining = [.. cur.State.Draining.Where(d => !finished.Contains(d.Id)).Select(d => stopAsked.Contains(d.Id) ? d with { StopRequestedAt = now } : d)],
            },
        }, ct);
        foreach (var f in finished)
        {
            LogMemberRemoved(log, groupName, f);
        }
    }

    // ---------------- 3. health ----------------

    private async Task CheckHealthAsync(Guid id, Dictionary<Guid, Instance> instances, CancellationToken ct)
    {
        if (await store.GetScalingGroupAsync(id, ct) is not { Spec.Health: { } h } g)
        {
            return;
        }
        var now = time.GetUtcNow();
        var due = new List<(ScalingMember M, int Port)>();
        foreach (var m in g.State.Members)
        {
            if (m.ActiveSince is { } since && now - since >= h.Grace && instances.TryGetValue(m.Id, out var i) && i is { VmState: VmState.Active, Task: null }
                && (i.Forwards ?? []).FirstOrDefault(f => f.GuestPort == h.Port) is { HostPort: > 0 } fw)
            {
                due.Add((m, fw.HostPort));
            }
        }
        if (due.Count == 0)
        {
            return;
        }
        var results = await Task.WhenAll(due.Select(async d => (d.M.Id, Ok: await probe.CheckAsync(d.Port, h.Path, h.Timeout, ct))));
        var ok = results.ToDictionary(r => r.Id, r => r.Ok);
        await MutateAsync(id, cur =>
        {
            var s = cur.State;
            var members = new List<ScalingMember>();
            var draining = s.Draining.ToList();
            foreach (var m in s.Members)
            {
                if (!ok.TryGetValue(m.Id, out var passed))
                {
                    members.Add(m);
                    continue;
                }
                var failures = passed ? 0 : m.HealthFailures + 1;
                if (failures >= h.UnhealthyThreshold)
                {
                    draining.Add(m with { HealthFailures = failures });
                    s = Event(s, "unhealthy", $"member {m.Name} failed {failures} health checks in a row (GET :{h.Port}{h.Path}); replacing it");
                }
                else
                {
                    members.Add(m with { HealthFailures = failures });
                }
            }
            return members.SequenceEqual(s.Members) ? null : cur with { State = s with { Members = members, Draining = draining } };
        }, ct);
    }

    // ---------------- 4. scheduled changes ----------------

    private async Task ApplySchedulesAsync(Guid id, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await MutateAsync(id, cur =>
        {
            var due = cur.Spec.Schedules.Where(c => c.At <= now && !cur.State.AppliedSchedules.Contains(c.Name)).OrderBy(c => c.At).ToList();
            if (due.Count == 0)
            {
                return null;
            }
            var spec = cur.Spec;
            var s = cur.State;
            foreach (var c in due)
            {
                var min = c.Min ?? spec.Min;
                var max = Math.Max(c.Max ?? spec.Max, Math.Max(min, 1));
                var desired = Math.Clamp(c.Desired ?? spec.Desired, min, max);
                s = Event(s with { RetryAfter = null }, "schedule", $"scheduled change {c.Name} (due {c.At:u}): min {spec.Min} → {min}, max {spec.Max} → {max}, desired {spec.Desired} → {desired}");
                spec = spec with { Min = min, Max = max, Desired = desired };
            }
            return cur with { Spec = spec, State = s with { AppliedSchedules = [.. s.AppliedSchedules, .. due.Select(c => c.Name)] } };
        }, ct);
    }

    // ---------------- 5. metric policies ----------------

    private async Task ApplyPoliciesAsync(Guid id, Dictionary<Guid, Instance> instances, CancellationToken ct)
    {
        if (await store.GetScalingGroupAsync(id, ct) is not { } g || g.Spec.Policies.Count == 0)
        {
            return;
        }
        var now = time.GetUtcNow();
        var serving = g.State.Members.Where(m => m.ActiveSince is { } since && now - since > g.Spec.Warmup
            && instances.TryGetValue(m.Id, out var i) && i.VmState == VmState.Active).ToList();
        if (serving.Count == 0)
        {
            return;
        }
        var averages = new Dictionary<TimeSpan, (double? Avg, int Sampled)>();
        foreach (var p in g.Spec.Policies)
        {
            if (g.State.LastScaleAt is { } last && now - last < p.Cooldown)
            {
                continue;
            }
            if (!averages.TryGetValue(p.Window, out var a))
            {
                averages[p.Window] = a = await GroupCpuAsync(serving, p.Window, g.Spec.Warmup, now, ct);
            }
            if (a.Avg is not { } avg || !(p.Operator == "above" ? avg > p.Threshold : avg < p.Threshold))
            {
                continue;
            }
            var target = Math.Clamp(g.Spec.Desired + p.Adjustment, g.Spec.Min, g.Spec.Max);
            var why = $"policy {p.Name}: average CPU {avg:0.0} % of {a.Sampled} members over {p.Window.TotalSeconds:0.#} s is {p.Operator} {p.Threshold:0.#} %";
            if (target == g.Spec.Desired)
            {
                // Refreshed at most once a cooldown: a group held at a bound under load writes nothing every pass.
                if (g.State.Events.Count > 0 && g.State.Events[^1] is { Kind: "at_limit" } held && now - held.At < p.Cooldown)
                {
                    continue;
                }
                await MutateAsync(id, cur => cur with
                {
                    State = Event(cur.State, "at_limit", $"{why}, but the group is at its {(p.Adjustment > 0 ? "max" : "min")} ({target})"),
                }, ct);
                continue;
            }
            var written = await MutateAsync(id, cur => cur.Spec.Desired != g.Spec.Desired ? null : cur with
            {
                Spec = cur.Spec with { Desired = target },
                State = Event(cur.State with { LastScaleAt = now }, p.Adjustment > 0 ? "scale_out" : "scale_in", $"{why}: desired {g.Spec.Desired} → {target}"),
            }, ct);
            if (written is not null)
            {
                LogPolicy(log, g.Name, p.Name, avg, g.Spec.Desired, target);
            }
            return;
        }
    }

    /// <summary>
    /// The group's average CPU %: the mean of its members' averages over <paramref name="window"/> — each member's window
    /// cut to the time since its warmup ended, so boot load never counts — members without samples left out.
    /// </summary>
    private async Task<(double? Avg, int Sampled)> GroupCpuAsync(IReadOnlyList<ScalingMember> members, TimeSpan window, TimeSpan warmup, DateTimeOffset now, CancellationToken ct)
    {
        double sum = 0;
        var n = 0;
        foreach (var m in members)
        {
            var since = now - (m.ActiveSince!.Value + warmup);
            if (await metrics.AverageCpuAsync(new InstanceId(m.Id), since < window ? since : window, ct) is { } cpu)
            {
                sum += cpu;
                n++;
            }
        }
        return (n == 0 ? null : sum / n, n);
    }

    // ---------------- 6. converge: grow or shrink ----------------

    private async Task ConvergeAsync(Guid id, CancellationToken ct)
    {
        if (await store.GetScalingGroupAsync(id, ct) is not { } g)
        {
            return;
        }
        var now = time.GetUtcNow();
        if (g.State.Status == "deleting" && g.State.Members.Count == 0 && g.State.Draining.Count == 0)
        {
            if (await store.DeleteScalingGroupAsync(g.Id, g.Version, ct))
            {
                await store.DeleteGroupAsync(g.ServerGroupId, ct);
                LogDeleted(log, g.Name);
            }
            return;
        }
        var n = g.State.Members.Count;
        var desired = g.State.Status == "deleting" ? 0 : g.Spec.Desired;
        if (n > desired)
        {
            var victims = await VictimsAsync(g, n - desired, ct);
            g = await MutateAsync(id, cur =>
            {
                var s = cur.State;
                var chosen = cur.State.Members.Where(m => victims.Contains(m.Id)).ToList();
                foreach (var m in chosen)
                {
                    s = Event(s, "member_removed", $"removing {m.Name} ({(cur.State.Status == "deleting" ? "group deleted" : cur.Spec.ScaleIn + " first")}): desired {desired}, members {n}");
                }
                return cur with { State = s with { Members = [.. s.Members.Where(m => !victims.Contains(m.Id))], Draining = [.. s.Draining, .. chosen] } };
            }, ct) ?? g;
            await DrainAsync(id, g.Name, ct);
        }
        else if (n < desired && !(g.State.RetryAfter is { } retry && now < retry))
        {
            g = await GrowAsync(g, desired - n, ct) ?? g;
        }
        await MutateAsync(id, cur =>
        {
            var live = cur.State.Members.Count;
            var want = cur.State.Status == "deleting" ? 0 : cur.Spec.Desired;
            var blocked = live < want && cur.State.RetryAfter is { } ra && time.GetUtcNow() < ra;
            var status = cur.State.Status == "deleting" ? "deleting"
                : blocked ? "cannot_grow"
                : live < want ? "growing"
                : live > want || cur.State.Draining.Count > 0 ? "shrinking"
                : "stable";
            var reason = status == "cannot_grow" ? cur.State.StatusReason : null;
            return status == cur.State.Status && reason == cur.State.StatusReason ? null : cur with { State = cur.State with { Status = status, StatusReason = reason } };
        }, ct);
    }

    /// <summary>Members to remove: ones not serving yet first, then by the group's scale-in order.</summary>
    private async Task<HashSet<Guid>> VictimsAsync(ScalingGroup g, int count, CancellationToken ct)
    {
        var window = g.Spec.Policies.FirstOrDefault()?.Window ?? options.DefaultWindow;
        var ranked = new List<(ScalingMember M, bool Serving, double Load)>();
        foreach (var m in g.State.Members)
        {
            var load = g.Spec.ScaleIn == "least-loaded" ? await metrics.AverageCpuAsync(new InstanceId(m.Id), window, ct) ?? 0 : 0;
            ranked.Add((m, m.ActiveSince is not null, load));
        }
        return ranked.OrderBy(r => r.Serving).ThenBy(r => r.Load).ThenByDescending(r => r.M.Index).Take(count).Select(r => r.M.Id).ToHashSet();
    }

    /// <summary>Checks capacity with a dry-run placement, then creates as many members as fit (GROUP-N, as the owning project).</summary>
    private async Task<ScalingGroup?> GrowAsync(ScalingGroup g, int missing, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (await store.GetFlavorAsync(new FlavorId(Guid.Parse(g.Spec.Flavor)), ct) is not { } flavor)
        {
            return await BlockedAsync(g.Id, "cannot_grow", "the group's flavor no longer exists", ct);
        }
        var dry = await reconciler.DryRunAsync(flavor.Resources, missing, g.ServerGroupId, ct);
        var fits = dry.Results.Count(r => r is Placed);
        ScalingGroup? result = g;
        if (fits < missing)
        {
            var why = $"the scheduler has room for {fits} of {missing} more members ({flavor.Name}): {string.Join("; ", dry.Reasons.Distinct())}";
            result = await BlockedAsync(g.Id, "cannot_grow", why, ct);
            LogCannotGrow(log, g.Name, why);
        }
        if (fits == 0)
        {
            return result;
        }
        var (principal, actor) = await PrincipalAsync(g, ct);
        for (var k = 0; k < fits; k++)
        {
            // The member's number is reserved first, so a crash between the two writes skips a number rather than reusing one.
            var reserved = await MutateAsync(g.Id, cur => cur with { State = cur.State with { NextIndex = cur.State.NextIndex + 1 } }, ct);
            if (reserved is null || reserved.State.Status == "deleting")
            {
                return reserved;
            }
            var index = reserved.State.NextIndex - 1;
            var name = $"{g.Name}-{index}";
            var request = new CreateServerRequest(name, g.Spec.Flavor, g.Spec.Image, g.Spec.UserData, g.Spec.KeyName, null,
                [.. g.Spec.Forwards.Select(p => new ForwardDto(0, p))])
            { Group = g.ServerGroupId.ToString("D") };
            var created = await cloud.CreateServersAsync(request, null, actor, ct, principal);
            if (!created.Ok)
            {
                if (created.Problem!.Code == "name_in_use")
                {
                    await MutateAsync(g.Id, cur => cur with { State = Event(cur.State, "name_in_use", $"{name} is taken by another server of the project; trying the next number") }, ct);
                    k--;
                    continue;
                }
                var kind = created.Problem.Code == "quota_exceeded" ? "quota" : "cannot_grow";
                LogCannotGrow(log, g.Name, created.Problem.Detail ?? created.Problem.Code);
                return await BlockedAsync(g.Id, kind, $"{created.Problem.Code}: {created.Problem.Detail}", ct);
            }
            var server = created.Value.Servers[0];
            result = await MutateAsync(g.Id, cur => cur with
            {
                State = Event(cur.State with { Members = [.. cur.State.Members, new ScalingMember(server.Id.Value, name, index, now)] },
                    "member_added", $"added {name}: desired {cur.Spec.Desired}, members {cur.State.Members.Count + 1}"),
            }, ct);
            if (result is null)
            {
                await cloud.DeleteServerAsync(server.Id.ToString(), actor, ct); // the group went away meanwhile
                return null;
            }
        }
        return result;
    }

    private Task<ScalingGroup?> BlockedAsync(Guid id, string kind, string why, CancellationToken ct) =>
        MutateAsync(id, cur => cur with
        {
            State = Event(cur.State with { Status = "cannot_grow", StatusReason = why, RetryAfter = time.GetUtcNow() + options.GrowRetry }, kind, why),
        }, ct);

    // ---------------- helpers ----------------

    /// <summary>The owning project's member role: what a member of that project could do, so its quotas and budget apply.</summary>
    private async Task<(Principal Principal, string Actor)> PrincipalAsync(ScalingGroup g, CancellationToken ct)
    {
        var project = await store.GetProjectAsync(g.ProjectId, ct);
        var p = new Principal(Guid.Empty, $"scaling-group:{g.Name}", g.ProjectId, project?.Name ?? g.ProjectId.ToString("D"), Role.Member, Guid.Empty, null);
        return (p, p.Actor);
    }

    private async Task<string> ActorAsync(ScalingGroup g, CancellationToken ct) => (await PrincipalAsync(g, ct)).Actor;

    /// <summary>Re-reads the group, applies <paramref name="change"/> (null: nothing to write) and compare-and-swaps; retries on a lost race. Null when the group is gone.</summary>
    private async Task<ScalingGroup?> MutateAsync(Guid id, Func<ScalingGroup, ScalingGroup?> change, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            if (await store.GetScalingGroupAsync(id, ct) is not { } g)
            {
                return null;
            }
            if (change(g) is not { } next)
            {
                return g;
            }
            next = next with { Version = g.Version, UpdatedAt = time.GetUtcNow() };
            switch (await store.UpdateScalingGroupAsync(next, ct))
            {
                case CasOutcome.Ok:
                    return next with { Version = g.Version + 1 };
                case CasOutcome.NotFound:
                    return null;
            }
        }
        throw new InvalidOperationException($"scaling group {id} kept changing under the loop");
    }

    [LoggerMessage(90, LogLevel.Error, "Scaling pass failed")]
    private static partial void LogPassFailed(ILogger log, Exception e);

    [LoggerMessage(91, LogLevel.Error, "Scaling group {Group}: pass failed")]
    private static partial void LogGroupFailed(ILogger log, Exception e, string group);

    [LoggerMessage(92, LogLevel.Information, "Scaling group {Group}: policy {Policy} (average CPU {Cpu:0.0} %) desired {From} -> {To}")]
    private static partial void LogPolicy(ILogger log, string group, string policy, double cpu, int from, int to);

    [LoggerMessage(93, LogLevel.Warning, "Scaling group {Group} cannot grow: {Reason}")]
    private static partial void LogCannotGrow(ILogger log, string group, string reason);

    [LoggerMessage(94, LogLevel.Information, "Scaling group {Group}: member {Member}: {Why}")]
    private static partial void LogMemberLost(ILogger log, string group, string member, string why);

    [LoggerMessage(95, LogLevel.Information, "Scaling group {Group}: member {InstanceId} removed")]
    private static partial void LogMemberRemoved(ILogger log, string group, Guid instanceId);

    [LoggerMessage(96, LogLevel.Information, "Scaling group {Group} deleted")]
    private static partial void LogDeleted(ILogger log, string group);
}
