using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;
using Stratus.Scheduler.Plugins;

namespace Stratus.Scheduler.Tests.Plugins;

public class ScorerTests
{
    private static double Score(IScorePlugin scorer, HostSnapshot host, PlacementRequest req)
    {
        var engine = new FrameworkPlacementEngine(new SchedulingProfile("one", [], [new(scorer, 1.0)]));
        var r = Assert.IsType<Placed>(engine.Place(req, Fleet.Of(host)));
        return r.Trace.Top[0].Score;
    }

    [Fact]
    public void LeastAllocated_HalfFullAfterPlacement_ScoresHalf()
    {
        var s = Score(new LeastAllocatedScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 6, usedGib: 28), Fleet.Ask(2, 4));

        Assert.Equal(0.5, s, 6);
    }

    [Fact]
    public void MostAllocated_ScoresBottleneckHeadroom()
    {
        // After placement: CPU 12/16 used (0.25 free), memory 16/64 used (0.75 free).
        var s = Score(new MostAllocatedScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 10, usedGib: 12), Fleet.Ask(2, 4));

        Assert.Equal(0.25, s, 6);
    }

    [Fact]
    public void BalancedResource_EqualUtilisation_ScoresOne_UnequalScoresLess()
    {
        var balanced = Score(new BalancedResourceScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 6, usedGib: 28), Fleet.Ask(2, 4));
        var skewed = Score(new BalancedResourceScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 12, usedGib: 4), Fleet.Ask(2, 4));

        Assert.Equal(1.0, balanced, 6);
        Assert.True(skewed < 0.7);
    }

    [Fact]
    public void DotProduct_AlignedFreeShape_ScoresHigherThanMisaligned()
    {
        var cpuHeavy = Fleet.Ask(8, 4);
        var freeCpu = Score(new DotProductScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 0, usedGib: 60), cpuHeavy);
        var freeMem = Score(new DotProductScorer(), Fleet.Host(0, vcpus: 16, memGib: 64, usedVcpus: 8, usedGib: 0), cpuHeavy);

        Assert.True(freeCpu > freeMem);
    }

    [Fact]
    public void PowerState_OffIdleBusy_ScoreZeroHalfOne()
    {
        var req = Fleet.Ask(1, 1);

        Assert.Equal(0, Score(new PowerStateScorer(), Fleet.Host(0) with { PoweredOn = false }, req));
        Assert.Equal(0.5, Score(new PowerStateScorer(), Fleet.Host(0), req));
        Assert.Equal(1, Score(new PowerStateScorer(), Fleet.Host(0) with { Used = new ResourceVector(1000, 1, 0) }, req));
    }
}
