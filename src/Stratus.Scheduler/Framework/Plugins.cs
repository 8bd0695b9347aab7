namespace Stratus.Scheduler.Framework;

/// <summary>
/// A scheduling plugin, selected by <see cref="Name"/> in a profile. Plugins are stateless and
/// thread-safe; per-request data lives in the <see cref="CycleState"/> they are handed. They read
/// only the snapshot and request they are given, never live state.
/// </summary>
public interface IPlugin
{
    /// <summary>Stable name, shown in decision traces (e.g. <c>ResourceFitFilter</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Called once per request before any host is examined. Returns false when the plugin has
    /// nothing to check for this request (no zone asked, no group…), so the engine skips it.
    /// May precompute per-request data into <paramref name="state"/>.
    /// </summary>
    bool Prepare(CycleState state);
}

/// <summary>Why a filter removed hosts, for people.</summary>
/// <param name="Reason">One actionable sentence, e.g. "memory: largest free 2 GiB, asked 4 GiB".</param>
/// <param name="Unresolvable">True when no change of load can help (e.g. larger than any host, no host has the trait).</param>
public readonly record struct FilterExplanation(string Reason, bool Unresolvable);

/// <summary>A hard constraint: a host either passes or is removed.</summary>
public interface IFilterPlugin : IPlugin
{
    /// <summary>True when <paramref name="host"/> may receive the request. Hot path: no allocation.</summary>
    bool Filter(CycleState state, HostSnapshot host);

    /// <summary>
    /// Explains why this filter removed hosts, given every host that reached it (at least one of
    /// them was removed). Called only when a request cannot be placed, so it may allocate.
    /// </summary>
    FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached);
}

/// <summary>
/// A soft preference. Scores are in 0..1 after <see cref="Normalize"/>; the profile multiplies them
/// by a signed weight. For resource scorers a higher score means more room left, so a positive
/// weight spreads and a negative weight packs (Nova's weigher convention).
/// </summary>
public interface IScorePlugin : IPlugin
{
    /// <summary>True when raw scores need <see cref="Normalize"/> to reach 0..1; false when already in 0..1.</summary>
    bool NeedsNormalize { get; }

    /// <summary>Raw score of placing the request on <paramref name="host"/>. Hot path: no allocation.</summary>
    double Score(CycleState state, HostSnapshot host);

    /// <summary>Maps the raw scores of all scored hosts into 0..1 in place.</summary>
    void Normalize(CycleState state, Span<double> scores);
}

/// <summary>
/// Reserves what the chosen host needs before the decision is returned (an assumed claim, a
/// cache update). <see cref="Unreserve"/> undoes it and is idempotent: when any reserve plugin
/// refuses a host, the engine calls Unreserve on every reserve plugin (in reverse order) and tries
/// the next-best host.
/// </summary>
public interface IReservePlugin : IPlugin
{
    /// <summary>Reserves on <paramref name="host"/>; false refuses the host (the engine then tries the next-best one).</summary>
    bool Reserve(CycleState state, HostSnapshot host);

    /// <summary>Undoes <see cref="Reserve"/>. Idempotent; safe to call for a host never reserved.</summary>
    void Unreserve(CycleState state, HostSnapshot host);
}
