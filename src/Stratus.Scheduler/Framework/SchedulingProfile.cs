using System.Collections.Immutable;

namespace Stratus.Scheduler.Framework;

/// <summary>A scorer with its signed weight: positive prefers high scores (spreads, for resource scorers), negative prefers low ones (packs).</summary>
public readonly record struct WeightedScorer(IScorePlugin Scorer, double Weight);

/// <summary>
/// A named scheduling profile: the filters in the order they run, the weighted scorers, the
/// reserve plugins, and the sampling limit.
/// </summary>
/// <param name="SampleSize">
/// Score at most this many feasible hosts (0 = all). The scan starts at a per-request offset
/// and stops once this many hosts passed every filter (Kubernetes' percentageOfNodesToScore, as
/// an absolute count so the cost of a decision does not grow with the fleet). Filters stay exact:
/// every chosen host passed all of them, and a request is refused only after a full scan.
/// </param>
public sealed record SchedulingProfile(
    string Name,
    ImmutableArray<IFilterPlugin> Filters,
    ImmutableArray<WeightedScorer> Scorers,
    int SampleSize = 0)
{
    /// <summary>Plugins that reserve the chosen host before the decision is returned; none by default.</summary>
    public ImmutableArray<IReservePlugin> Reservers { get; init; } = [];

    /// <summary>How many top candidates the decision trace lists (at most 32).</summary>
    public int TraceTop { get; init; } = 5;
}
