using Stratus.Scheduler.Batch;
using Stratus.Scheduler.Claims;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Tests.Batch;

public class BatchPlacerTests
{
    private static readonly FrameworkPlacementEngine Engine = new(Profiles.Profiles.Get("spread"));

    private static BatchPlacementRequest AntiAffinityBatch(int n, bool allOrNothing)
    {
        var g = ServerGroupSnapshot.Empty("g", ServerGroupPolicy.AntiAffinity);
        return new BatchPlacementRequest([.. Enumerable.Range(0, n).Select(i => Fleet.Ask(1, 1, vm: i) with { Group = g })], allOrNothing);
    }

    [Fact]
    public void Place_AntiAffinityBatchOfThreeOnThreeHosts_UsesDistinctHosts()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1), Fleet.Host(2));

        var r = BatchPlacer.Place(Engine, AntiAffinityBatch(3, true), snap);

        Assert.True(r.Complete);
        Assert.Equal(3, r.Results.OfType<Placed>().Select(p => p.Host).Distinct().Count());
        Assert.Equal(3, r.Claims.Length);
        Assert.All(r.Claims, c => Assert.Single(c.Instances));
    }

    [Fact]
    public void Place_AntiAffinityBatchOfFourOnThreeHosts_AllOrNothingRefusesWithReason()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1), Fleet.Host(2));

        var r = BatchPlacer.Place(Engine, AntiAffinityBatch(4, true), snap);

        Assert.False(r.Complete);
        Assert.Empty(r.Claims);
        Assert.Equal("instance 4 of 4: anti-affinity group g: 3 of 3 hosts already hold a member", r.Reasons[0]);
        Assert.Contains("none is placed", r.Reasons[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Place_NotAllOrNothing_PlacesWhatFits()
    {
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1), Fleet.Host(2));

        var r = BatchPlacer.Place(Engine, AntiAffinityBatch(4, false), snap);

        Assert.False(r.Complete);
        Assert.Equal(3, r.Claims.Length);
        Assert.IsType<Unschedulable>(r.Results[3]);
    }

    [Fact]
    public void Place_BatchRespectsCapacityAmongItsOwnMembers()
    {
        // Two hosts of 16 vCPUs: six 5-vCPU instances fit (3 per host), a seventh does not.
        var snap = Fleet.Of(Fleet.Host(0), Fleet.Host(1));
        var batch = new BatchPlacementRequest([.. Enumerable.Range(0, 7).Select(i => Fleet.Ask(5, 1, vm: i))], AllOrNothing: true);

        var r = BatchPlacer.Place(Engine, batch, snap);

        Assert.False(r.Complete);
        Assert.Equal(6, r.Results.Count(x => x is Placed));
        Assert.StartsWith("instance 7 of 7: vcpu: largest free 1 vCPU, asked 5 vCPU", r.Reasons[0], StringComparison.Ordinal);
    }

    [Fact]
    public void TryClaimBatch_CommitsAllHostsAtOnce_AndStaleBatchConflicts()
    {
        var ledger = new ClaimLedger([Fleet.Host(0), Fleet.Host(1), Fleet.Host(2)]);
        var batch = AntiAffinityBatch(3, true);
        var first = BatchPlacer.Place(Engine, batch, ledger.CopySnapshot());
        var stale = BatchPlacer.Place(Engine, batch, ledger.CopySnapshot());

        Assert.Equal(ClaimOutcome.Claimed, ledger.TryClaimBatch(batch, first));
        Assert.NotEqual(ClaimOutcome.Claimed, ledger.TryClaimBatch(batch, stale));
        Assert.Equal(3, ledger.Group("g")!.MembersPerHost.Count);
        Assert.Empty(ledger.Violations());
    }
}
