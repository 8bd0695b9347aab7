using Stratus.Scheduler.Bounds;

namespace Stratus.Scheduler.Tests.Bounds;

public class LowerBoundsTests
{
    private static readonly PackingVector Host = new(100, 100, 0, 0);

    [Fact]
    public void Volume_IdenticalHosts_IsCeilingOfLargestDimension()
    {
        var items = Enumerable.Repeat(new PackingVector(30, 10, 0, 0), 7).ToList();

        var b = LowerBounds.Volume(items, Host);

        Assert.Equal(new LowerBound(3, "volume:cpu"), b);
    }

    [Fact]
    public void Volume_MixedFleet_CountsLargestHostsFirst()
    {
        var items = Enumerable.Repeat(new PackingVector(10, 1, 0, 0), 23).ToList();
        var hosts = new[] { new PackingVector(40, 100, 0, 0), new PackingVector(200, 100, 0, 0), new PackingVector(40, 100, 0, 0), new PackingVector(40, 100, 0, 0) };

        Assert.Equal(2, LowerBounds.Volume(items, hosts).Hosts);
    }

    [Fact]
    public void MartelloTothL2_ItemsLargerThanHalf_NeedOneHostEach()
    {
        var items = Enumerable.Repeat(new PackingVector(60, 10, 0, 0), 3).ToList();

        Assert.Equal(2, LowerBounds.Volume(items, Host).Hosts);
        Assert.Equal(new LowerBound(3, "l2:cpu"), LowerBounds.MartelloTothL2(items, Host));
    }

    [Fact]
    public void ExactBound_TwoDimensionalConflict_BeatsPerDimensionBounds()
    {
        // Every pair overflows one dimension, but each dimension alone would let two share a host.
        var items = new List<PackingVector> { new(60, 45, 0, 0), new(45, 60, 0, 0), new(50, 50, 0, 0) };

        var l2 = LowerBounds.MartelloTothL2(items, Host);
        var exact = ExactBinPackingBound.TryCompute(items, Host, upperBound: 3);

        Assert.Equal(2, l2.Hosts);
        Assert.NotNull(exact);
        Assert.Equal(3, exact.Value.Hosts);
        Assert.StartsWith("cp-sat", exact.Value.Method, StringComparison.Ordinal);
    }

    [Fact]
    public void ExactBound_ModelTooLarge_ReturnsNull()
    {
        var items = Enumerable.Range(1, 300).Select(i => new PackingVector(i % 97 + 1, i % 89 + 1, 0, 0)).ToList();

        Assert.Null(ExactBinPackingBound.TryCompute(items, Host, upperBound: 200));
    }
}
