using System.Collections.Frozen;
using System.Collections.Immutable;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Scheduler.Framework;

/// <summary>An immutable point-in-time view of one host, as placement sees it.</summary>
/// <param name="Capacity">Allocatable capacity: (total − reserved) × allocation ratio.</param>
/// <param name="Used">Sum of allocations on the host when the snapshot was taken.</param>
/// <param name="Generation">The host's generation; a claim compare-and-swaps on it.</param>
/// <remarks>
/// The optional members (traits, aggregates, power, accelerators, instance count) default to
/// "nothing special", so callers that only know the positional members keep working.
/// </remarks>
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

    /// <summary>Traits the host offers (e.g. <c>HW_CPU_X86_AVX2</c>, <c>CUSTOM_SSD</c>); compared ordinally.</summary>
    public FrozenSet<string> Traits { get; init; } = FrozenSet<string>.Empty;

    /// <summary>The host aggregates this host belongs to, each with its metadata.</summary>
    public ImmutableArray<AggregateSnapshot> Aggregates { get; init; } = [];

    /// <summary>False when the host is powered off (e.g. in standby to save energy); true by default.</summary>
    public bool PoweredOn { get; init; } = true;

    /// <summary>Accelerator (GPU) capacity in thousandths of a device; 0 when the host has none.</summary>
    public long GpuMilliCapacity { get; init; }

    /// <summary>Accelerator (GPU) use in thousandths of a device.</summary>
    public long GpuMilliUsed { get; init; }

    /// <summary>How many instances hold allocations on the host (0 = empty, a candidate for power-down).</summary>
    public int InstanceCount { get; init; }

    public static HostSnapshot From(Host h) => new(h.Id, h.Name, h.State, h.Capacity, h.Used, h.Generation, h.Zone)
    {
        PoweredOn = h.State != HostState.Standby,
    };
}

/// <summary>A host aggregate as placement sees it: a named set of hosts with metadata (and possibly a zone).</summary>
public sealed record AggregateSnapshot(string Name, ImmutableDictionary<string, string> Metadata);

/// <summary>An immutable view of the fleet. Placement never reads live state, only a snapshot.</summary>
public sealed record ClusterSnapshot(ImmutableArray<HostSnapshot> Hosts)
{
    private Dictionary<HostId, int>? _index;

    // A `with` copy may carry other hosts: never copy the cached index.
    private ClusterSnapshot(ClusterSnapshot original) => Hosts = original.Hosts;

    public static ClusterSnapshot Of(IEnumerable<Host> hosts) => new(hosts.Select(HostSnapshot.From).ToImmutableArray());

    /// <summary>Position of host <paramref name="id"/> in <see cref="Hosts"/>, or −1. Built once per snapshot, on first use.</summary>
    public int IndexOf(HostId id)
    {
        var index = _index ?? BuildIndex();
        return index.TryGetValue(id, out var i) ? i : -1;
    }

    private Dictionary<HostId, int> BuildIndex()
    {
        var index = new Dictionary<HostId, int>(Hosts.Length);
        for (var i = 0; i < Hosts.Length; i++)
        {
            index[Hosts[i].Id] = i;
        }
        // A benign race: two threads may both build the (identical) index; one wins.
        Interlocked.CompareExchange(ref _index, index, null);
        return _index!;
    }

    public bool Equals(ClusterSnapshot? other) => other is not null && Hosts.Equals(other.Hosts);

    public override int GetHashCode() => Hosts.GetHashCode();
}

/// <summary>What one server asks of placement.</summary>
/// <remarks>The init-only members are optional constraints; their defaults ask for nothing.</remarks>
public sealed record PlacementRequest(InstanceId InstanceId, ResourceVector Demand, string? Zone = null)
{
    /// <summary>Accelerator (GPU) demand in thousandths of a device; 0 for none.</summary>
    public long GpuMilli { get; init; }

    /// <summary>Traits every candidate host must have.</summary>
    public ImmutableArray<string> RequiredTraits { get; init; } = [];

    /// <summary>Traits no candidate host may have.</summary>
    public ImmutableArray<string> ForbiddenTraits { get; init; } = [];

    /// <summary>Key/value pairs that one of the host's aggregates must carry in its metadata (flavor extra specs).</summary>
    public ImmutableDictionary<string, string> AggregateMetadata { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>The server group the instance joins, with where its members run now; null for none.</summary>
    public ServerGroupSnapshot? Group { get; init; }

    /// <summary>
    /// Which attempt this is (0 first). A re-plan after a lost race passes the attempt number so
    /// the scan starts elsewhere and two placers that collided do not keep choosing the same host.
    /// </summary>
    public int Attempt { get; init; }
}

/// <summary>Server group policies, as in OpenStack Nova.</summary>
public enum ServerGroupPolicy
{
    /// <summary>All members on one host (hard).</summary>
    Affinity,
    /// <summary>At most <see cref="ServerGroupSnapshot.MaxPerHost"/> members per host (hard).</summary>
    AntiAffinity,
    /// <summary>Prefer hosts that already hold members.</summary>
    SoftAffinity,
    /// <summary>Prefer hosts holding fewer members; never more than <see cref="ServerGroupSnapshot.MaxPerHost"/> is not enforced.</summary>
    SoftAntiAffinity,
}

/// <summary>A server group and where its members run, as of the snapshot.</summary>
/// <param name="Name">The group's name (or id), used in reasons.</param>
/// <param name="MaxPerHost">Anti-affinity: most members one host may hold (≥ 1). Ignored by the other policies.</param>
/// <param name="MembersPerHost">Member count per host; hosts with none are absent.</param>
/// <param name="Generation">The group's generation; a claim that adds a member compare-and-swaps on it.</param>
public sealed record ServerGroupSnapshot(
    string Name,
    ServerGroupPolicy Policy,
    int MaxPerHost,
    ImmutableDictionary<HostId, int> MembersPerHost,
    long Generation = 0)
{
    /// <summary>A group with no members yet.</summary>
    public static ServerGroupSnapshot Empty(string name, ServerGroupPolicy policy, int maxPerHost = 1) =>
        new(name, policy, maxPerHost, ImmutableDictionary<HostId, int>.Empty);

    /// <summary>Members on <paramref name="host"/>.</summary>
    public int MembersOn(HostId host) => MembersPerHost.TryGetValue(host, out var n) ? n : 0;

    /// <summary>This group with one more member on <paramref name="host"/> (generation unchanged: the ledger bumps it).</summary>
    public ServerGroupSnapshot WithMember(HostId host) => this with { MembersPerHost = MembersPerHost.SetItem(host, MembersOn(host) + 1) };

    /// <summary>This group with one member fewer on <paramref name="host"/>; idempotent at zero.</summary>
    public ServerGroupSnapshot WithoutMember(HostId host)
    {
        var n = MembersOn(host);
        return n <= 1 ? this with { MembersPerHost = MembersPerHost.Remove(host) } : this with { MembersPerHost = MembersPerHost.SetItem(host, n - 1) };
    }
}
