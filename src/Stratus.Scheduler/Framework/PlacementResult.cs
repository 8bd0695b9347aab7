using System.Collections.Immutable;
using Stratus.Core.Ids;

namespace Stratus.Scheduler.Framework;

/// <summary>How many hosts a filter removed, for the decision trace.</summary>
public sealed record FilterStep(string Filter, int Before, int Removed);

/// <summary>A scored candidate in the decision trace.</summary>
public sealed record ScoredHost(HostId Host, string Name, double Score);

/// <summary>Why a decision was made: what each filter removed and the best candidates.</summary>
public sealed record DecisionTrace(string Profile, int HostsConsidered, ImmutableArray<FilterStep> Filters, ImmutableArray<ScoredHost> Top, int SampleSize);

/// <summary>The typed outcome of a placement decision.</summary>
public abstract record PlacementResult(DecisionTrace Trace);

/// <summary>Placed on <paramref name="Host"/>, whose generation was <paramref name="Generation"/> in the snapshot.</summary>
public sealed record Placed(HostId Host, long Generation, DecisionTrace Trace) : PlacementResult(Trace);

/// <summary>No host fits now, but one might later (capacity frees up). Reasons are for people.</summary>
public sealed record Unschedulable(ImmutableArray<string> Reasons, DecisionTrace Trace) : PlacementResult(Trace);

/// <summary>No host can ever fit as asked (e.g. larger than any host); retrying will not help.</summary>
public sealed record UnschedulableAndUnresolvable(ImmutableArray<string> Reasons, DecisionTrace Trace) : PlacementResult(Trace);
