using System.Collections.Immutable;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Scheduler.Framework;

/// <summary>An immutable point-in-time view of one host, as placement sees it.</summary>
/// <param name="Capacity">Allocatable capacity: (total − reserved) × allocation ratio.</param>
/// <param name="Used">Sum of allocations on the host when the snapshot was taken.</param>
/// <param name="Generation">The host's generation; a claim compare-and-swaps on it.</param>
public sealed record HostSnapshot(
    HostId Id,
    string Name,
    HostState State,
    ResourceVector Capacity,
    ResourceVector Used,
    long Generation,
    string Zone)
{
    public ResourceVector Free => Capacity - Used;

    public static HostSnapshot From(Host h) => new(h.Id, h.Name, h.State, h.Capacity, h.Used, h.Generation, h.Zone);
}

/// <summary>An immutable view of the fleet. Placement never reads live state, only a snapshot.</summary>
public sealed record ClusterSnapshot(ImmutableArray<HostSnapshot> Hosts)
{
    public static ClusterSnapshot Of(IEnumerable<Host> hosts) => new(hosts.Select(HostSnapshot.From).ToImmutableArray());
}

/// <summary>What one server asks of placement.</summary>
public sealed record PlacementRequest(InstanceId InstanceId, ResourceVector Demand, string? Zone = null);
