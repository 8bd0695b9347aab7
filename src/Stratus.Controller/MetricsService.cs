using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stratus.Core.Ids;
using Stratus.Protocol;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>The newest sample of a host or server.</summary>
public sealed record LatestMetrics(DateTimeOffset At, MetricValues Values);

/// <summary>What became of one host report: stored rows and dropped VM rows (VMs the store does not place on that host).</summary>
public sealed record MetricsIngestOutcome(bool HostKnown, int ServersStored, int ServersDropped);

/// <summary>
/// The controller's metric time series: ingests agents' reports into the store (only known hosts; a VM row only when
/// the store places that server on the reporting host), keeps the newest sample of every host and server in memory
/// for cheap reads (consolidation and autoscaling read <see cref="Latest(InstanceId)"/> and
/// <see cref="AverageCpuAsync(InstanceId, TimeSpan, CancellationToken)"/>), answers series queries and compacts the
/// tiers in the background every <see cref="MetricsOptions.CompactionInterval"/>.
/// A deleted server's series is kept and ages out with the normal retention (billing reads it after the delete).
/// </summary>
public sealed partial class MetricsService : BackgroundService
{
    private readonly IStateStore _store;
    private readonly MetricsOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<MetricsService> _log;
    private readonly ConcurrentDictionary<(MetricKind, Guid), LatestMetrics> _latest = new();
    private readonly ConcurrentDictionary<HostId, InstanceId[]> _lastReported = new();

    public MetricsService(IStateStore store, MetricsOptions options, TimeProvider time, ILogger<MetricsService> log)
    {
        options.Validate();
        _store = store;
        _options = options;
        _time = time;
        _log = log;
    }

    /// <summary>The options in force.</summary>
    public MetricsOptions Options => _options;

    /// <summary>
    /// Stores one report. A report from an unknown host is dropped whole; VM rows for servers the store does not place
    /// on the reporting host (moved, deleted, foreign) are dropped. Values are clamped to their ranges (CPU 0–100,
    /// nothing negative) and a time in the future is replaced by the controller's clock.
    /// </summary>
    public async Task<MetricsIngestOutcome> IngestAsync(HostMetricsReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (await _store.GetHostAsync(report.HostId, cancellationToken) is null)
        {
            LogUnknownHost(_log, report.HostId);
            return new MetricsIngestOutcome(false, 0, report.Vms.Count);
        }
        var onHost = new HashSet<InstanceId>();
        foreach (var i in await _store.ListInstancesOnHostAsync(report.HostId, cancellationToken))
        {
            onHost.Add(i.Id);
        }
        var now = _time.GetUtcNow();
        var at = report.At > now ? now : report.At;
        var servers = new List<(InstanceId, MetricValues)>(report.Vms.Count);
        foreach (var v in report.Vms)
        {
            if (onHost.Contains(v.Id))
            {
                servers.Add((v.Id, new MetricValues(Percent(v.CpuPercent), Math.Max(0, v.MemoryUsedMib), Math.Max(0, v.DiskReadBytesPerSecond),
                    Math.Max(0, v.DiskWriteBytesPerSecond), Math.Max(0, v.NetRxBytesPerSecond), Math.Max(0, v.NetTxBytesPerSecond))));
            }
        }
        var dropped = report.Vms.Count - servers.Count;
        if (dropped > 0)
        {
            LogDropped(_log, report.HostId, dropped);
        }
        var host = new MetricValues(Percent(report.CpuPercent), Math.Max(0, report.MemoryUsedMib), 0, 0, 0, 0, Math.Max(0, report.DiskUsedGib));
        await _store.AppendMetricsAsync(new HostMetricsRecord(report.HostId, at, host, servers), cancellationToken);

        _latest[(MetricKind.Host, report.HostId.Value)] = new LatestMetrics(at, host);
        var reported = new InstanceId[servers.Count];
        for (var n = 0; n < servers.Count; n++)
        {
            var (id, values) = servers[n];
            reported[n] = id;
            _latest[(MetricKind.Server, id.Value)] = new LatestMetrics(at, values);
        }
        if (_lastReported.TryGetValue(report.HostId, out var previous))
        {
            foreach (var gone in previous.Except(reported))
            {
                _latest.TryRemove((MetricKind.Server, gone.Value), out _);
            }
        }
        _lastReported[report.HostId] = reported;
        return new MetricsIngestOutcome(true, servers.Count, dropped);
    }

