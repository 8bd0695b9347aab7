using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests.Consolidation;

public sealed class OverloadDetectorTests
{
    private static readonly IOverloadDetector Never = new StaticThresholdDetector(double.MaxValue);
    private static readonly IOverloadDetector Always = new StaticThresholdDetector(-1);

    private static PlanningState OneVm(double requestedMips, params double[] history)
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.Unit);
        b.Vm(h, 1000, 1000, requestedMips, history);
        return new PlanningState(b.Build());
    }

    private static double[] Linear(double oldest, double step, int count)
    {
        // Most recent first.
        var h = new double[count];
        for (var i = 0; i < count; i++)
        {
            h[count - 1 - i] = oldest + (step * i);
        }
        return h;
    }

    [Theory]
    [InlineData(4300, true)]
    [InlineData(4200, false)]
    public void StaticThreshold_DemandAgainst80Percent_OfG5(double demand, bool expected)
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        b.Vm(h, 2500, 870, demand / 2);
        b.Vm(h, 2500, 870, demand / 2);
        Assert.Equal(expected, new StaticThresholdDetector(0.8).IsOverloaded(new PlanningState(b.Build()), h, -1));
    }

    [Fact]
    public void StaticThreshold_ExtraVm_IsCountedInDemand()
    {
        var b = new TestCluster.Builder();
        var h = b.Host(TestCluster.G5);
        b.Vm(h, 2500, 870, 2000);
        var other = b.Host(TestCluster.G5);
        var extra = b.Vm(other, 2500, 870, 2500);
        var s = new PlanningState(b.Build());
        var thr = new StaticThresholdDetector(0.8);
        Assert.False(thr.IsOverloaded(s, h, -1));
        Assert.True(thr.IsOverloaded(s, h, extra));
    }

    [Theory]
    [InlineData(1.2, false)] // line reaches 0.80 at the next point: 0.96 < 1
    [InlineData(1.3, true)]  // 1.04 >= 1
    public void LocalRegression_RisingLine_ExtrapolatedOneMigrationAhead(double safety, bool expected)
    {
        // 10 points rising from 0.50 by 0.03: the fit predicts 0.80 at x = 11 (1,000 MB migrates in 16 s: one interval).
        var s = OneVm(770, Linear(0.5, 0.03, 10));
        Assert.Equal(expected, new LocalRegressionDetector(safety, Never).IsOverloaded(s, 0, -1));
    }

    [Fact]
    public void LocalRegression_ShortHistory_UsesFallback()
    {
        var s = OneVm(100, Linear(0.1, 0, 9));
        Assert.True(new LocalRegressionDetector(1.2, Always).IsOverloaded(s, 0, -1));
        Assert.False(new LocalRegressionDetector(1.2, Never).IsOverloaded(s, 0, -1));
    }

    [Fact]
    public void RobustLocalRegression_SameLineAsCloudSim()
    {
        var s = OneVm(770, Linear(0.5, 0.03, 10));
        Assert.True(new LocalRegressionDetector(1.3, Never, robust: true).IsOverloaded(s, 0, -1));
    }

    [Theory]
    [InlineData(800, true)]
    [InlineData(780, false)]
    public void Iqr_TwelvePoints_ThresholdIsOneMinusSafetyTimesIqr(double demand, bool expected)
    {
        // 0.30..0.52 step 0.02: IQR (CloudSim's index rule) = 0.48 − 0.34 = 0.14, threshold 1 − 1.5 × 0.14 = 0.79.
        var s = OneVm(demand, Linear(0.30, 0.02, 12));
        Assert.Equal(expected, AdaptiveThresholdDetector.Iqr(1.5, Never).IsOverloaded(s, 0, -1));
    }

    [Theory]
    [InlineData(860, true)]
    [InlineData(840, false)]
    public void Mad_TwelvePoints_ThresholdIsOneMinusSafetyTimesMad(double demand, bool expected)
    {
        // Median 0.41, MAD 0.06, threshold 1 − 2.5 × 0.06 = 0.85.
        var s = OneVm(demand, Linear(0.30, 0.02, 12));
        Assert.Equal(expected, AdaptiveThresholdDetector.Mad(2.5, Never).IsOverloaded(s, 0, -1));
    }

    [Fact]
    public void Mad_ElevenPoints_UsesFallback()
    {
        var s = OneVm(100, Linear(0.30, 0.02, 11));
        Assert.True(AdaptiveThresholdDetector.Mad(2.5, Always).IsOverloaded(s, 0, -1));
    }

    [Fact]
    public void Statistics_KnownValues()
    {
        Assert.Equal(0.14, Statistics.Iqr(Linear(0.30, 0.02, 12)), 9);
        Assert.Equal(0.06, Statistics.Mad(Linear(0.30, 0.02, 12)), 9);
        var (a, b) = Statistics.LinearFit([1, 3, 5, 7]);
        Assert.Equal(-1, a, 9);
        Assert.Equal(2, b, 9);
    }
}
