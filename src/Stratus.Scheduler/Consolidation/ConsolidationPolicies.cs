namespace Stratus.Scheduler.Consolidation;

/// <summary>
/// Consolidation planners by name, for the controller's loop: "stratus" (<see cref="StratusConsolidationPlanner"/>)
/// or a "detector-selector" pair of <see cref="PowerAwareConsolidationPlanner"/> (detectors thr, iqr, mad, lr, lrr;
/// selectors mmt, mu, mc, rs), e.g. "lr-mmt", "thr-mmt". The same planners the simulator runs.
/// </summary>
public static class ConsolidationPolicies
{
    /// <summary>Names accepted for the common policies (any detector-selector pair is accepted too).</summary>
    public static IReadOnlyList<string> Known { get; } = ["stratus", "lr-mmt", "lrr-mmt", "thr-mmt", "iqr-mmt", "mad-mmt"];

    /// <summary>True when <paramref name="name"/> names a policy <see cref="Create"/> can build.</summary>
    public static bool IsKnown(string name)
    {
        var parts = name.Trim().ToLowerInvariant().Split('-');
        return name.Trim().Equals("stratus", StringComparison.OrdinalIgnoreCase)
            || (parts.Length == 2 && parts[0] is "thr" or "iqr" or "mad" or "lr" or "lrr" && parts[1] is "mmt" or "mu" or "mc" or "rs");
    }

    /// <summary>
    /// Builds the planner named <paramref name="name"/>. <paramref name="stratus"/> configures the "stratus" policy;
    /// <paramref name="parameter"/> is the detector's threshold or safety parameter (default: CloudSim's, THR 0.8,
    /// IQR 1.5, MAD 2.5, LR 1.2). Throws <see cref="ArgumentException"/> for an unknown name.
    /// </summary>
    public static IConsolidationPlanner Create(string name, StratusPolicyOptions? stratus = null, double? parameter = null, int seed = 42)
    {
        var n = name.Trim().ToLowerInvariant();
        if (n == "stratus")
        {
            return new StratusConsolidationPlanner(stratus ?? StratusPolicyOptions.Default);
        }
        var parts = n.Split('-');
        if (parts.Length != 2)
        {
            throw new ArgumentException($"unknown consolidation policy '{name}'", nameof(name));
        }
        var fallback = new StaticThresholdDetector(0.7);
        IOverloadDetector detector = parts[0] switch
        {
            "thr" => new StaticThresholdDetector(parameter ?? 0.8),
            "iqr" => AdaptiveThresholdDetector.Iqr(parameter ?? 1.5, fallback),
            "mad" => AdaptiveThresholdDetector.Mad(parameter ?? 2.5, fallback),
            "lr" => new LocalRegressionDetector(parameter ?? 1.2, fallback),
            "lrr" => new LocalRegressionDetector(parameter ?? 1.2, fallback, robust: true),
            _ => throw new ArgumentException($"unknown overload detector '{parts[0]}'", nameof(name)),
        };
        IVmSelector selector = parts[1] switch
        {
            "mmt" => new MinimumMigrationTimeSelector(),
            "mu" => new MinimumUtilizationSelector(),
            "mc" => new MaximumCorrelationSelector(new MinimumMigrationTimeSelector()),
            "rs" => new RandomSelector(new Random(seed)),
            _ => throw new ArgumentException($"unknown VM selector '{parts[1]}'", nameof(name)),
        };
        return new PowerAwareConsolidationPlanner(detector, selector);
    }
}
