namespace Stratus.Core.Compute;

/// <summary>
/// A metric policy of a scaling group: when the group's average CPU (over its members with samples) over the last
/// <see cref="Window"/> is above (or below) <see cref="Threshold"/> percent, change the desired count by
/// <see cref="Adjustment"/> members (positive grows, negative shrinks), at most once per <see cref="Cooldown"/>.
/// </summary>
/// <param name="Operator">"above" or "below".</param>
/// <param name="Threshold">CPU percent, 0–100.</param>
public sealed record ScalingPolicySpec(string Name, string Operator, double Threshold, TimeSpan Window, int Adjustment, TimeSpan Cooldown)
{
    public static readonly IReadOnlyList<string> Operators = ["above", "below"];
}

/// <summary>A one-shot capacity change: at <see cref="At"/> the group's desired, min and max become the given values (null: unchanged).</summary>
public sealed record ScheduledChangeSpec(string Name, DateTimeOffset At, int? Desired, int? Min, int? Max);

/// <summary>
/// HTTP health check: GET http://127.0.0.1:HOSTPORT<see cref="Path"/> through each member's forward of guest
/// <see cref="Port"/>. A member is checked once it has been active for <see cref="Grace"/>; after
/// <see cref="UnhealthyThreshold"/> consecutive failures (no answer within <see cref="Timeout"/>, or a status outside 200–399) it is replaced.
/// </summary>
public sealed record HealthCheckSpec(int Port, string Path, TimeSpan Grace, TimeSpan Timeout, int UnhealthyThreshold);

/// <summary>What a scaling group is declared to be: the member template, its bounds and its rules.</summary>
/// <param name="ScaleIn">"newest" (default) or "least-loaded": which members go first when the group shrinks.</param>
/// <param name="Forwards">Guest ports every member forwards from a host port chosen per member (the health check's port among them).</param>
/// <param name="Warmup">A member's CPU counts in policy averages only once it has been active this long (boot load is not demand), and only its samples after that.</param>
public sealed record ScalingGroupSpec(
    string Flavor,
    string Image,
    int Min,
    int Max,
    int Desired,
    HealthCheckSpec? Health,
    IReadOnlyList<ScalingPolicySpec> Policies,
    IReadOnlyList<ScheduledChangeSpec> Schedules,
    string ScaleIn,
    IReadOnlyList<int> Forwards,
    string? KeyName = null,
    string? UserData = null,
    TimeSpan Warmup = default)
{
    public static readonly IReadOnlyList<string> ScaleInOrders = ["newest", "least-loaded"];
}

/// <summary>One member of a scaling group (a server named GROUP-N).</summary>
/// <param name="HealthFailures">Consecutive failed health checks.</param>
/// <param name="ActiveSince">When the controller first saw the member active (the health grace counts from here).</param>
/// <param name="StopRequestedAt">Draining members only: when the graceful stop was asked.</param>
public sealed record ScalingMember(Guid Id, string Name, int Index, DateTimeOffset CreatedAt, int HealthFailures = 0, DateTimeOffset? ActiveSince = null,
    DateTimeOffset? StopRequestedAt = null);

/// <summary>Something the group did or could not do, for people: kind (scale_out, scale_in, replace, cannot_grow, quota, schedule, …) and a sentence.</summary>
public sealed record ScalingEvent(DateTimeOffset At, string Kind, string Message);

/// <summary>A scaling group's runtime state, rewritten by its controller loop under compare-and-swap.</summary>
/// <param name="Status">"stable", "growing", "shrinking", "cannot_grow", "deleting".</param>
/// <param name="StatusReason">Why the group is not stable (e.g. the scheduler's reasons), else null.</param>
/// <param name="LastScaleAt">Last change of desired by a policy (cooldowns count from here).</param>
/// <param name="RetryAfter">After a failed grow (no room, quota), the next attempt waits until then.</param>
/// <param name="Draining">Members being removed: stopped gracefully, then deleted.</param>
public sealed record ScalingGroupState(
    IReadOnlyList<ScalingMember> Members,
    IReadOnlyList<ScalingMember> Draining,
    int NextIndex,
    string Status,
    string? StatusReason,
    DateTimeOffset? LastScaleAt,
    DateTimeOffset? RetryAfter,
    IReadOnlyList<string> AppliedSchedules,
    IReadOnlyList<ScalingEvent> Events)
{
    public static ScalingGroupState New => new([], [], 1, "growing", null, null, null, [], []);
}

/// <summary>A scaling group as stored: spec and state, a version every write compare-and-swaps, the soft anti-affinity server group its members join.</summary>
public sealed record ScalingGroup(Guid Id, string Name, Guid ProjectId, Guid ServerGroupId, ScalingGroupSpec Spec, ScalingGroupState State, long Version,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
