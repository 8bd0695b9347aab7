using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests.Consolidation;

public sealed class VmSelectorTests
{
    [Fact]
    public void MinimumMigrationTime_PicksLeastRam_FirstArrivalOnTies()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        b.Vm(h, 2000, 1740, 500);
        var first613 = b.Vm(h, 500, 613, 100);
        b.Vm(h, 500, 613, 50);
        Assert.Equal(first613, new MinimumMigrationTimeSelector().Select(new PlanningState(b.Build()), h));
    }

    [Fact]
    public void MinimumUtilization_PicksLowestDemand()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        b.Vm(h, 2000, 1740, 500);
        var low = b.Vm(h, 2500, 870, 20);
        b.Vm(h, 500, 613, 50);
        Assert.Equal(low, new MinimumUtilizationSelector().Select(new PlanningState(b.Build()), h));
    }

    [Fact]
    public void Random_SameSeed_SameChoices_AndAlwaysAVmOfTheHost()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        var vms = Enumerable.Range(0, 6).Select(_ => b.Vm(h, 500, 613, 100)).ToHashSet();
        var s = new PlanningState(b.Build());
        var r1 = new RandomSelector(new Random(5));
        var r2 = new RandomSelector(new Random(5));
        var a = Enumerable.Range(0, 20).Select(_ => r1.Select(s, h)).ToArray();
        var c = Enumerable.Range(0, 20).Select(_ => r2.Select(s, h)).ToArray();
        Assert.Equal(a, c);
        Assert.All(a, v => Assert.Contains(v, vms));
        Assert.True(a.Distinct().Count() > 1);
    }

    [Fact]
    public void MaximumCorrelation_PicksAVmExplainedByTheOthers()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        var rnd = new Random(1);
        double[] Series() => Enumerable.Range(0, 20).Select(_ => rnd.NextDouble() * 0.4).ToArray();
        var x = Series();
        var y = Series();
        var sum = x.Zip(y, (p, q) => p + q).ToArray();
        var noise = Series();
        var independent = b.Vm(h, 1000, 613, 100, noise);
        var vx = b.Vm(h, 1000, 613, 100, x);
        var vy = b.Vm(h, 1000, 613, 100, y);
        var vsum = b.Vm(h, 1000, 613, 100, sum);
        var pick = new MaximumCorrelationSelector(new MinimumMigrationTimeSelector()).Select(new PlanningState(b.Build()), h);
        Assert.NotEqual(independent, pick);
        Assert.Contains(pick, new[] { vx, vy, vsum });
    }

    [Fact]
    public void MaximumCorrelation_ShortHistory_FallsBack()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        b.Vm(h, 1000, 1740, 100, 0.1, 0.2);
        var small = b.Vm(h, 1000, 613, 100, 0.3, 0.1);
        Assert.Equal(small, new MaximumCorrelationSelector(new MinimumMigrationTimeSelector()).Select(new PlanningState(b.Build()), h));
    }
}
