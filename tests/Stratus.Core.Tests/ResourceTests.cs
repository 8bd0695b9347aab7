using Stratus.Core.Resources;
using Stratus.Core.Validation;

namespace Stratus.Core.Tests;

public sealed class ResourceTests
{
    [Fact]
    public void Capacity_DefaultRatios_CpuQuadrupledRamAndDiskExact()
    {
        var total = ResourceVector.Of(32, 128 * 1024, 1024);
        var cap = AllocationRatios.Default.Capacity(total, ResourceVector.Zero);
        Assert.Equal(128_000, cap.MilliVcpus);
        Assert.Equal(131_072, cap.MemoryMib);
        Assert.Equal(1024, cap.DiskGib);
    }

    [Fact]
    public void Capacity_FractionalRatioAndReserved_ExactIntegers()
    {
        var ratios = AllocationRatios.FromDecimal(1.5, 0.9, 1.0);
        var cap = ratios.Capacity(ResourceVector.Of(3, 1000, 100), new ResourceVector(500, 100, 10));
        Assert.Equal(3750, cap.MilliVcpus); // (3000-500)*1.5
        Assert.Equal(810, cap.MemoryMib);   // (1000-100)*0.9
        Assert.Equal(90, cap.DiskGib);
    }

    [Fact]
    public void FitsIn_OneDimensionShort_DoesNotFit()
    {
        var free = new ResourceVector(1000, 512, 10);
        Assert.True(new ResourceVector(1000, 512, 10).FitsIn(free));
        Assert.False(new ResourceVector(1001, 1, 1).FitsIn(free));
        Assert.False(new ResourceVector(1, 513, 1).FitsIn(free));
        Assert.False(new ResourceVector(1, 1, 11).FitsIn(free));
    }

    [Fact]
    public void Arithmetic_FractionalCpu_StaysExact()
    {
        var quarter = new ResourceVector(250, 0, 0);
        var sum = ResourceVector.Zero;
        for (var i = 0; i < 4; i++)
        {
            sum += quarter;
        }
        Assert.Equal(ResourceVector.Of(1, 0, 0), sum);
        Assert.Equal(quarter, sum - (quarter * 3));
    }

    [Theory]
    [InlineData("web-1", true)]
    [InlineData("a", true)]
    [InlineData("db.primary_2", true)]
    [InlineData("", false)]
    [InlineData("-lead", false)]
    [InlineData("has space", false)]
    [InlineData("a/b", false)]
    [InlineData("a\\b", false)]
    [InlineData("bell\u0007", false)]
    [InlineData("ünïcode", false)]
    [InlineData("3f2504e0-4f89-11d3-9a0c-0305e82c3301", false)]
    public void NameRules_Check_AcceptsOnlySafeNames(string name, bool ok)
    {
        Assert.Equal(ok, NameRules.Check(name) is null);
    }

    [Fact]
    public void NameRules_TooLong_SaysLimit()
    {
        Assert.Equal("must be at most 64 characters (got 65)", NameRules.Check(new string('a', 65)));
        Assert.Null(NameRules.Check(new string('a', 64)));
    }
}
