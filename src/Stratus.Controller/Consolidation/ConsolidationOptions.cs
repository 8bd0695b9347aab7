using Stratus.Scheduler.Consolidation;

namespace Stratus.Controller.Consolidation;

/// <summary>Start-up configuration of the controller's consolidation loop, its executor, standby and the energy report.</summary>
public sealed record ConsolidationOptions
{
    /// <summary>Run the loop (<c>stratusd --consolidation</c>). Default off: no server moves and no host powers down unless asked.</summary>
    public bool Enabled { get; init; }

    /// <summary>Time between two passes. Default 5 min; range 100 ms–1 day.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Window of the CPU averages the planner reads (per server). Default 10 min; range 1 s–1 day.</summary>
    public TimeSpan MetricsWindow { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Planner: "stratus" (default) or a detector-selector pair such as "lr-mmt", "thr-mmt" (see <see cref="ConsolidationPolicies"/>).</summary>
    public string Policy { get; init; } = "stratus";

    /// <summary>"stratus" policy: pack hosts up to this share of their CPU (0..1]. Default 1.0 (<see cref="StratusPolicyOptions.Target"/>).</summary>
    public double Target { get; init; } = StratusPolicyOptions.Default.Target;

    /// <summary>"stratus" policy: a host above this share of its CPU is overloaded (0.1–2). Default 1.1.</summary>
    public double Upper { get; init; } = StratusPolicyOptions.Default.Upper;

    /// <summary>"stratus" policy: hosts under this share of their CPU are evacuation candidates (0..1]. Default 0.9; lower is more conservative.</summary>
    public double Lower { get; init; } = StratusPolicyOptions.Default.Lower;

    /// <summary>Most moves one pass plans (1–10,000). Default 20.</summary>
    public int MaxMovesPerPass { get; init; } = 20;

    /// <summary>Most migrations running at once in the whole cloud (whoever started them). Default 4; range 1–1000.
    /// The per-host limit is <see cref="ControllerOptions.MaxMigrationsPerHost"/>.</summary>
    public int MaxConcurrentMigrations { get; init; } = 4;

    /// <summary>A plan's moves not started within this are dropped (started ones run on under the migration timeout). Default 30 min; range 1 s–1 day.</summary>
    public TimeSpan PlanTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Power idle hosts down. Default on (with the no-op power driver that only marks them standby).</summary>
    public bool Standby { get; init; } = true;

    /// <summary>Hysteresis: a host must have been empty (no servers, no migration) this long before it goes to standby. Default 10 min; range 0–1 day.</summary>
    public TimeSpan StandbyGrace { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Never put a host in standby when fewer than this many up hosts would remain. Default 1; range 0–10,000.</summary>
    public int MinHostsUp { get; init; } = 1;

    /// <summary>After waking a host for a server that found no room, other such servers wait this long for it before another host is woken. Default 10 s; range 0–1 h.</summary>
    public TimeSpan WakeSettle { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Power driver: "noop" (default; standby is only a state in the store) or "simulated" (records calls, for tests and demos).</summary>
    public string PowerDriver { get; init; } = "noop";

    /// <summary>Energy report: a host's watts at 0 % CPU unless its aggregate's metadata says <c>power_idle_w</c>. Default 100 W.</summary>
    public double IdleWatts { get; init; } = 100;

    /// <summary>Energy report: a host's watts at 100 % CPU unless its aggregate's metadata says <c>power_max_w</c>. Default 250 W; at least <see cref="IdleWatts"/>.</summary>
    public double MaxWatts { get; init; } = 250;

    /// <summary>Energy report: watts drawn by a host in standby (BMC, fans at rest) unless <c>power_standby_w</c> says otherwise. Default 5 W.</summary>
    public double StandbyWatts { get; init; } = 5;

    /// <summary>Passes kept in the in-memory decision log (<c>GET /v1/consolidation</c>). Default 50; range 1–10,000.</summary>
    public int LogSize { get; init; } = 50;

    /// <summary>Every option out of range, as messages (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        void Range(bool bad, string message)
        {
            if (bad)
            {
                e.Add(message);
            }
        }
        Range(Interval < TimeSpan.FromMilliseconds(100) || Interval > TimeSpan.FromDays(1), "consolidation interval must be between 0.1 s and 1 day");
        Range(MetricsWindow < TimeSpan.FromSeconds(1) || MetricsWindow > TimeSpan.FromDays(1), "consolidation metrics window must be between 1 s and 1 day");
        Range(!ConsolidationPolicies.IsKnown(Policy), $"consolidation policy '{Policy}' is unknown (stratus, lr-mmt, thr-mmt, iqr-mmt, mad-mmt, ...)");
        Range(Target is <= 0 or > 1, "consolidation target must be in (0, 1]");
        Range(Upper is < 0.1 or > 2, "consolidation upper threshold must be between 0.1 and 2");
        Range(Lower is <= 0 or > 1, "consolidation lower threshold must be in (0, 1]");
        Range(MaxMovesPerPass is < 1 or > 10_000, "consolidation moves per pass must be between 1 and 10000");
        Range(MaxConcurrentMigrations is < 1 or > 1000, "consolidation concurrent migrations must be between 1 and 1000");
        Range(PlanTimeout < TimeSpan.FromSeconds(1) || PlanTimeout > TimeSpan.FromDays(1), "consolidation plan timeout must be between 1 s and 1 day");
        Range(StandbyGrace < TimeSpan.Zero || StandbyGrace > TimeSpan.FromDays(1), "standby grace must be between 0 and 1 day");
        Range(MinHostsUp is < 0 or > 10_000, "minimum hosts up must be between 0 and 10000");
        Range(WakeSettle < TimeSpan.Zero || WakeSettle > TimeSpan.FromHours(1), "wake settle time must be between 0 and 1 h");
        Range(PowerDriver is not ("noop" or "simulated"), $"power driver must be noop or simulated (got '{PowerDriver}')");
        Range(IdleWatts is < 0 or > 100_000 || MaxWatts < IdleWatts || MaxWatts > 100_000, "watts: 0 <= idle <= max <= 100000");
        Range(StandbyWatts is < 0 or > 100_000, "standby watts must be between 0 and 100000");
        Range(LogSize is < 1 or > 10_000, "consolidation log size must be between 1 and 10000");
        return e;
    }
}
