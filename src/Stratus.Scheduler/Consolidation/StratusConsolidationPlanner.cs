namespace Stratus.Scheduler.Consolidation;

/// <summary>Options of <see cref="StratusConsolidationPlanner"/>; every fraction is of host MIPS.</summary>
public sealed record StratusPolicyOptions
{
    /// <summary>Defaults tuned on the PlanetLab days.</summary>
    public static StratusPolicyOptions Default { get; } = new();

    /// <summary>Pack hosts up to this forecast utilisation (0..1).</summary>
    public double Target { get; init; } = 0.9;

    /// <summary>A host is overloaded when its forecast exceeds this (0..1).</summary>
    public double Upper { get; init; } = 1.0;

    /// <summary>Hosts under this utilisation are evacuation candidates (0..1).</summary>
    public double Lower { get; init; } = 0.6;

    /// <summary>At most this many migrations per round.</summary>
    public int Budget { get; init; } = 60;

    /// <summary>A VM migrated within this many intervals is not moved by evacuation.</summary>
    public int CooldownIntervals { get; init; } = 3;
}

/// <summary>Placeholder, replaced below.</summary>
public sealed class StratusConsolidationPlanner(StratusPolicyOptions options) : IConsolidationPlanner
{
    /// <summary>The options.</summary>
    public StratusPolicyOptions Options => options;

    /// <inheritdoc />
    public MigrationPlan Plan(ConsolidationSnapshot snapshot) => MigrationPlan.Empty;
}
