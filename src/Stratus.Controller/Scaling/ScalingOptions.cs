namespace Stratus.Controller.Scaling;

/// <summary>
/// Start-up configuration of the scaling-group loop, and the defaults a group gets for what its request leaves out
/// (every window, threshold and cooldown can also be set per group and per policy).
/// </summary>
public sealed record ScalingOptions
{
    /// <summary>Time between two passes over every group (health checks, policies, schedules, convergence). Default 5 s; range 50 ms–1 h.</summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A policy's averaging window when it names none. Default 5 min; range 1 s–1 day.</summary>
    public TimeSpan DefaultWindow { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>A policy's cooldown when it names none: after a policy changes desired, no policy acts for this long. Default 5 min; range 0–1 day.</summary>
    public TimeSpan DefaultCooldown { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Warmup when a group names none: a member's CPU counts in policy averages once it has been active this long. Default 30 s; range 0–1 h.</summary>
    public TimeSpan DefaultWarmup { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Health grace when a group names none: a member is checked only after being active this long. Default 60 s; range 0–1 h.</summary>
    public TimeSpan DefaultHealthGrace { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Health check request timeout when a group names none. Default 2 s; range 50 ms–60 s.</summary>
    public TimeSpan DefaultHealthTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Consecutive failed checks that make a member unhealthy when a group names none. Default 3; range 1–100.</summary>
    public int DefaultUnhealthyThreshold { get; init; } = 3;

    /// <summary>A draining member not stopped within this is deleted anyway. Default 60 s; range 0–1 h.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>After a grow that could not happen (no room, quota), the next attempt waits this long. Default 30 s; range 0–1 h.</summary>
    public TimeSpan GrowRetry { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Events kept per group (newest first in answers). Default 50; range 1–1000.</summary>
    public int EventLogSize { get; init; } = 50;

    /// <summary>Every option out of range, as messages (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        void Check(bool bad, string message)
        {
            if (bad)
            {
                e.Add(message);
            }
        }
        Check(CheckInterval < TimeSpan.FromMilliseconds(50) || CheckInterval > TimeSpan.FromHours(1), "scaling check interval must be between 0.05 s and 1 h");
        Check(DefaultWindow < TimeSpan.FromSeconds(1) || DefaultWindow > TimeSpan.FromDays(1), "scaling default window must be between 1 s and 1 day");
        Check(DefaultCooldown < TimeSpan.Zero || DefaultCooldown > TimeSpan.FromDays(1), "scaling default cooldown must be between 0 and 1 day");
        Check(DefaultWarmup < TimeSpan.Zero || DefaultWarmup > TimeSpan.FromHours(1), "scaling default warmup must be between 0 and 1 h");
        Check(DefaultHealthGrace < TimeSpan.Zero || DefaultHealthGrace > TimeSpan.FromHours(1), "scaling health grace must be between 0 and 1 h");
        Check(DefaultHealthTimeout < TimeSpan.FromMilliseconds(50) || DefaultHealthTimeout > TimeSpan.FromSeconds(60), "scaling health timeout must be between 0.05 and 60 s");
        Check(DefaultUnhealthyThreshold is < 1 or > 100, "scaling unhealthy threshold must be between 1 and 100");
        Check(StopTimeout < TimeSpan.Zero || StopTimeout > TimeSpan.FromHours(1), "scaling stop timeout must be between 0 and 1 h");
        Check(GrowRetry < TimeSpan.Zero || GrowRetry > TimeSpan.FromHours(1), "scaling grow retry must be between 0 and 1 h");
        Check(EventLogSize is < 1 or > 1000, "scaling event log size must be between 1 and 1000");
        return e;
    }
}
