namespace Stratus.Scheduler.Framework;

/// <summary>Places servers on hosts. Pure: reads only the snapshot it is given; no I/O, clock or global randomness.</summary>
public interface IPlacementEngine
{
    PlacementResult Place(PlacementRequest request, ClusterSnapshot snapshot);
}

/// <summary>
/// The first scheduler, kept for callers that name it: the <c>spread</c> profile (exact filters,
/// least-allocated and balanced scoring of a sample of feasible hosts).
/// </summary>
public sealed class SpreadPlacementEngine : IPlacementEngine
{
    private readonly FrameworkPlacementEngine _engine = new(Profiles.Profiles.Spread());

    public PlacementResult Place(PlacementRequest request, ClusterSnapshot snapshot) => _engine.Place(request, snapshot);
}
