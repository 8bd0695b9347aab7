using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests.Consolidation;

public sealed class PowerModelTests
{
    [Theory]
    [InlineData(0.0, 86.0)]
    [InlineData(0.1, 89.4)]
    [InlineData(0.05, 87.7)]
    [InlineData(0.55, 104.0)]
    [InlineData(1.0, 117.0)]
    public void SpecPower_G4_InterpolatesLinearlyBetweenTablePoints(double utilization, double watts)
        => Assert.Equal(watts, SpecPowerModel.HpProLiantMl110G4.PowerAt(utilization), 9);

    [Fact]
    public void SpecPower_G5_QuarterLoad_IsMidwayBetween20And30Percent()
        => Assert.Equal(103.0, SpecPowerModel.HpProLiantMl110G5.PowerAt(0.25), 9);

    [Fact]
    public void SpecPower_OutOfRange_IsClampedToTableEnds()
    {
        Assert.Equal(93.7, SpecPowerModel.HpProLiantMl110G5.PowerAt(-0.5), 9);
        Assert.Equal(135.0, SpecPowerModel.HpProLiantMl110G5.PowerAt(1.5), 9);
    }

    [Fact]
    public void SpecPower_WrongTableLength_Throws()
        => Assert.Throws<ArgumentException>(() => new SpecPowerModel([1, 2, 3]));

    [Fact]
    public void Linear_HalfLoad_IsMidpoint()
        => Assert.Equal(150.0, new LinearPowerModel(100, 200).PowerAt(0.5), 9);

    [Fact]
    public void Cubic_HalfLoad_IsIdlePlusOneEighthOfRange()
        => Assert.Equal(112.5, new CubicPowerModel(100, 200).PowerAt(0.5), 9);
}
