using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Mean free fraction over the counted dimensions after placing the request (Kubernetes'
/// LeastAllocated, Nova's RAM/CPU weighers). Positive weight spreads; negative packs by the mean.
/// </summary>
public sealed class LeastAllocatedScorer : IScorePlugin
{
    public string Name => "LeastAllocatedScorer";

    public bool NeedsNormalize => false;

    public bool Prepare(CycleState state) => true;

    public double Score(CycleState state, HostSnapshot host)
    {
        // At most four dimensions: a stack buffer keeps the per-host scoring allocation-free.
        Span<double> free = stackalloc double[4];
        var n = ResourceShares.FreeAfter(state, host, free);
        var sum = 0.0;
        for (var i = 0; i < n; i++)
        {
            sum += free[i];
        }
        return sum / n;
    }

    public void Normalize(CycleState state, Span<double> scores)
    {
    }
}
