using System.Collections.Frozen;
using System.Collections.Immutable;
using Stratus.Core.Compute;
using Stratus.Scheduler.Framework;
using Stratus.Scheduler.Plugins;
using Stratus.Scheduler.Profiles;

namespace Stratus.Scheduler.Tests.Framework;

public class FrameworkPlacementEngineTests
{
    private static readonly FrameworkPlacementEngine SpreadEngine = new(Profiles.Profiles.Get("spread"));
    private static readonly FrameworkPlacementEngine PackEngine = new(Profiles.Profiles.Get("pack"));

    [Fact]
    public void Place_SpreadProfile_PicksLeastAllocatedHost()
    {
        var snap = Fleet.Of(Fleet.Host(0, usedVcpus: 8, usedGib: 32), Fleet.Host(1, usedVcpus: 2, usedGib: 8), Fleet.Host(2, usedVcpus: 12, usedGib: 40));

        var r = Assert.IsType<Placed>(SpreadEngine.Place(Fleet.Ask(2, 4), snap));

        Assert.Equal(Fleet.Id(1), r.Host);
        Assert.Equal(11, r.Generation);
        Assert.Equal("spread", r.Trace.Profile);
        Assert.Equal(Fleet.Id(1), r.Trace.Top[0].Host);
        Assert.Equal(3, r.Trace.Top.Length);
        Assert.True(r.Trace.Top[0].Score >= r.Trace.Top[1].Score);
    }

    [Fact]
    public void Place_PackProfile_PicksFullestHostThatFits()
    {
        var snap = Fleet.Of(Fleet.Host(0, usedVcpus: 8, usedGib: 32), Fleet.Host(1, usedVcpus: 2, usedGib: 8), Fleet.Host(2, usedVcpus: 12, usedGib: 40), Fleet.Host(3));

        var r = Assert.IsType<Placed>(PackEngine.Place(Fleet.Ask(2, 4), snap));

        Assert.Equal(Fleet.Id(2), r.Host);
    }

    [Fact]
    public void Place_PackProfileOnMixedEmptyFleet_OpensLargestHost()
    {
        var snap = Fleet.Of(Fleet.Host(0, vcpus: 8, memGib: 32), Fleet.Host(1, vcpus: 64, memGib: 256), Fleet.Host(2, vcpus: 16, memGib: 64));

        var r = Assert.IsType<Placed>(PackEngine.Place(Fleet.Ask(2, 4), snap));

        Assert.Equal(Fleet.Id(1), r.Host);
    }

    [Fact]
    public void Place_NotEnoughFreeMemory_ReasonNamesLargestFreeAndAsk()
    {
        var snap = Fleet.Of(Fleet.Host(0, memGib: 64, usedGib: 62), Fleet.Host(1, memGib: 64, usedGib: 63));

        var r = Assert.IsType<Unschedulable>(SpreadEngine.Place(Fleet.Ask(1, 4), snap));

        Assert.Equal("memory: largest free 2 GiB, asked 4 GiB", Assert.Single(r.Reasons));
        var fit = Assert.Single(r.Trace.Filters, f => f.Filter == "ResourceFitFilter");
        Assert.Equal(2, fit.Removed);
    }

    [Fact]
    public void Place_LargerThanAnyHost_IsUnresolvable()
    {
        var snap = Fleet.Of(Fleet.Host(0, vcpus: 16), Fleet.Host(1, vcpus: 16));

        var r = Assert.IsType<UnschedulableAndUnresolvable>(SpreadEngine.Place(Fleet.Ask(32, 4), snap));

        Assert.Contains("vcpu: largest free 16 vCPU, asked 32 vCPU", r.Reasons[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Place_NoHosts_IsUnresolvable()
    {
        var r = Assert.IsType<UnschedulableAndUnresolvable>(new SpreadPlacementEngine().Place(Fleet.Ask(1, 1), Fleet.Of()));

        Assert.Equal("no hosts are registered", Assert.Single(r.Reasons));
    }

    [Fact]
    public void Place_AntiAffinityEveryHostHoldsMember_ReasonCountsHosts()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1), Fleet.Host(2));
        var req = Fleet.Ask(1, 1) with { Group = Fleet.Group("g", ServerGroupPolicy.AntiAffinity, Fleet.Id(0), Fleet.Id(1), Fleet.Id(2)) };

        var r = Assert.IsType<Unschedulable>(SpreadEngine.Place(req, snap));

        Assert.Equal("anti-affinity group g: 3 of 3 hosts already hold a member", Assert.Single(r.Reasons));
    }

