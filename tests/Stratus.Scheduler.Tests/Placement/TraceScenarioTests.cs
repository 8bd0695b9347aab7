using Stratus.Simulator.Placement;
using Stratus.Simulator.Traces;

namespace Stratus.Scheduler.Tests.Placement;

public class TraceScenarioTests
{
    private static List<AzureArrival> Azure() => AzureTrace.ReadFolder(Fleet.DataDir("azure-v1-flavor-traces"), maxArrivals: 100_000);

    [Fact]
    public void AzureTrace_Sample_ParsesFlavoursDurationsAndBatches()
    {
        var a = Azure();

        Assert.Equal(811, a.Count);
        Assert.Equal('m', a[0].Flavor.Code);
        Assert.Equal(8, a[0].Flavor.Vcpus);
        Assert.Equal(14 * 1024, a[0].Flavor.MemoryMib);
        Assert.Equal(3, a[0].BatchSize);
        Assert.Equal(a[0].Batch, a[2].Batch);
        Assert.NotEqual(a[0].Batch, a[3].Batch);
        // U3 is bin 3 = [900, 1200) s; C40 is censored (still running at the end).
        Assert.Equal(1050, a[0].DurationSeconds);
        Assert.Contains(a, x => x.DurationSeconds == long.MaxValue);
        Assert.True(a.Zip(a.Skip(1)).All(p => p.First.Time <= p.Second.Time));
    }

    [Fact]
    public void AlibabaTrace_Sample_ReadsGpuDemandAsTotalMilli()
    {
        var (nodes, pods) = AlibabaTrace.ReadFolder(Fleet.DataDir("alibaba-gpu-v2023"));

        Assert.Equal(153, nodes.Count);
        Assert.Equal(400, pods.Count);
        Assert.Equal(new AlibabaPod("openb-pod-0001", 6000, 12288, 1, 460, 427061, 12902960), pods[1]);
        Assert.All(nodes, n => Assert.True(n.GpuMilli % 1000 == 0));
    }

    [Fact]
    public void AzureScenario_SpreadWithAntiAffinityAndTwoPlacers_PlacesAllWithoutViolations()
    {
        var o = new PlacementBenchOptions { Hosts = 200, AntiAffinity = true, Placers = 2 };

        var r = PlacementBench.RunAzure(o, Azure());

        Assert.Equal(811, r.Placed);
        Assert.Equal(0, r.InvariantViolations);
        Assert.True(r.P99Us >= r.P50Us);
        Assert.True(r.HostsUsed >= r.LowerBound);
        Assert.Contains("\"placements_per_second\":", r.ToJson(), StringComparison.Ordinal);
        Assert.Contains("\"sample_size\":256", r.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void AzureScenario_PackUsesFewerHostsThanSpread_AndStaysNearBound()
    {
        var arrivals = Azure();
        var spread = PlacementBench.RunAzure(new PlacementBenchOptions { Hosts = 100 }, arrivals);
        var pack = PlacementBench.RunAzure(new PlacementBenchOptions { Hosts = 100, Profile = "pack", RepackPeak = true }, arrivals);

        Assert.True(pack.HostsUsed < spread.HostsUsed);
        Assert.True(pack.HostsUsed >= pack.LowerBound);
        Assert.True(pack.PackingRatio <= 1.5, pack.ToJson());
        Assert.NotNull(pack.PeakRepackHostsUsed);
        Assert.True(pack.PeakRepackHostsUsed >= pack.PeakRepackLowerBound);
    }

    [Fact]
    public void AlibabaScenario_PackPlacesEveryPodNearTheBound()
    {
        var (nodes, pods) = AlibabaTrace.ReadFolder(Fleet.DataDir("alibaba-gpu-v2023"));

        var pack = PlacementBench.RunAlibaba(new PlacementBenchOptions { Workload = "alibaba", Profile = "pack" }, nodes, pods);
        var spread = PlacementBench.RunAlibaba(new PlacementBenchOptions { Workload = "alibaba", Profile = "spread" }, nodes, pods);

        Assert.Equal(400, pack.Placed);
        Assert.Equal(0, pack.InvariantViolations);
        Assert.True(pack.HostsUsed >= pack.LowerBound);
        Assert.True(pack.HostsUsed < spread.HostsUsed);
        Assert.True(pack.PackingRatio <= 1.25, pack.ToJson());
    }

    [Fact]
    public void Options_Invalid_ReportsEveryError()
    {
        var e = Assert.Throws<ArgumentException>(() => new PlacementBenchOptions { Workload = "gcp", Profile = "fast", Placers = 0 }.Validate());

        Assert.Contains("workload", e.Message, StringComparison.Ordinal);
        Assert.Contains("profile", e.Message, StringComparison.Ordinal);
        Assert.Contains("placers", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Command_AlibabaSampleJson_PrintsOneObjectWithTheRequiredFields()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var rc = PlacementBenchCommand.Run(["placement", "--workload", "alibaba", "--profile", "pack", "--data", Fleet.DataDir(""), "-o", "json"], stdout, stderr);

        Assert.Equal(0, rc);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout.ToString());
        foreach (var field in new[] { "placements_per_second", "p50_us", "p99_us", "hosts_used", "lower_bound", "sample_size", "conflicts", "retries" })
        {
            Assert.True(doc.RootElement.TryGetProperty(field, out _), field);
        }
        Assert.Equal(400, doc.RootElement.GetProperty("placed").GetInt32());
    }

    [Fact]
    public void Command_BadArgument_ExitsTwoWithOneLine()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var rc = PlacementBenchCommand.Run(["placement", "--hosts", "many"], stdout, stderr);

        Assert.Equal(2, rc);
        Assert.Equal("bench placement: --hosts needs an integer", stderr.ToString().Trim());
        Assert.Empty(stdout.ToString());
    }
}
