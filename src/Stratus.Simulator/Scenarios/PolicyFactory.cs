using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Scenarios;

/// <summary>Builds consolidation planners from a scenario's <see cref="PolicySpec"/>.</summary>
public static class PolicyFactory
{
    /// <summary>Default safety parameters / thresholds of the CloudSim PlanetLab examples.</summary>
    public static double DefaultParameter(string detector) => detector switch
    {
        "thr" => 0.8,
        "iqr" => 1.5,
        "mad" => 2.5,
        _ => 1.2,
    };

    /// <summary>The planner for a policy, or null for "none" (no consolidation).</summary>
    public static IConsolidationPlanner? Create(PolicySpec policy)
    {
        var name = policy.Name.Trim().ToLowerInvariant();
        if (name == "none")
        {
            return null;
        }
        if (name == "stratus")
        {
            return new StratusConsolidationPlanner(new StratusPolicyOptions
            {
                Target = policy.Target ?? StratusPolicyOptions.Default.Target,
                Upper = policy.Upper ?? StratusPolicyOptions.Default.Upper,
                Lower = policy.Lower ?? StratusPolicyOptions.Default.Lower,
                Budget = policy.Budget ?? StratusPolicyOptions.Default.Budget,
                CooldownIntervals = policy.Cooldown ?? StratusPolicyOptions.Default.CooldownIntervals,
                InitialOvercommit = policy.InitialOvercommit ?? StratusPolicyOptions.Default.InitialOvercommit,
            });
        }
        var parts = name.Split('-');
        if (parts.Length != 2)
        {
            throw new ArgumentException($"unknown policy '{policy.Name}'");
        }
        return new PowerAwareConsolidationPlanner(Detector(parts[0], policy.Parameter), Selector(parts[1], policy.Seed));
    }

    /// <summary>The overload detector named by a policy (THR 0.7 for "stratus" and "none", used by initial placement).</summary>
    public static IOverloadDetector InitialDetector(PolicySpec policy)
    {
        var name = policy.Name.Trim().ToLowerInvariant();
        var parts = name.Split('-');
        return parts.Length == 2 ? Detector(parts[0], policy.Parameter) : new StaticThresholdDetector(0.7);
    }

    private static IOverloadDetector Detector(string name, double? parameter)
    {
        var fallback = new StaticThresholdDetector(0.7);
        var p = parameter ?? DefaultParameter(name);
        return name switch
        {
            "thr" => new StaticThresholdDetector(p),
            "iqr" => AdaptiveThresholdDetector.Iqr(p, fallback),
            "mad" => AdaptiveThresholdDetector.Mad(p, fallback),
            "lr" => new LocalRegressionDetector(p, fallback),
            "lrr" => new LocalRegressionDetector(p, fallback, robust: true),
            _ => throw new ArgumentException($"unknown overload detector '{name}'"),
        };
    }

    private static IVmSelector Selector(string name, int seed) => name switch
    {
        "mmt" => new MinimumMigrationTimeSelector(),
        "mu" => new MinimumUtilizationSelector(),
        "mc" => new MaximumCorrelationSelector(new MinimumMigrationTimeSelector()),
        "rs" => new RandomSelector(new Random(seed)),
        _ => throw new ArgumentException($"unknown VM selector '{name}'"),
    };
}
