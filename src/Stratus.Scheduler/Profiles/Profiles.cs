using System.Collections.Immutable;
using Stratus.Scheduler.Framework;
using Stratus.Scheduler.Plugins;

namespace Stratus.Scheduler.Profiles;

/// <summary>
/// The built-in scheduling profiles, selected by name:
/// <list type="bullet">
/// <item><c>spread</c>: least allocated (+1), balanced (+0.5); scores a sample of 256 feasible hosts.</item>
/// <item><c>pack</c>: busy hosts first (power state, +2), bottleneck best fit (most allocated, −1), alignment (+0.25), larger hosts first (+1); scores every feasible host.</item>
/// <item><c>energy</c>: like pack, with a strong preference for hosts already on (+4), and standby hosts allowed as a last resort.</item>
/// </list>
/// Every profile runs the same exact filters and honours soft group policies (weight 10).
/// </summary>
public static class Profiles
{
    /// <summary>The profile names, for validation and help text.</summary>
    public static readonly ImmutableArray<string> Names = ["spread", "pack", "energy"];

    /// <summary>Default sampling limit of the <c>spread</c> profile (feasible hosts scored per decision).</summary>
    public const int SpreadSampleSize = 256;

    /// <summary>The profile named <paramref name="name"/>; throws <see cref="ArgumentException"/> for an unknown name.</summary>
    public static SchedulingProfile Get(string name) => TryGet(name, out var p)
        ? p
        : throw new ArgumentException($"unknown scheduling profile '{name}' (known: {string.Join(", ", Names)})", nameof(name));

    /// <summary>The profile named <paramref name="name"/> (ordinal, case-insensitive), or false.</summary>
    public static bool TryGet(string name, out SchedulingProfile profile)
    {
        profile = name?.ToLowerInvariant() switch
        {
            "spread" => Spread(),
            "pack" => Pack(),
            "energy" => Energy(),
            _ => null!,
        };
        return profile is not null;
    }

    /// <summary>The spread profile with another sampling limit (0 = score every feasible host).</summary>
    public static SchedulingProfile Spread(int sampleSize = SpreadSampleSize) => new(
        "spread",
        Filters(allowStandby: false),
        [
            new(new LeastAllocatedScorer(), 1.0),
            new(new BalancedResourceScorer(), 0.5),
            .. GroupScorers(),
        ],
        sampleSize);

    /// <summary>The pack profile (no sampling by default: packing quality needs the full picture).</summary>
    public static SchedulingProfile Pack(int sampleSize = 0) => new(
        "pack",
        Filters(allowStandby: false),
        [
            new(new PowerStateScorer(), 5.0),
            new(new MostAllocatedScorer(), -1.0),
            new(new DotProductScorer(), 0.25),
            new(new HostSizeScorer(), 2.0),
            .. GroupScorers(),
        ],
        sampleSize);

    /// <summary>The energy profile: pack onto hosts already on; wake standby hosts only when nothing else fits.</summary>
    public static SchedulingProfile Energy(int sampleSize = 0) => new(
        "energy",
        Filters(allowStandby: true),
        [
            new(new PowerStateScorer(), 4.0),
            new(new MostAllocatedScorer(), -1.0),
            new(new DotProductScorer(), 0.25),
            .. GroupScorers(),
        ],
        sampleSize);

    // Cheap, selective, request-specific filters first; each is skipped when the request does not use it.
    private static ImmutableArray<IFilterPlugin> Filters(bool allowStandby) =>
    [
        new HostStateFilter(allowStandby),
        new AvailabilityZoneFilter(),
        new TraitsFilter(),
        new AggregateMetadataFilter(),
        new ServerGroupAffinityFilter(),
        new ServerGroupAntiAffinityFilter(),
        new ResourceFitFilter(),
    ];

    private static ImmutableArray<WeightedScorer> GroupScorers() =>
    [
        new(new ServerGroupSoftAffinityScorer(), 10.0),
        new(new ServerGroupSoftAntiAffinityScorer(), 10.0),
    ];
}
