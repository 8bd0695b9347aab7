using System.Collections.Immutable;
using Stratus.Core.Ids;

namespace Stratus.Scheduler.Framework;

/// <summary>How many hosts a filter removed, for the decision trace.</summary>
public sealed record FilterStep(string Filter, int Before, int Removed);

/// <summary>A scored candidate in the decision trace.</summary>
public sealed record ScoredHost(HostId Host, string Name, double Score);

/// <summary>Why a decision was made: what each filter removed and the best candidates.</summary>
/// <param name="HostsConsidered">Hosts the filters examined (all of them unless sampling stopped the scan early).</param>
/// <param name="Filters">Per active filter, in order: hosts that reached it and hosts it removed.</param>
/// <param name="Top">The best candidates, best first, with their weighted scores.</param>
/// <param name="SampleSize">Feasible hosts that were scored.</param>
public sealed record DecisionTrace(string Profile, int HostsConsidered, ImmutableArray<FilterStep> Filters, ImmutableArray<ScoredHost> Top, int SampleSize)
{
    /// <summary>Hosts in the snapshot.</summary>
    public int FleetSize { get; init; }

    /// <summary>The profile's sampling limit: score at most this many feasible hosts (0 = all).</summary>
    public int SampleLimit { get; init; }
}

/// <summary>The typed outcome of a placement decision.</summary>
public abstract record PlacementResult(DecisionTrace Trace);

/// <summary>Placed on <paramref name="Host"/>, whose generation was <paramref name="Generation"/> in the snapshot.</summary>
public sealed record Placed(HostId Host, long Generation, DecisionTrace Trace) : PlacementResult(Trace);

/// <summary>No host fits now, but one might later (capacity frees up). Reasons are for people.</summary>
public sealed record Unschedulable(ImmutableArray<string> Reasons, DecisionTrace Trace) : PlacementResult(Trace);

/// <summary>No host can ever fit as asked (e.g. larger than any host); retrying will not help.</summary>
public sealed record UnschedulableAndUnresolvable(ImmutableArray<string> Reasons, DecisionTrace Trace) : PlacementResult(Trace);
