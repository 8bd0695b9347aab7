using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Free fraction of the host's most-allocated dimension after placing the request (its
/// bottleneck headroom). Under the signed-weight convention a negative weight packs: it prefers
/// the host this request leaves fullest in its tightest dimension (best fit on the bottleneck).
/// </summary>
public sealed class MostAllocatedScorer : IScorePlugin
{
    public string Name => "MostAllocatedScorer";

    public bool NeedsNormalize => false;

    public bool Prepare(CycleState state) => true;

    public double Score(CycleState state, HostSnapshot host)
    {
        // At most four dimensions: a stack buffer keeps the per-host scoring allocation-free.
        Span<double> free = stackalloc double[4];
        var n = ResourceShares.FreeAfter(state, host, free);
        var min = 1.0;
        for (var i = 0; i < n; i++)
        {
            min = Math.Min(min, free[i]);
        }
        return min;
    }

    public void Normalize(CycleState state, Span<double> scores)
    {
    }
}
