namespace Stratus.Scheduler.Tests.Framework;

public class ClusterSnapshotTests
{
    [Fact]
    public void IndexOf_AfterWithCopy_IndexesTheCopysHosts()
    {
        var a = Fleet.Of(Fleet.Host(0), Fleet.Host(1));
        Assert.Equal(1, a.IndexOf(Fleet.Id(1)));

        var b = a with { Hosts = [Fleet.Host(1), Fleet.Host(2)] };

        Assert.Equal(0, b.IndexOf(Fleet.Id(1)));
        Assert.Equal(1, b.IndexOf(Fleet.Id(2)));
        Assert.Equal(-1, b.IndexOf(Fleet.Id(0)));
    }
}
