using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Ids;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller.Scaling;

/// <summary>
/// Scaling groups' requests: validates (every error at once; a refused request writes nothing), records the spec, and
/// leaves the members to <see cref="ScalingLoop"/>. A group belongs to its caller's project; its members are created as
/// that project's servers, so the project's quotas and budget apply to them.
/// </summary>
public sealed class ScalingService(IStateStore store, ScalingOptions options, TimeProvider time, ScalingSignal signal)
{
    /// <summary>Most members a group may have.</summary>
    public const int MaxMembers = 100;

    /// <summary>A group's name leaves room for the members' suffix -N.</summary>
    public const int MaxNameLength = NameRules.MaxLength - 4;

    public async Task<Outcome<ScalingGroup>> CreateAsync(CreateScalingGroupRequest r, Principal caller, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Name is null)
        {
            errors.Add(new("name", "required", "is required"));
        }
        else if (NameRules.Check(r.Name) is { } nameProblem)
        {
            errors.Add(new("name", "invalid", nameProblem));
        }
        else if (r.Name.Length > MaxNameLength)
        {
            errors.Add(new("name", "invalid", $"must be at most {MaxNameLength} characters (members are named NAME-N)"));
        }
        Flavor? flavor = null;
        Image? image = null;
        if (string.IsNullOrEmpty(r.Flavor))
        {
            errors.Add(new("flavor", "required", "is required"));
        }
        else if ((flavor = await ResolveFlavorAsync(r.Flavor, ct)) is null || !CloudService.FlavorVisible(flavor, caller.Scope))
        {
            errors.Add(new("flavor", "not_found", $"no flavor named or with id '{r.Flavor}'"));
        }
        if (string.IsNullOrEmpty(r.Image))
        {
            errors.Add(new("image", "required", "is required"));
        }
        else if ((image = await ResolveImageAsync(r.Image, ct)) is null || !CloudService.ImageVisible(image, caller.Scope))
        {
            errors.Add(new("image", "not_found", $"no image named or with id '{r.Image}'"));
        }
        else if (image.Status != ImageStatus.Active)
        {
            errors.Add(new("image", "not_active", $"image '{image.Name}' is not active"));
        }
        var min = r.Min ?? 0;
        var max = r.Max;
        if (max is null)
        {
            errors.Add(new("max", "required", "is required"));
        }
        var desired = r.Desired ?? min;
        CheckBounds(errors, min, max ?? MaxMembers, desired);
        var health = CheckHealth(r.Health, errors);
        var policies = CheckPolicies(r.Policies, errors);
        var schedules = CheckSchedules(r.Schedules, errors);
        var scaleIn = r.ScaleIn ?? "newest";
        if (!ScalingGroupSpec.ScaleInOrders.Contains(scaleIn))
        {
            errors.Add(new("scale_in", "invalid", $"must be one of {string.Join(", ", ScalingGroupSpec.ScaleInOrders)}"));
        }
        var forwards = new List<int>();
        foreach (var (p, i) in (r.Forwards ?? []).Select((p, i) => (p, i)))
        {
            if (p is < 1 or > 65535)
            {
                errors.Add(new($"forwards[{i}]", "out_of_range", "must be a guest port between 1 and 65535"));
            }
            else if (!forwards.Contains(p))
            {
                forwards.Add(p);
            }
        }
        if (health is not null && !forwards.Contains(health.Port))
        {
            forwards.Add(health.Port);
        }
        if (forwards.Count > 16)
        {
            errors.Add(new("forwards", "too_many", "at most 16 forwards"));
        }
        if (r.KeyName is not null && (await store.FindKeypairAsync(r.KeyName, ct) is not { } kp || !CloudService.Owns(caller.Scope, kp.ProjectId)))
        {
            errors.Add(new("key_name", "not_found", $"no keypair named '{r.KeyName}'"));
        }
        Seconds(errors, "warmup_seconds", r.WarmupSeconds, 0, 3600);
        if (r.UserData is { Length: > 64 * 1024 })
        {
            errors.Add(new("user_data", "too_large", "must be at most 65536 characters"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (await store.FindScalingGroupAsync(r.Name!, caller.ProjectId, ct) is not null)
        {
            return Problem.Conflict("name_in_use", $"a scaling group named '{r.Name}' already exists");
        }
        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7();
        // The members' placement rule: soft anti-affinity spreads them over hosts while letting a small cloud still grow.
        var serverGroup = new ServerGroup(Guid.CreateVersion7(), $"scaling-{id:N}", "soft-anti-affinity", 1, 1, now, caller.ProjectId);
        if (!await store.CreateGroupAsync(serverGroup, ct))
        {
            return Problem.Conflict("concurrent_update", "could not create the group's server group; retry");
        }
        var spec = new ScalingGroupSpec(flavor!.Id.ToString(), image!.Id.ToString(), min, max!.Value, desired, health, policies, schedules, scaleIn, forwards, r.KeyName, r.UserData,
            r.WarmupSeconds is { } warm ? TimeSpan.FromSeconds(warm) : options.DefaultWarmup);
        var state = ScalingGroupState.New with
        {
            Status = desired > 0 ? "growing" : "stable",
            Events = [new ScalingEvent(now, "created", $"created by {caller.Actor}: min {min}, max {max}, desired {desired}")],
        };
        var group = new ScalingGroup(id, r.Name!, caller.ProjectId, serverGroup.Id, spec, state, 1, now, now);
        if (!await store.CreateScalingGroupAsync(group, ct))
        {
            await store.DeleteGroupAsync(serverGroup.Id, ct);
            return Problem.Conflict("name_in_use", $"a scaling group named '{r.Name}' already exists");
        }
        signal.Signal();
        return group;
    }

    /// <summary>New bounds and desired count (those given), checked together against the ones kept.</summary>
    public async Task<Outcome<ScalingGroup>> UpdateAsync(Guid id, UpdateScalingGroupRequest r, string actor, CancellationToken ct)
    {
        if (r.Min is null && r.Max is null && r.Desired is null)
        {
            return Problem.Validation([new("desired", "required", "give min, max, desired or several")]);
        }
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (await store.GetScalingGroupAsync(id, ct) is not { } g)
            {
                return Problem.NotFound("scaling group", id.ToString("D"));
            }
            if (g.State.Status == "deleting")
            {
                return Problem.Conflict("deleting", $"scaling group '{g.Name}' is being deleted");
            }
            var min = r.Min ?? g.Spec.Min;
            var max = r.Max ?? g.Spec.Max;
            // A new range without a new desired count keeps desired, moved into the range.
            var desired = r.Desired ?? Math.Clamp(g.Spec.Desired, min, Math.Max(min, max));
            var errors = new List<FieldError>();
            CheckBounds(errors, min, max, desired);
            if (errors.Count > 0)
            {
                return Problem.Validation(errors);
            }
            var now = time.GetUtcNow();
            var next = g with
            {
                Spec = g.Spec with { Min = min, Max = max, Desired = desired },
                State = ScalingLoop.WithEvent(g.State with
                {
                    RetryAfter = null,
                    Status = g.State.Members.Count < desired ? "growing" : g.State.Members.Count > desired ? "shrinking" : g.State.Status,
                    StatusReason = g.State.Members.Count == desired ? g.State.StatusReason : null,
                }, new ScalingEvent(now, "updated",
                    $"{actor}: min {g.Spec.Min} → {min}, max {g.Spec.Max} → {max}, desired {g.Spec.Desired} → {desired}"), options.EventLogSize),
                UpdatedAt = now,
            };
            switch (await store.UpdateScalingGroupAsync(next, ct))
            {
                case CasOutcome.Ok:
                    signal.Signal();
                    return next with { Version = g.Version + 1 };
                case CasOutcome.NotFound:
                    return Problem.NotFound("scaling group", id.ToString("D"));
            }
        }
        return Problem.Conflict("concurrent_update", "the scaling group kept changing; retry");
    }

    /// <summary>Replaces the metric policies and/or the scheduled changes.</summary>
    public async Task<Outcome<ScalingGroup>> SetPoliciesAsync(Guid id, ScalingPoliciesRequest r, string actor, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Policies is null && r.Schedules is null)
        {
            errors.Add(new("policies", "required", "give policies, schedules or both"));
        }
        var policies = r.Policies is null ? null : CheckPolicies(r.Policies, errors);
        var schedules = r.Schedules is null ? null : CheckSchedules(r.Schedules, errors);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (await store.GetScalingGroupAsync(id, ct) is not { } g)
            {
                return Problem.NotFound("scaling group", id.ToString("D"));
            }
            var now = time.GetUtcNow();
            var applied = schedules is null ? g.State.AppliedSchedules : g.State.AppliedSchedules.Where(n => schedules.Any(s => s.Name == n)).ToList();
            var next = g with
            {
                Spec = g.Spec with { Policies = policies ?? g.Spec.Policies, Schedules = schedules ?? g.Spec.Schedules },
                State = ScalingLoop.WithEvent(g.State with { AppliedSchedules = applied }, new ScalingEvent(now, "policies",
                    $"{actor}: {(policies ?? g.Spec.Policies).Count} policies, {(schedules ?? g.Spec.Schedules).Count} scheduled changes"), options.EventLogSize),
                UpdatedAt = now,
            };
            switch (await store.UpdateScalingGroupAsync(next, ct))
            {
                case CasOutcome.Ok:
                    signal.Signal();
                    return next with { Version = g.Version + 1 };
                case CasOutcome.NotFound:
                    return Problem.NotFound("scaling group", id.ToString("D"));
            }
        }
        return Problem.Conflict("concurrent_update", "the scaling group kept changing; retry");
    }

    /// <summary>Starts deleting a group: its members are removed gracefully (stop, then delete), then the group and its server group go.</summary>
    public async Task<Outcome<ScalingGroup>> DeleteAsync(Guid id, string actor, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (await store.GetScalingGroupAsync(id, ct) is not { } g)
            {
                return Problem.NotFound("scaling group", id.ToString("D"));
            }
            if (g.State.Status == "deleting")
            {
                return g;
            }
            var now = time.GetUtcNow();
            var next = g with
            {
                Spec = g.Spec with { Min = 0, Desired = 0 },
                State = ScalingLoop.WithEvent(g.State with { Status = "deleting", StatusReason = null }, new ScalingEvent(now, "deleting",
                    $"{actor}: removing {g.State.Members.Count} members, then the group"), options.EventLogSize),
                UpdatedAt = now,
            };
            switch (await store.UpdateScalingGroupAsync(next, ct))
            {
                case CasOutcome.Ok:
                    signal.Signal();
                    return next with { Version = g.Version + 1 };
                case CasOutcome.NotFound:
                    return Problem.NotFound("scaling group", id.ToString("D"));
            }
        }
        return Problem.Conflict("concurrent_update", "the scaling group kept changing; retry");
    }

    /// <summary>A group as a caller may see it: by name or id within the caller's project; cloud admins also any project's by id or name.</summary>
    public async Task<ScalingGroup?> ResolveAsync(string reference, Principal p, CancellationToken ct)
    {
        if (await store.FindScalingGroupAsync(reference, p.ProjectId, ct) is { } own)
        {
            return own;
        }
        if (p.Scope is not null)
        {
            return null;
        }
        return (await store.ListScalingGroupsAsync(ct)).FirstOrDefault(g => g.Id.ToString("D") == reference || g.Name == reference);
    }

    // ---------------- answers ----------------

    public async Task<ScalingGroupDto> ToDtoAsync(ScalingGroup g, CancellationToken ct)
    {
        var flavor = await store.GetFlavorAsync(new FlavorId(Guid.Parse(g.Spec.Flavor)), ct);
        var image = await store.GetImageAsync(new ImageId(Guid.Parse(g.Spec.Image)), ct);
        var s = g.Spec;
        return new ScalingGroupDto(g.Id.ToString("D"), g.Name, flavor?.Name ?? s.Flavor, image?.Name ?? s.Image, s.Min, s.Max, s.Desired, g.State.Members.Count,
            g.State.Draining.Count, g.State.Status, g.State.StatusReason, s.ScaleIn, ToDto(s.Health), s.Forwards, [.. s.Policies.Select(ToDto)],
            [.. s.Schedules.Select(c => ToDto(c, g.State.AppliedSchedules.Contains(c.Name)))], g.ServerGroupId.ToString("D"),
            [.. g.State.Events.Reverse().Select(e => new ScalingEventDto(e.At, e.Kind, e.Message))], g.CreatedAt, g.UpdatedAt, g.Version)
        {
            WarmupSeconds = s.Warmup.TotalSeconds,
        };
    }

    public ScalingPoliciesDto PoliciesDto(ScalingGroup g) =>
        new([.. g.Spec.Policies.Select(ToDto)], [.. g.Spec.Schedules.Select(c => ToDto(c, g.State.AppliedSchedules.Contains(c.Name)))]);

    public async Task<IReadOnlyList<ScalingMemberDto>> MembersAsync(ScalingGroup g, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var list = new List<ScalingMemberDto>();
        foreach (var (m, draining) in g.State.Members.Select(m => (m, false)).Concat(g.State.Draining.Select(m => (m, true))))
        {
            var i = await store.GetInstanceAsync(new InstanceId(m.Id), ct);
            var health = draining ? "draining"
                : g.Spec.Health is not { } h ? "unchecked"
                : m.ActiveSince is not { } since || now - since < h.Grace ? "grace"
                : m.HealthFailures > 0 ? "failing" : "healthy";
            list.Add(new ScalingMemberDto(m.Id.ToString("D"), m.Name, m.Index, i is null ? "deleted" : Core.Lifecycle.Names.Of(i.VmState),
                i?.Task is { } t ? Core.Lifecycle.Names.Of(t) : null, i?.HostId?.ToString(), health, m.HealthFailures,
                [.. (i?.Forwards ?? []).Select(f => new ForwardDto(f.HostPort, f.GuestPort))], m.CreatedAt)
            { ActiveSince = m.ActiveSince });
        }
        return list;
    }

    private static HealthCheckDto? ToDto(HealthCheckSpec? h) =>
        h is null ? null : new(h.Port, h.Path, h.Grace.TotalSeconds, h.Timeout.TotalSeconds, h.UnhealthyThreshold);

    private static ScalingPolicyDto ToDto(ScalingPolicySpec p) =>
        new(p.Name, p.Operator, p.Threshold, p.Window.TotalSeconds, p.Adjustment, p.Cooldown.TotalSeconds);

    private static ScheduledChangeDto ToDto(ScheduledChangeSpec c, bool applied) =>
        new(c.Name, c.At, c.Desired, c.Min, c.Max) { Applied = applied };

    // ---------------- validation ----------------

    private static void CheckBounds(List<FieldError> errors, int min, int max, int desired)
    {
        if (min is < 0 or > MaxMembers)
        {
            errors.Add(new("min", "out_of_range", $"must be between 0 and {MaxMembers} (got {min})"));
        }
        if (max is < 1 or > MaxMembers)
        {
            errors.Add(new("max", "out_of_range", $"must be between 1 and {MaxMembers} (got {max})"));
        }
        else if (max < min)
        {
            errors.Add(new("max", "invalid", $"must be at least min ({min}); got {max}"));
        }
        if (desired < min || desired > max)
        {
            errors.Add(new("desired", "out_of_range", $"must be between min ({min}) and max ({max}); got {desired}"));
        }
    }

    private HealthCheckSpec? CheckHealth(HealthCheckDto? h, List<FieldError> errors)
    {
        if (h is null)
        {
            return null;
        }
        var before = errors.Count;
        if (h.Port is null)
        {
            errors.Add(new("health.port", "required", "is required"));
        }
        else if (h.Port is < 1 or > 65535)
        {
            errors.Add(new("health.port", "out_of_range", "must be a guest port between 1 and 65535"));
        }
        var path = h.Path ?? "/";
        if (!path.StartsWith('/') || path.Length > 256 || path.Any(c => char.IsControl(c) || c == ' '))
        {
            errors.Add(new("health.path", "invalid", "must start with '/', at most 256 characters, no spaces"));
        }
        Seconds(errors, "health.grace_seconds", h.GraceSeconds, 0, 3600);
        Seconds(errors, "health.timeout_seconds", h.TimeoutSeconds, 0.05, 60);
        if (h.UnhealthyThreshold is < 1 or > 100)
        {
            errors.Add(new("health.unhealthy_threshold", "out_of_range", "must be between 1 and 100"));
        }
        return errors.Count > before ? null : new HealthCheckSpec(h.Port!.Value, path,
            h.GraceSeconds is { } g ? TimeSpan.FromSeconds(g) : options.DefaultHealthGrace,
            h.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : options.DefaultHealthTimeout,
            h.UnhealthyThreshold ?? options.DefaultUnhealthyThreshold);
    }

    private List<ScalingPolicySpec> CheckPolicies(IReadOnlyList<ScalingPolicyDto?>? list, List<FieldError> errors) =>
        CheckNamedList(list, "policies", 20, "policy", "policies", "policy", p => p.Name, x => x.Name, errors, (p, f) =>
        {
            if (p.Operator is null)
            {
                errors.Add(new($"{f}.operator", "required", "is required: above or below"));
            }
            else if (!ScalingPolicySpec.Operators.Contains(p.Operator))
            {
                errors.Add(new($"{f}.operator", "invalid", "must be above or below"));
            }
            if (p.Threshold is null)
            {
                errors.Add(new($"{f}.threshold", "required", "is required: CPU percent, 0–100"));
            }
            else if (p.Threshold is < 0 or > 100 || double.IsNaN(p.Threshold.Value))
            {
                errors.Add(new($"{f}.threshold", "out_of_range", "must be a CPU percent between 0 and 100"));
            }
            if (p.Adjustment is null)
            {
                errors.Add(new($"{f}.adjustment", "required", "is required: members to add (positive) or remove (negative)"));
            }
            else if (p.Adjustment is 0 or < -MaxMembers or > MaxMembers)
            {
                errors.Add(new($"{f}.adjustment", "out_of_range", $"must be non-zero, between -{MaxMembers} and {MaxMembers}"));
            }
            Seconds(errors, $"{f}.window_seconds", p.WindowSeconds, 1, 86400);
            Seconds(errors, $"{f}.cooldown_seconds", p.CooldownSeconds, 0, 86400);
        }, (p, name) => new ScalingPolicySpec(name, p.Operator!, p.Threshold!.Value,
            p.WindowSeconds is { } w ? TimeSpan.FromSeconds(w) : options.DefaultWindow, p.Adjustment!.Value,
            p.CooldownSeconds is { } c ? TimeSpan.FromSeconds(c) : options.DefaultCooldown));

    private static List<ScheduledChangeSpec> CheckSchedules(IReadOnlyList<ScheduledChangeDto?>? list, List<FieldError> errors) =>
        CheckNamedList(list, "schedules", 50, "scheduled change", "scheduled changes", "schedule", s => s.Name, x => x.Name, errors, (s, f) =>
        {
            if (s.At is null)
            {
                errors.Add(new($"{f}.at", "required", "is required: a time with its offset (RFC 3339)"));
            }
            if (s.Desired is null && s.Min is null && s.Max is null)
            {
                errors.Add(new(f, "required", "give desired, min, max or several"));
            }
            if (s.Min is < 0 or > MaxMembers)
            {
                errors.Add(new($"{f}.min", "out_of_range", $"must be between 0 and {MaxMembers}"));
            }
            if (s.Max is < 1 or > MaxMembers)
            {
                errors.Add(new($"{f}.max", "out_of_range", $"must be between 1 and {MaxMembers}"));
            }
            if (s.Desired is < 0 or > MaxMembers)
            {
                errors.Add(new($"{f}.desired", "out_of_range", $"must be between 0 and {MaxMembers}"));
            }
            if (s.Min is { } mn && s.Max is { } mx && mx < mn)
            {
                errors.Add(new($"{f}.max", "invalid", "must be at least min"));
            }
        }, (s, name) => new ScheduledChangeSpec(name, s.At!.Value, s.Desired, s.Min, s.Max));

    /// <summary>
    /// What the group's named lists (policies, schedules) share: at most <paramref name="max"/> entries, none null, each
    /// named (by default "<paramref name="defaultName"/>-N") with a valid name used once. <paramref name="check"/>
    /// adds an entry's own errors (field prefix given); an entry that added none is built into the result.
    /// </summary>
    private static List<TSpec> CheckNamedList<TDto, TSpec>(IReadOnlyList<TDto?>? list, string field, int max, string what, string plural, string defaultName,
        Func<TDto, string?> nameOf, Func<TSpec, string> specName, List<FieldError> errors, Action<TDto, string> check, Func<TDto, string, TSpec> build)
        where TDto : class
    {
        var result = new List<TSpec>();
        if (list is not null && list.Count > max)
        {
            errors.Add(new(field, "too_many", $"at most {max} {plural}"));
            return result;
        }
        for (var i = 0; i < (list?.Count ?? 0); i++)
        {
            var item = list![i];
            var f = $"{field}[{i}]";
            if (item is null)
            {
                errors.Add(new(f, "required", "must be an object"));
                continue;
            }
            var before = errors.Count;
            var name = nameOf(item) ?? $"{defaultName}-{i + 1}";
            if (NameRules.Check(name) is { } np)
            {
                errors.Add(new($"{f}.name", "invalid", np));
            }
            else if (result.Any(x => specName(x) == name))
            {
                errors.Add(new($"{f}.name", "duplicate", $"'{name}' is used by another {what}"));
            }
            check(item, f);
            if (errors.Count == before)
            {
                result.Add(build(item, name));
            }
        }
        return result;
    }

    private static void Seconds(List<FieldError> errors, string field, double? value, double min, double max)
    {
        if (value is { } v && (double.IsNaN(v) || v < min || v > max))
        {
            errors.Add(new(field, "out_of_range", $"must be between {min} and {max} seconds"));
        }
    }

    private async Task<Flavor?> ResolveFlavorAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var g) ? await store.GetFlavorAsync(new FlavorId(g), ct) : await store.FindFlavorAsync(reference, ct);

    private async Task<Image?> ResolveImageAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var g) ? await store.GetImageAsync(new ImageId(g), ct) : await store.FindImageAsync(reference, ct);
}
