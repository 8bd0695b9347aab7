using System.Net;
using System.Text.Json;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>Per-server and per-host stats through the whole pipeline: simulated driver → agent → hub → store → API.</summary>
public sealed class StatsApiTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private StratusClient C => cloud.Client;

    /// <summary>Writes the simulated host's load.json (VM name → CPU %).</summary>
    private async Task SetLoadAsync(string hostName, string json) =>
        await File.WriteAllTextAsync(Path.Combine(cloud.DataDir, "hosts", hostName, "simulated", "load.json"), json);

    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, int timeoutMs = 15000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        T value;
        do
        {
            value = await read();
            if (done(value))
            {
                return value;
            }
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"{what}: not seen in {timeoutMs} ms");
    }

    [Fact]
    public async Task ServerStats_LoadSetOnItsHost_PointsAndLatestShowIt()
    {
        var s = await C.CreateServerAsync(new CreateServerRequest("stats-busy", "tiny", "tiny", null, null, null, null));
        s = await cloud.WaitAsync(s.Id, "active");
        await SetLoadAsync(s.HostName!, """{"stats-busy": 73.5}""");

        var stats = await EventuallyAsync(() => C.ServerStatsAsync(s.Name, since: "5m", resolution: "raw"),
            st => st.Points.Any(p => p.CpuPercent == 73.5), "a raw point with the load set");
        Assert.Equal("server", stats.Kind);
        Assert.Equal(s.Id, stats.Id);
        Assert.Equal("raw", stats.Resolution);
        var p = stats.Points.Last(p => p.CpuPercent == 73.5);
        Assert.Equal(1, p.Samples);
        Assert.Null(p.DiskUsedGib);
        Assert.True(p.MemoryUsedMib > 0 && p.MemoryUsedMib <= 256, $"memory {p.MemoryUsedMib} MiB of a 256 MiB server");
        Assert.True(p.DiskReadBps > 0);
        Assert.Equal(73.5, stats.Latest!.CpuPercent);
        Assert.True(stats.Points.SequenceEqual(stats.Points.OrderBy(x => x.At)));

        // Minute buckets and auto (raw: nothing compacted yet) over the same data.
        var minute = await C.ServerStatsAsync(s.Id, since: "5m", resolution: "1m");
        Assert.Equal("1m", minute.Resolution);
        Assert.True(minute.Points.Sum(x => x.Samples) >= stats.Points.Count, "every raw sample is in a minute bucket (more may have arrived since)");
        Assert.Contains(minute.Points, x => x.CpuMaxPercent >= 73.5);
        Assert.Equal("raw", (await C.ServerStatsAsync(s.Id)).Resolution);

        // The host shows the server's share of its 32 cores (73.5 % of one = 2.3 %) on top of the others'.
        var host = await EventuallyAsync(() => C.HostStatsAsync(s.HostName!, since: "5m"), h => h.Points.Count > 0 && h.Latest is not null, "host points");
        Assert.Equal("host", host.Kind);
        Assert.True(host.Latest!.CpuPercent >= 2.29, $"host cpu {host.Latest.CpuPercent} %");
        Assert.NotNull(host.Latest.DiskUsedGib);
    }

    [Fact]
    public async Task HostStats_LoadSkewedAcrossHosts_BusyHostAboveIdleOne()
    {
        var a = await cloud.WaitAsync((await C.CreateServerAsync(new CreateServerRequest("skew-a", "tiny", "tiny", null, null, null, null))).Id, "active");
        var hosts = (await C.ListHostsAsync()).Select(h => h.Name).ToList();
        var idle = hosts.First(h => h != a.HostName);
        await SetLoadAsync(a.HostName!, """{"skew-a": 100}""");
        await SetLoadAsync(idle, "{}");
        // 100 % of one of the host's 32 cores is 3.125 %, shown rounded to two decimals.
        var busy = await EventuallyAsync(() => C.HostStatsAsync(a.HostName!, since: "1m"), h => h.Latest is { CpuPercent: >= 3.1 }, "busy host's load");
        var quiet = await C.HostStatsAsync(idle, since: "1m");
        Assert.True(busy.Latest!.CpuPercent > (quiet.Latest?.CpuPercent ?? 0), $"busy {busy.Latest.CpuPercent} %, idle {quiet.Latest?.CpuPercent} %");
    }

    [Fact]
    public async Task Stats_BadQuery_ProblemWithEveryFieldError()
    {
        using var resp = await cloud.Http.GetAsync("v1/hosts/host-1/stats?since=yesterday&resolution=5m&until=1m&x=1");
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        Assert.Equal("validation_failed", doc.RootElement.GetProperty("code").GetString());
        var fields = doc.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("field").GetString()).ToList();
        Assert.Equal(["x", "since", "resolution"], fields);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.ServerStatsAsync("no-such-server"));
        Assert.Equal(404, e.Status);
        Assert.Equal("not_found", e.Code);
    }

    [Fact]
    public async Task OpenApi_Document_ListsStatsRoutes()
    {
        var doc = await cloud.Http.GetStringAsync("v1/openapi.json");
        Assert.Contains("\"/v1/servers/{reference}/stats\"", doc, StringComparison.Ordinal);
        Assert.Contains("\"/v1/hosts/{reference}/stats\"", doc, StringComparison.Ordinal);
    }
}