    private static double Percent(double p) => double.IsFinite(p) ? Math.Clamp(p, 0, 100) : 0;

    /// <summary>The newest sample of a server this controller has received since it started, or null.</summary>
    public LatestMetrics? Latest(InstanceId id) => _latest.GetValueOrDefault((MetricKind.Server, id.Value));

    /// <summary>The newest sample of a host this controller has received since it started, or null.</summary>
    public LatestMetrics? Latest(HostId id) => _latest.GetValueOrDefault((MetricKind.Host, id.Value));

    /// <summary>The newest sample: from memory, else (after a controller restart) the newest stored raw sample.</summary>
    public async Task<LatestMetrics?> LatestAsync(MetricKind kind, Guid id, CancellationToken cancellationToken)
    {
        if (_latest.TryGetValue((kind, id), out var cached))
        {
            return cached;
        }
        var now = _time.GetUtcNow();
        var raw = await _store.QueryMetricsAsync(new MetricSeriesQuery(kind, id, now - _options.RawRetention, now.AddSeconds(1), MetricResolution.Raw), cancellationToken);
        return raw.Points.Count == 0 ? null : ToLatest(raw.Points[^1]);
    }

    private static LatestMetrics ToLatest(MetricPoint p) => new(p.At, new MetricValues(p.CpuPercent, p.MemoryUsedMib, p.DiskReadBytesPerSecond,
        p.DiskWriteBytesPerSecond, p.NetRxBytesPerSecond, p.NetTxBytesPerSecond, p.DiskUsedGib));

    /// <summary>A server's average CPU % over the last <paramref name="window"/> (weighted by samples), or null without samples.</summary>
    public Task<double?> AverageCpuAsync(InstanceId id, TimeSpan window, CancellationToken cancellationToken = default) =>
        AverageCpuAsync(MetricKind.Server, id.Value, window, cancellationToken);

    /// <summary>A host's average CPU % over the last <paramref name="window"/> (weighted by samples), or null without samples.</summary>
    public Task<double?> AverageCpuAsync(HostId id, TimeSpan window, CancellationToken cancellationToken = default) =>
        AverageCpuAsync(MetricKind.Host, id.Value, window, cancellationToken);

    private async Task<double?> AverageCpuAsync(MetricKind kind, Guid id, TimeSpan window, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        var now = _time.GetUtcNow();
        var s = await _store.QueryMetricsAsync(new MetricSeriesQuery(kind, id, now - window, now.AddTicks(1), MetricResolution.Auto), ct);
        long samples = 0;
        double sum = 0;
        foreach (var p in s.Points)
        {
            samples += p.Samples;
            sum += p.CpuPercent * p.Samples;
        }
        return samples == 0 ? null : sum / samples;
    }

    /// <summary>A series of a host or server (see <see cref="IStateStore.QueryMetricsAsync"/>).</summary>
    public Task<MetricSeries> QueryAsync(MetricKind kind, Guid id, DateTimeOffset from, DateTimeOffset to, MetricResolution resolution, CancellationToken cancellationToken) =>
        _store.QueryMetricsAsync(new MetricSeriesQuery(kind, id, from, to, resolution), cancellationToken);

    /// <summary>One compaction pass now.</summary>
    public Task<MetricsCompaction> CompactOnceAsync(CancellationToken cancellationToken) =>
        _store.CompactMetricsAsync(_time.GetUtcNow(), _options.Retention, cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.CompactionInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    var done = await CompactOnceAsync(stoppingToken);
                    if (done.RawCompacted + done.MinuteCompacted + done.HourExpired > 0)
                    {
                        LogCompacted(_log, done.RawCompacted, done.MinuteCompacted, done.HourExpired);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogCompactionFailed(_log, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(30, LogLevel.Debug, "Metrics from unknown host {HostId} dropped")]
    private static partial void LogUnknownHost(ILogger log, HostId hostId);

    [LoggerMessage(31, LogLevel.Debug, "Metrics of {Count} VMs not placed on host {HostId} dropped")]
    private static partial void LogDropped(ILogger log, HostId hostId, int count);

    [LoggerMessage(32, LogLevel.Debug, "Metrics compacted: {Raw} raw rows into minutes, {Minute} minute rows into hours, {Expired} hour rows expired")]
    private static partial void LogCompacted(ILogger log, long raw, long minute, long expired);

    [LoggerMessage(33, LogLevel.Warning, "Metrics compaction failed; the next interval tries again")]
    private static partial void LogCompactionFailed(ILogger log, Exception e);
}
