using Stratus.Core.Ids;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>The metric time series: append, query at each tier, compaction (averages, maxima, idempotency, retention).</summary>
public abstract partial class StateStoreConformanceTests
{
    private static MetricValues Use(double cpu, long mem = 100, long read = 0, long write = 0, long disk = 0) =>
        new(cpu, mem, read, write, 0, 0, disk);

    private static MetricSeriesQuery Series(MetricKind kind, Guid id, DateTimeOffset from, DateTimeOffset to, MetricResolution res) =>
        new(kind, id, from, to, res);

    /// <summary>Appends one report per value, 10 s apart from <paramref name="start"/>, for one host with one server.</summary>
    private async Task<(HostId Host, InstanceId Server)> AppendSeriesAsync(DateTimeOffset start, params double[] cpu)
    {
        var host = (await HostAsync("metrics-host")).Id;
        var server = new InstanceId(Guid.Parse("5b3e1f1a-0000-4000-8000-000000000001"));
        for (var i = 0; i < cpu.Length; i++)
        {
            await Store.AppendMetricsAsync(new HostMetricsRecord(host, start.AddSeconds(10 * i), Use(cpu[i] / 2, 1000, disk: 7),
                [(server, Use(cpu[i], 100 + i, read: 4096, write: 1024 * i))]), Ct);
        }
        return (host, server);
    }

