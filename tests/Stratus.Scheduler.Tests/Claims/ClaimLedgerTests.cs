using CsCheck;
using Stratus.Core.Compute;
using Stratus.Core.Resources;
using Stratus.Scheduler.Claims;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Tests.Claims;

public class ClaimLedgerTests
{
    [Fact]
    public void TryClaim_StaleGeneration_ConflictsAndChangesNothing()
    {
        var ledger = new ClaimLedger([Fleet.Host(0)]);
        var req = Fleet.Ask(4, 4);
        var stale = new Placed(Fleet.Id(0), 9, new DecisionTrace("t", 1, [], [], 1));

        Assert.Equal(ClaimOutcome.HostConflict, ledger.TryClaim(req, stale));
        Assert.Equal(ResourceVector.Zero, ledger.CopySnapshot().Hosts[0].Used);
        Assert.Equal(1, ledger.Conflicts);
    }

    [Fact]
    public void TryClaim_ThenRelease_RestoresUsageAndBumpsGeneration()
    {
        var ledger = new ClaimLedger([Fleet.Host(0)]);
        var req = Fleet.Ask(4, 4);
        var placed = new Placed(Fleet.Id(0), 10, new DecisionTrace("t", 1, [], [], 1));

        Assert.Equal(ClaimOutcome.Claimed, ledger.TryClaim(req, placed));
        Assert.Equal(ClaimOutcome.HostConflict, ledger.TryClaim(req, placed));
        ledger.Release(Fleet.Id(0), req.Demand);

        var h = ledger.CopySnapshot().Hosts[0];
        Assert.Equal(ResourceVector.Zero, h.Used);
        Assert.Equal(12, h.Generation);
    }

    [Fact]
    public void PlaceAndClaim_AffinityRaceOnEmptyGroup_SecondPlacerReplansOntoFirstHost()
    {
        var ledger = new ClaimLedger([Fleet.Host(0), Fleet.Host(1)]);
        var engine = new FrameworkPlacementEngine(Profiles.Profiles.Get("spread"));
        var group = ledger.EnsureGroup("db", ServerGroupPolicy.Affinity);
        // Both decide on the same empty group; the second decision is made before the first claim.
        var a = Fleet.Ask(1, 1, vm: 1) with { Group = group };
        var b = Fleet.Ask(1, 1, vm: 2) with { Group = group };
        var pa = Assert.IsType<Placed>(engine.Place(a, ledger.LiveSnapshot));
        var pb = Assert.IsType<Placed>(engine.Place(b, ledger.LiveSnapshot));
        Assert.Equal(ClaimOutcome.Claimed, ledger.TryClaim(a, pa));

        var second = ledger.TryClaim(b, pb);
        var retried = ClaimingPlacer.PlaceAndClaim(engine, ledger, b);

        Assert.NotEqual(ClaimOutcome.Claimed, second);
        Assert.True(retried.Claimed);
        Assert.Equal(pa.Host, Assert.IsType<Placed>(retried.Result).Host);
        Assert.Empty(ledger.Violations());
    }

    private sealed record Scenario(int Hosts, int HostVcpus, (int Vcpus, int Gib, int Group, int Policy)[] Requests);

    [Fact]
    public void ParallelPlacers_NeverOvercommitOrBreakGroupRules()
    {
        var gen =
            from hosts in Gen.Int[2, 12]
            from vcpus in Gen.Int[4, 16]
            from requests in Gen.Select(Gen.Int[1, 6], Gen.Int[1, 24], Gen.Int[0, 4], Gen.Int[0, 3]).Array[20, 120]
            select new Scenario(hosts, vcpus, requests);
        var policies = new[] { ServerGroupPolicy.AntiAffinity, ServerGroupPolicy.Affinity, ServerGroupPolicy.SoftAntiAffinity, ServerGroupPolicy.SoftAffinity };

        gen.Sample(s =>
        {
            var ledger = new ClaimLedger(Enumerable.Range(0, s.Hosts).Select(i => Fleet.Host(i, vcpus: s.HostVcpus, memGib: 32)));
            var engine = new FrameworkPlacementEngine(Profiles.Profiles.Spread(sampleSize: 3));
            // Group k always has the same policy, so concurrent members agree on the rule.
            var groups = Enumerable.Range(0, 5).Select(k => ServerGroupSnapshot.Empty($"g{k}", policies[k % 4])).ToArray();
            var claimed = 0;
            Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, p =>
            {
                for (var i = p; i < s.Requests.Length; i += 4)
                {
                    var (cpu, gib, g, usesGroup) = s.Requests[i];
                    var req = new PlacementRequest(Fleet.Vm(i), ResourceVector.Of(cpu, gib * 1024L, 0)) { Group = usesGroup > 0 ? groups[g] : null };
                    if (ClaimingPlacer.PlaceAndClaim(engine, ledger, req, maxRetries: 64).Claimed)
                    {
                        Interlocked.Increment(ref claimed);
                    }
                }
            });
            var final = ledger.CopySnapshot();
            return ledger.Violations().IsEmpty
                && final.Hosts.Sum(h => h.InstanceCount) == claimed
                && final.Hosts.All(h => h.State == HostState.Up);
        }, iter: 60);
    }
}