    [Fact]
    public void Place_AntiAffinityWithMaxTwoPerHost_AllowsSecondMember()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1, usedVcpus: 15));
        var group = Fleet.Group("g", ServerGroupPolicy.AntiAffinity, Fleet.Id(0)) with { MaxPerHost = 2 };

        var r = Assert.IsType<Placed>(SpreadEngine.Place(Fleet.Ask(2, 1) with { Group = group }, snap));

        Assert.Equal(Fleet.Id(0), r.Host);
    }

    [Fact]
    public void Place_AffinityGroupWithMember_PicksMembersHostOnly()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1, usedVcpus: 10), Fleet.Host(2));
        var req = Fleet.Ask(1, 1) with { Group = Fleet.Group("db", ServerGroupPolicy.Affinity, Fleet.Id(1)) };

        var r = Assert.IsType<Placed>(SpreadEngine.Place(req, snap));

        Assert.Equal(Fleet.Id(1), r.Host);
        Assert.Equal(2, r.Trace.Filters.Single(f => f.Filter == "ServerGroupAffinityFilter").Removed);
    }

    [Fact]
    public void Place_AffinityHostFull_ExplainsWhereMembersRun()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1, usedVcpus: 16));
        var req = Fleet.Ask(1, 1) with { Group = Fleet.Group("db", ServerGroupPolicy.Affinity, Fleet.Id(1)) };

        var r = Assert.IsType<Unschedulable>(SpreadEngine.Place(req, snap));

        Assert.Contains(r.Reasons, s => s.StartsWith("affinity group db: its members run on host-1", StringComparison.Ordinal));
        Assert.Contains(r.Reasons, s => s.StartsWith("vcpu: largest free 0 vCPU", StringComparison.Ordinal));
    }

    [Fact]
    public void Place_SoftAntiAffinity_PrefersHostWithoutMember()
    {
        // host-0 is emptier (spread would choose it) but holds a member.
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1, usedVcpus: 8, usedGib: 32));
        var req = Fleet.Ask(1, 1) with { Group = Fleet.Group("web", ServerGroupPolicy.SoftAntiAffinity, Fleet.Id(0)) };

        var r = Assert.IsType<Placed>(SpreadEngine.Place(req, snap));

        Assert.Equal(Fleet.Id(1), r.Host);
    }

    [Fact]
    public void Place_SoftAffinity_PrefersHostWithMember()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1, usedVcpus: 8, usedGib: 32));
        var req = Fleet.Ask(1, 1) with { Group = Fleet.Group("web", ServerGroupPolicy.SoftAffinity, Fleet.Id(1)) };

        var r = Assert.IsType<Placed>(SpreadEngine.Place(req, snap));

        Assert.Equal(Fleet.Id(1), r.Host);
    }

    [Fact]
    public void Place_ZoneTraitsAndAggregates_FilterExactlyAndTraceCounts()
    {
        var ssd = ImmutableDictionary<string, string>.Empty.Add("disk", "ssd");
        var hosts = new[]
        {
            Fleet.Host(0, zone: "az2"),
            Fleet.Host(1) with { Traits = FrozenSet.Create(StringComparer.Ordinal, "AVX2") },
            Fleet.Host(2) with { Traits = FrozenSet.Create(StringComparer.Ordinal, "AVX2", "GPU"), Aggregates = [new AggregateSnapshot("fast", ssd)] },
            Fleet.Host(3) with { Traits = FrozenSet.Create(StringComparer.Ordinal, "AVX2"), Aggregates = [new AggregateSnapshot("fast", ssd)] },
        };
        var req = Fleet.Ask(1, 1) with
        {
            Zone = "az1",
            RequiredTraits = ["AVX2"],
            ForbiddenTraits = ["GPU"],
            AggregateMetadata = ssd,
        };

        var r = Assert.IsType<Placed>(SpreadEngine.Place(req, Fleet.Of(hosts)));

        Assert.Equal(Fleet.Id(3), r.Host);
        var steps = r.Trace.Filters.ToDictionary(f => f.Filter, f => f.Removed);
        Assert.Equal(1, steps["AvailabilityZoneFilter"]);
        Assert.Equal(1, steps["TraitsFilter"]);
        Assert.Equal(1, steps["AggregateMetadataFilter"]);
        Assert.Equal(0, steps["ResourceFitFilter"]);
    }

    [Fact]
    public void Place_MissingTrait_IsUnresolvableWithReason()
    {
        var req = Fleet.Ask(1, 1) with { RequiredTraits = ["CUSTOM_FPGA"] };

        var r = Assert.IsType<UnschedulableAndUnresolvable>(SpreadEngine.Place(req, Fleet.Of(Fleet.Host(0), Fleet.Host(1))));

        Assert.Equal("traits: 2 of 2 hosts lack required trait CUSTOM_FPGA", Assert.Single(r.Reasons));
    }

    [Fact]
    public void Place_HostsNotUp_ReasonListsStates()
    {
        var snap = Fleet.Of(Fleet.Host(0, state: HostState.Down), Fleet.Host(1, state: HostState.Maintenance), Fleet.Host(2, state: HostState.Down));

        var r = Assert.IsType<Unschedulable>(SpreadEngine.Place(Fleet.Ask(1, 1), snap));

        Assert.Equal("host state: 3 of 3 hosts cannot take servers (2 down, 1 maintenance)", Assert.Single(r.Reasons));
    }

    [Fact]
    public void Place_SampleSmallerThanFleet_ScoresOnlySampleButFiltersStayExact()
    {
        // Ten hosts; only the last one fits. A sample of 2 must still find it, and score just it.
        var hosts = Enumerable.Range(0, 10).Select(i => Fleet.Host(i, usedVcpus: i == 9 ? 0 : 16)).ToArray();
        var engine = new FrameworkPlacementEngine(Profiles.Profiles.Spread(sampleSize: 2));

        var r = Assert.IsType<Placed>(engine.Place(Fleet.Ask(4, 4, vm: 3), Fleet.Of(hosts)));

        Assert.Equal(Fleet.Id(9), r.Host);
        Assert.Equal(1, r.Trace.SampleSize);
        Assert.Equal(2, r.Trace.SampleLimit);
        Assert.Equal(10, r.Trace.HostsConsidered);
    }

    [Fact]
    public void Place_SampleOfManyFeasible_StopsScanAtSampleSize()
    {
        var hosts = Enumerable.Range(0, 100).Select(i => Fleet.Host(i)).ToArray();
        var engine = new FrameworkPlacementEngine(Profiles.Profiles.Spread(sampleSize: 8));

        var r = Assert.IsType<Placed>(engine.Place(Fleet.Ask(1, 1, vm: 42), Fleet.Of(hosts)));

        Assert.Equal(8, r.Trace.SampleSize);
        Assert.Equal(8, r.Trace.HostsConsidered);
        Assert.Equal(100, r.Trace.FleetSize);
    }

    [Fact]
    public void Place_EnergyProfile_PrefersPoweredOnHostAndWakesStandbyOnlyWhenNeeded()
    {
        var energy = new FrameworkPlacementEngine(Profiles.Profiles.Get("energy"));
        var off = Fleet.Host(0, vcpus: 64, memGib: 256, state: HostState.Standby) with { PoweredOn = false };
        var on = Fleet.Host(1, usedVcpus: 4, usedGib: 8);

        var first = Assert.IsType<Placed>(energy.Place(Fleet.Ask(2, 4), Fleet.Of(off, on)));
        var second = Assert.IsType<Placed>(energy.Place(Fleet.Ask(14, 4), Fleet.Of(off, on)));

        Assert.Equal(Fleet.Id(1), first.Host);
        Assert.Equal(Fleet.Id(0), second.Host);
    }

    [Fact]
    public void Place_ReservePluginRefusesBest_FallsBackToNextBest()
    {
        var refuse = new RefuseHostReserve(Fleet.Id(1));
        var profile = Profiles.Profiles.Spread() with { Reservers = [refuse] };
        var snap = Fleet.Of(Fleet.Host(0, usedVcpus: 8), Fleet.Host(1));

        var r = Assert.IsType<Placed>(new FrameworkPlacementEngine(profile).Place(Fleet.Ask(1, 1), snap));

        Assert.Equal(Fleet.Id(0), r.Host);
        Assert.Equal(1, refuse.Unreserved);
    }

    [Fact]
    public void Profiles_Get_UnknownName_Throws()
    {
        Assert.Throws<ArgumentException>(() => Profiles.Profiles.Get("fastest"));
        Assert.All(Profiles.Profiles.Names, n => Assert.Equal(n, Profiles.Profiles.Get(n).Name));
    }

    private sealed class RefuseHostReserve(Core.Ids.HostId refused) : IReservePlugin
    {
        public int Unreserved { get; private set; }

        public string Name => "RefuseHostReserve";

        public bool Prepare(CycleState state) => true;

        public bool Reserve(CycleState state, HostSnapshot host) => host.Id != refused;

        public void Unreserve(CycleState state, HostSnapshot host) => Unreserved++;
    }
}
