namespace Stratus.Core.Wire;

/// <summary>A metric policy: average CPU of the group over <c>window_seconds</c> above (or below) <c>threshold</c> % → change desired by <c>adjustment</c>.</summary>
public sealed record ScalingPolicyDto(string? Name, string? Operator, double? Threshold, double? WindowSeconds, int? Adjustment, double? CooldownSeconds);

/// <summary>A scheduled capacity change: at <c>at</c> set desired, min and max (those given).</summary>
public sealed record ScheduledChangeDto(string? Name, DateTimeOffset? At, int? Desired, int? Min, int? Max)
{
    /// <summary>In answers: whether the change has been applied.</summary>
    public bool? Applied { get; init; }
}

/// <summary>The members' HTTP health check (GET on guest <c>port</c> through its forward).</summary>
public sealed record HealthCheckDto(int? Port, string? Path, double? GraceSeconds, double? TimeoutSeconds, int? UnhealthyThreshold);

/// <summary>POST /v1/scaling-groups.</summary>
public sealed record CreateScalingGroupRequest(string? Name, string? Flavor, string? Image, int? Min, int? Max, int? Desired)
{
    public HealthCheckDto? Health { get; init; }

    public IReadOnlyList<ScalingPolicyDto?>? Policies { get; init; }

    public IReadOnlyList<ScheduledChangeDto?>? Schedules { get; init; }

    /// <summary>"newest" (default) or "least-loaded".</summary>
    public string? ScaleIn { get; init; }

    /// <summary>Guest ports each member forwards (a host port is chosen per member); the health check's port is added.</summary>
    public IReadOnlyList<int>? Forwards { get; init; }

    public string? KeyName { get; init; }

    public string? UserData { get; init; }

    /// <summary>Seconds a member is active before its CPU counts in policy averages (default: the controller's, 30 s).</summary>
    public double? WarmupSeconds { get; init; }
}

/// <summary>PATCH /v1/scaling-groups/{id}: new bounds (those given).</summary>
public sealed record UpdateScalingGroupRequest(int? Min, int? Max, int? Desired);

/// <summary>PUT /v1/scaling-groups/{id}/policies: replaces the policies and the schedules (an absent list is kept).</summary>
public sealed record ScalingPoliciesRequest(IReadOnlyList<ScalingPolicyDto?>? Policies, IReadOnlyList<ScheduledChangeDto?>? Schedules);

/// <summary>GET /v1/scaling-groups/{id}/policies.</summary>
public sealed record ScalingPoliciesDto(IReadOnlyList<ScalingPolicyDto> Policies, IReadOnlyList<ScheduledChangeDto> Schedules);

/// <summary>Something a group did or could not do.</summary>
public sealed record ScalingEventDto(DateTimeOffset At, string Kind, string Message);

/// <summary>A member of a scaling group.</summary>
/// <param name="Health">"unchecked" (no health check), "grace", "healthy", "failing", "draining".</param>
public sealed record ScalingMemberDto(string Id, string Name, int Index, string VmState, string? Task, string? HostId, string Health, int HealthFailures,
    IReadOnlyList<ForwardDto> Forwards, DateTimeOffset CreatedAt)
{
    /// <summary>When the group first saw the member active (health grace and warmup count from here).</summary>
    public DateTimeOffset? ActiveSince { get; init; }
}

/// <summary>A scaling group.</summary>
/// <param name="Current">Members that count toward desired (not draining).</param>
/// <param name="Status">stable, growing, shrinking, cannot_grow, deleting.</param>
public sealed record ScalingGroupDto(string Id, string Name, string Flavor, string Image, int Min, int Max, int Desired, int Current, int Draining,
    string Status, string? StatusReason, string ScaleIn, HealthCheckDto? Health, IReadOnlyList<int> Forwards, IReadOnlyList<ScalingPolicyDto> Policies,
    IReadOnlyList<ScheduledChangeDto> Schedules, string ServerGroupId, IReadOnlyList<ScalingEventDto> Events, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, long Version)
{
    /// <summary>Seconds a member is active before its CPU counts in policy averages.</summary>
    public double WarmupSeconds { get; init; }
}
