using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// 1 − standard deviation of the counted dimensions' utilisation after placing the request
/// (Kubernetes' NodeResourcesBalancedAllocation). A positive weight prefers hosts left balanced,
/// so no dimension strands the others.
/// </summary>
public sealed class BalancedResourceScorer : IScorePlugin
{
    public string Name => "BalancedResourceScorer";

    public bool NeedsNormalize => false;

    public bool Prepare(CycleState state) => true;

    public double Score(CycleState state, HostSnapshot host)
    {
        // At most four dimensions: a stack buffer keeps the per-host scoring allocation-free.
        Span<double> free = stackalloc double[4];
        var n = ResourceShares.FreeAfter(state, host, free);
        var mean = 0.0;
        for (var i = 0; i < n; i++)
        {
            mean += free[i];
        }
        mean /= n;
        var variance = 0.0;
        for (var i = 0; i < n; i++)
        {
            variance += (free[i] - mean) * (free[i] - mean);
        }
        return 1 - Math.Sqrt(variance / n);
    }

    public void Normalize(CycleState state, Span<double> scores)
    {
    }
}
