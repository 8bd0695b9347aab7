using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests;

/// <summary>Ingest of agents' metrics reports through the hub, windowed averages, and the stats query parser.</summary>
public sealed class MetricsServiceTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-metrics-").FullName;
    private SqliteStateStore _store = null!;
    private MetricsService _metrics = null!;
    private AgentHub _hub = null!;
    private HostId _h1;
    private HostId _h2;
    private InstanceId _server;

    private sealed class NullSession(HostId id) : IAgentSession
    {
        public HostId HostId => id;

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");
    }

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var signal = new ReconcileSignal();
        var options = new ControllerOptions();
        _metrics = new MetricsService(_store, new MetricsOptions(), TimeProvider.System, NullLogger<MetricsService>.Instance);
        _hub = new AgentHub(_store, TimeProvider.System, signal, NullLogger<AgentHub>.Instance, _metrics);
        var cloud = new CloudService(_store, options, TimeProvider.System, signal);
        (_h1, _) = await _hub.RegisterAsync(new HostRegistration("h1", 2, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _hub.Attach(new NullSession(_h1));
        await cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), default);
        await cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default);
        var created = await cloud.CreateServerAsync(new CreateServerRequest("m1", "tiny", "tiny", null, null, null, null), null, "test", default);
        _server = created.Value.Server.Id;
        var rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, signal, TimeProvider.System, NullLogger<Reconciler>.Instance);
        await rec.RunOnceAsync(default);
        Assert.Equal(_h1, (await _store.GetInstanceAsync(_server, default))!.HostId);
        (_h2, _) = await _hub.RegisterAsync(new HostRegistration("h2", 2, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
    }

    private static HostMetricsReport Report(HostId host, DateTimeOffset at, double hostCpu, params VmMetrics[] vms) =>
        new(host, at, hostCpu, 2048, 40, vms);

    private static VmMetrics Vm(InstanceId id, double cpu, long mem = 200) => new(id, cpu, mem, 4096, 8192, 0, 0);

    private Task<MetricSeries> RawAsync(MetricKind kind, Guid id) =>
        _metrics.QueryAsync(kind, id, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddMinutes(1), MetricResolution.Raw, default);

    [Fact]
    public async Task Ingest_UnknownHost_DroppedAndNothingStored()
    {
        var stranger = HostId.New();
        var o = await _metrics.IngestAsync(Report(stranger, DateTimeOffset.UtcNow, 50, Vm(_server, 70)), default);
        Assert.Equal(new MetricsIngestOutcome(false, 0, 1), o);
        Assert.Empty((await RawAsync(MetricKind.Host, stranger.Value)).Points);
        Assert.Empty((await RawAsync(MetricKind.Server, _server.Value)).Points);
        Assert.Null(_metrics.Latest(_server));
    }

    [Fact]
    public async Task Ingest_VmNotOnReportingHost_Dropped()
    {
        var foreign = InstanceId.New();
        await _hub.ReportMetricsAsync(Report(_h2, DateTimeOffset.UtcNow.AddSeconds(-20), 10, Vm(_server, 99), Vm(foreign, 99)), default);
        Assert.Empty((await RawAsync(MetricKind.Server, _server.Value)).Points);
        Assert.Single((await RawAsync(MetricKind.Host, _h2.Value)).Points); // the host row itself is kept
        var o = await _metrics.IngestAsync(Report(_h1, DateTimeOffset.UtcNow.AddSeconds(-10), 30, Vm(_server, 70), Vm(foreign, 5)), default);
        Assert.Equal(new MetricsIngestOutcome(true, 1, 1), o);
        var p = Assert.Single((await RawAsync(MetricKind.Server, _server.Value)).Points);
        Assert.Equal(70, p.CpuPercent);
        Assert.Equal(8192, p.DiskWriteBytesPerSecond);
        Assert.Empty((await RawAsync(MetricKind.Server, foreign.Value)).Points);
        Assert.Equal(70, _metrics.Latest(_server)!.Values.CpuPercent);
        Assert.Equal(40, _metrics.Latest(_h1)!.Values.DiskUsedGib);
    }

    [Fact]
    public async Task AverageCpu_Window_WeightedOverSamplesInside()
    {
        var now = DateTimeOffset.UtcNow;
        await _metrics.IngestAsync(Report(_h1, now.AddMinutes(-30), 90, Vm(_server, 90)), default); // outside a 5-minute window
        foreach (var (ago, cpu) in new[] { (40, 20.0), (30, 40.0), (20, 60.0) })
        {
            await _metrics.IngestAsync(Report(_h1, now.AddSeconds(-ago), cpu / 2, Vm(_server, cpu)), default);
        }
        Assert.Equal(40, (await _metrics.AverageCpuAsync(_server, TimeSpan.FromMinutes(5)))!.Value, 9);
        Assert.Equal(20, (await _metrics.AverageCpuAsync(_h1, TimeSpan.FromMinutes(5)))!.Value, 9);
        Assert.Equal((90 + 20 + 40 + 60) / 4.0, (await _metrics.AverageCpuAsync(_server, TimeSpan.FromHours(1)))!.Value, 9);
        Assert.Null(await _metrics.AverageCpuAsync(_h2, TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public async Task Ingest_OutOfRangeValues_ClampedAndFutureTimeIsNow()
    {
        var before = DateTimeOffset.UtcNow;
        await _metrics.IngestAsync(Report(_h1, before.AddDays(1), double.NaN, new VmMetrics(_server, 250, -5, -1, 10, 0, 0)), default);
        var latest = _metrics.Latest(_server)!;
        Assert.Equal(100, latest.Values.CpuPercent);
        Assert.Equal(0, latest.Values.MemoryUsedMib);
        Assert.Equal(0, latest.Values.DiskReadBytesPerSecond);
        Assert.InRange(latest.At, before, DateTimeOffset.UtcNow);
        Assert.Equal(0, _metrics.Latest(_h1)!.Values.CpuPercent);
    }

    [Fact]
    public async Task Latest_VmNoLongerReported_Forgotten()
    {
        await _metrics.IngestAsync(Report(_h1, DateTimeOffset.UtcNow.AddSeconds(-2), 10, Vm(_server, 50)), default);
        Assert.NotNull(_metrics.Latest(_server));
        await _metrics.IngestAsync(Report(_h1, DateTimeOffset.UtcNow.AddSeconds(-1), 10), default);
        Assert.Null(_metrics.Latest(_server));
        // The stored series stays (billing reads it); LatestAsync falls back to it.
        Assert.Equal(50, (await _metrics.LatestAsync(MetricKind.Server, _server.Value, default))!.Values.CpuPercent);
    }

    [Fact]
    public void StatsQuery_DurationsAndIsoTimes_Parsed()
    {
        var now = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        var w = StatsQuery.Parse([new("since", "15m"), new("until", "90s"), new("resolution", "1m")], now);
        Assert.True(w.Ok);
        Assert.Equal(new StatsWindow(now.AddMinutes(-15), now.AddSeconds(-90), MetricResolution.Minute), w.Value);
        var iso = StatsQuery.Parse([new("since", "2026-03-01T10:00:00Z")], now);
        Assert.Equal(new StatsWindow(now.AddHours(-2), now, MetricResolution.Auto), iso.Value);
        Assert.Equal(new StatsWindow(now.AddHours(-1), now, MetricResolution.Auto), StatsQuery.Parse([], now).Value);
        Assert.Equal(now.AddDays(-7), StatsQuery.Parse([new("since", "7d")], now).Value!.Since);
    }

    [Fact]
    public void StatsQuery_BadValues_EveryErrorAtOnce()
    {
        var now = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        var w = StatsQuery.Parse([new("since", "yesterday"), new("until", "-5m"), new("resolution", "5m"), new("colour", "red")], now);
        Assert.False(w.Ok);
        Assert.Equal("validation_failed", w.Problem!.Code);
        Assert.Equal(["colour", "until", "since", "resolution"], w.Problem.Errors!.Select(e => e.Field));
        var order = StatsQuery.Parse([new("since", "1m"), new("until", "2m")], now);
        Assert.Equal("out_of_range", Assert.Single(order.Problem!.Errors!).Code);
        Assert.False(StatsQuery.Parse([new("since", "999999999d")], now).Ok);
        Assert.False(StatsQuery.Parse([new("since", "")], now).Ok);
        Assert.False(StatsQuery.Parse([new("since", "1900-01-01T00:00:00Z")], now).Ok);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }
}
