using Stratus.Storage;

namespace Stratus.Api.Tests;

/// <summary>GET /v1/energy: known metrics give the expected kWh; bad queries are 400 problems.</summary>
public sealed class EnergyApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 2 };

    public Task InitializeAsync() => _cloud.InitializeAsync();

    public Task DisposeAsync() => _cloud.DisposeAsync();

    [Fact]
    public async Task Report_KnownMetrics_ExpectedKwh()
    {
        var day = DateOnly.FromDateTime(DateTime.UtcNow).AddDays(-3);
        var start = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var hosts = await _cloud.Client.ListHostsAsync();
        var host = hosts.OrderBy(h => h.Name, StringComparer.Ordinal).First();
        // One hour at 50 % CPU, one sample a minute: 1 h × (100 + (250 − 100) × 0.5) W = 175 Wh.
        for (var m = 0; m < 60; m++)
        {
            await _cloud.Store.AppendMetricsAsync(new HostMetricsRecord(new Core.Ids.HostId(Guid.Parse(host.Id)), start.AddMinutes(m).AddSeconds(10),
                new MetricValues(50, 1000, 0, 0, 0, 0), []), CancellationToken.None);
        }
        var r = await _cloud.Client.EnergyReportAsync(day.ToString("yyyy-MM-dd"));
        Assert.Equal(day.ToString("yyyy-MM-dd"), r.Day);
        Assert.Equal(start.AddDays(1), r.Until);
        var row = Assert.Single(r.Hosts, h => h.HostId == host.Id);
        Assert.Equal(0.175, row.Kwh, 6);
        Assert.Equal(50, row.AverageCpuPercent, 3);
        Assert.Equal(1, row.MeteredHours, 6);
        Assert.Equal(23, row.UnmeteredHours, 6);
        Assert.Equal(0, row.StandbyHours);
        Assert.All(r.Hosts.Where(h => h.HostId != host.Id), h => Assert.Equal(0, h.Kwh));
        Assert.Equal(0.175, r.TotalKwh, 6);
    }

    [Theory]
    [InlineData("v1/energy?day=2026-13-01", "day")]
    [InlineData("v1/energy?day=yesterday", "day")]
    [InlineData("v1/energy?day=2999-01-01", "day")]
    [InlineData("v1/energy?bogus=1", "bogus")]
    public async Task Report_BadQuery_400Problem(string path, string field)
    {
        var resp = await _cloud.Http.GetAsync(path);
        Assert.Equal(400, (int)resp.StatusCode);
        Assert.Equal("application/problem+json", resp.Content.Headers.ContentType?.MediaType);
        var body = await resp.Content.ReadAsStringAsync();
        Assert.Contains("\"validation_failed\"", body, StringComparison.Ordinal);
        Assert.Contains($"\"{field}\"", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Consolidation_DisabledByDefault_StatusSaysSo()
    {
        var s = await _cloud.Client.ConsolidationAsync();
        Assert.False(s.Enabled);
        Assert.Equal("stratus", s.Policy);
        Assert.Equal("noop", s.PowerDriver);
        Assert.Empty(s.Passes);
        Assert.Empty(s.Standby);
    }
}