    [Fact]
    public async Task AppendMetrics_HostAndServer_RawSeriesOfEach()
    {
        var (host, server) = await AppendSeriesAsync(T0, 10, 20, 30);
        var s = await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0, T0.AddMinutes(1), MetricResolution.Raw), Ct);
        Assert.Equal(MetricResolution.Raw, s.Resolution);
        Assert.Equal([10.0, 20.0, 30.0], s.Points.Select(p => p.CpuPercent));
        Assert.Equal([T0, T0.AddSeconds(10), T0.AddSeconds(20)], s.Points.Select(p => p.At));
        Assert.Equal([100L, 101L, 102L], s.Points.Select(p => p.MemoryUsedMib));
        Assert.Equal([0L, 1024L, 2048L], s.Points.Select(p => p.DiskWriteBytesPerSecond));
        Assert.All(s.Points, p => Assert.Equal(4096, p.DiskReadBytesPerSecond));
        Assert.All(s.Points, p => Assert.Equal(1, p.Samples));
        var h = await Store.QueryMetricsAsync(Series(MetricKind.Host, host.Value, T0, T0.AddMinutes(1), MetricResolution.Raw), Ct);
        Assert.Equal([5.0, 10.0, 15.0], h.Points.Select(p => p.CpuPercent));
        Assert.All(h.Points, p => Assert.Equal(7, p.DiskUsedGib));
        // Kinds are separate series, and the range's end is exclusive.
        Assert.Empty((await Store.QueryMetricsAsync(Series(MetricKind.Host, server.Value, T0, T0.AddMinutes(1), MetricResolution.Raw), Ct)).Points);
        Assert.Equal(2, (await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0, T0.AddSeconds(20), MetricResolution.Raw), Ct)).Points.Count);
    }

    [Fact]
    public async Task AppendMetrics_SameReportTwice_ReplacedNotCountedTwice()
    {
        var (_, server) = await AppendSeriesAsync(T0, 40);
        await AppendSeriesAsync(T0, 60);
        var p = Assert.Single((await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0, T0.AddMinutes(1), MetricResolution.Minute), Ct)).Points);
        Assert.Equal(60, p.CpuPercent);
        Assert.Equal(1, p.Samples);
    }

    [Fact]
    public async Task AppendMetrics_ManyServers_OneReportKeepsEveryRow()
    {
        var host = (await HostAsync("big")).Id;
        var servers = Enumerable.Range(0, 1200).Select(i => (InstanceId.New(), Use(i % 100))).ToList();
        await Store.AppendMetricsAsync(new HostMetricsRecord(host, T0, Use(50), servers), Ct);
        var last = servers[^1];
        Assert.Equal(99, Assert.Single((await Store.QueryMetricsAsync(Series(MetricKind.Server, last.Item1.Value, T0, T0.AddSeconds(1), MetricResolution.Raw), Ct)).Points).CpuPercent);
    }

    [Fact]
    public async Task QueryMetrics_MinuteAndHour_AveragesAndMaximaOfKnownSeries()
    {
        // Minute 0: 10..60 (six samples), minute 1: 100.
        var (_, server) = await AppendSeriesAsync(T0, 10, 20, 30, 40, 50, 60, 100);
        var m = await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0, T0.AddHours(1), MetricResolution.Minute), Ct);
        Assert.Equal(MetricResolution.Minute, m.Resolution);
        Assert.Equal(2, m.Points.Count);
        Assert.Equal(T0, m.Points[0].At);
        Assert.Equal(35, m.Points[0].CpuPercent, 9);
        Assert.Equal(60, m.Points[0].CpuMaxPercent);
        Assert.Equal(6, m.Points[0].Samples);
        Assert.Equal(103, m.Points[0].MemoryUsedMib); // 100..105 → 102.5, rounded away from zero
        Assert.Equal(105, m.Points[0].MemoryMaxMib);
        Assert.Equal(T0.AddMinutes(1), m.Points[1].At);
        Assert.Equal(100, m.Points[1].CpuPercent);
        var h = Assert.Single((await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0, T0.AddHours(1), MetricResolution.Hour), Ct)).Points);
        Assert.Equal(310.0 / 7, h.CpuPercent, 9);
        Assert.Equal(100, h.CpuMaxPercent);
        Assert.Equal(7, h.Samples);
        // A range starting inside a bucket still gets the whole bucket.
        Assert.Equal(6, (await Store.QueryMetricsAsync(Series(MetricKind.Server, server.Value, T0.AddSeconds(30), T0.AddSeconds(59), MetricResolution.Minute), Ct)).Points[0].Samples);
    }

    [Fact]
    public async Task CompactMetrics_RawPastRetention_FoldedIntoMinutesWithSameAverages()
    {
        var (_, server) = await AppendSeriesAsync(T0, 10, 20, 30, 40, 50, 60, 100);
        var q = Series(MetricKind.Server, server.Value, T0, T0.AddHours(1), MetricResolution.Minute);
        var before = await Store.QueryMetricsAsync(q, Ct);
        // Raw retention 1 h at T0+1h02m30s: the boundary floors to T0+2m, after every sample above.
        var done = await Store.CompactMetricsAsync(T0.AddHours(1).AddMinutes(2).AddSeconds(30), MetricsRetention.Default, Ct);
        Assert.Equal(14, done.RawCompacted); // 7 host rows + 7 server rows
        Assert.Empty((await Store.QueryMetricsAsync(q with { Resolution = MetricResolution.Raw }, Ct)).Points);
        var after = await Store.QueryMetricsAsync(q, Ct);
        Assert.Equal(before.Points, after.Points);
        Assert.Equal(MetricResolution.Minute, (await Store.QueryMetricsAsync(q with { Resolution = MetricResolution.Auto }, Ct)).Resolution);
    }

    [Fact]
    public async Task CompactMetrics_RawInsideRetention_Untouched()
    {
        var (_, server) = await AppendSeriesAsync(T0, 10, 20);
        var done = await Store.CompactMetricsAsync(T0.AddMinutes(59), MetricsRetention.Default, Ct);
        Assert.Equal(0, done.RawCompacted);
        var q = Series(MetricKind.Server, server.Value, T0, T0.AddHours(1), MetricResolution.Auto);
        var s = await Store.QueryMetricsAsync(q, Ct);
        Assert.Equal(MetricResolution.Raw, s.Resolution);
        Assert.Equal(2, s.Points.Count);
    }

    [Fact]
    public async Task CompactMetrics_RunTwiceAndLateSample_NeverCountsTwice()
    {
        var (host, server) = await AppendSeriesAsync(T0, 10, 20, 30);
        var now = T0.AddHours(2);
        await Store.CompactMetricsAsync(now, MetricsRetention.Default, Ct);
        var q = Series(MetricKind.Server, server.Value, T0, T0.AddHours(1), MetricResolution.Minute);
        var once = await Store.QueryMetricsAsync(q, Ct);
        var again = await Store.CompactMetricsAsync(now, MetricsRetention.Default, Ct);
        Assert.Equal(new MetricsCompaction(0, 0, 0), again);
        Assert.Equal(once.Points, (await Store.QueryMetricsAsync(q, Ct)).Points);
        // A late report for the compacted minute is merged into the bucket by sample count.
        await Store.AppendMetricsAsync(new HostMetricsRecord(host, T0.AddSeconds(50), Use(0), [(server, Use(80, 500))]), Ct);
        await Store.CompactMetricsAsync(now, MetricsRetention.Default, Ct);
        var merged = Assert.Single((await Store.QueryMetricsAsync(q, Ct)).Points);
        Assert.Equal(4, merged.Samples);
        Assert.Equal(35, merged.CpuPercent, 9); // (10 + 20 + 30 + 80) / 4
        Assert.Equal(80, merged.CpuMaxPercent);
        Assert.Equal(500, merged.MemoryMaxMib);
    }

    [Fact]
    public async Task CompactMetrics_MinutesPastRetention_FoldedIntoHoursThenExpired()
    {
        var (host, server) = await AppendSeriesAsync(T0, 10, 30);
        await Store.AppendMetricsAsync(new HostMetricsRecord(host, T0.AddMinutes(30), Use(0), [(server, Use(80, 900))]), Ct);
        await Store.AppendMetricsAsync(new HostMetricsRecord(host, T0.AddHours(1), Use(0), [(server, Use(5))]), Ct);
        // Two days later: raw → minutes and minutes older than a day → hours, in one pass.
        var done = await Store.CompactMetricsAsync(T0.AddDays(2), MetricsRetention.Default, Ct);
        Assert.Equal(8, done.RawCompacted);
        Assert.Equal(6, done.MinuteCompacted); // minutes 0, 30 and 60 of the host and the server
        var q = Series(MetricKind.Server, server.Value, T0, T0.AddHours(3), MetricResolution.Auto);
        var s = await Store.QueryMetricsAsync(q, Ct);
        Assert.Equal(MetricResolution.Hour, s.Resolution);
        Assert.Equal(2, s.Points.Count);
        Assert.Equal(40, s.Points[0].CpuPercent, 9); // (10 + 30 + 80) / 3: weighted by samples across minutes
        Assert.Equal(80, s.Points[0].CpuMaxPercent);
        Assert.Equal(900, s.Points[0].MemoryMaxMib);
        Assert.Equal(3, s.Points[0].Samples);
        Assert.Equal(T0.AddHours(1), s.Points[1].At);
        Assert.Empty((await Store.QueryMetricsAsync(q with { Resolution = MetricResolution.Minute }, Ct)).Points);
        // Thirty days after the hour: gone.
        var expired = await Store.CompactMetricsAsync(T0.AddDays(30).AddHours(1).AddMinutes(1), MetricsRetention.Default, Ct);
        Assert.Equal(4, expired.HourExpired);
        Assert.Empty((await Store.QueryMetricsAsync(q, Ct)).Points);
    }

    [Fact]
    public async Task AppendMetrics_Dump_Unchanged()
    {
        var (host, server) = await AppendSeriesAsync(T0, 10);
        var before = await Store.DumpAsync(Ct);
        await Store.AppendMetricsAsync(new HostMetricsRecord(host, T0.AddSeconds(10), Use(1), [(server, Use(2))]), Ct);
        await Store.CompactMetricsAsync(T0.AddDays(2), MetricsRetention.Default, Ct);
        Assert.Equal(before, await Store.DumpAsync(Ct));
    }
}
