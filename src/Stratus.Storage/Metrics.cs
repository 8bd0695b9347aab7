using Stratus.Core.Ids;

namespace Stratus.Storage;

/// <summary>What a time series belongs to.</summary>
public enum MetricKind
{
    Host = 0,
    Server = 1,
}

/// <summary>The tiers of the time series, finest first. <see cref="Auto"/> lets the store pick (see <see cref="IStateStore.QueryMetricsAsync"/>).</summary>
public enum MetricResolution
{
    Auto = -1,
    /// <summary>Every sample as reported.</summary>
    Raw = 0,
    /// <summary>One point per minute (bucket start), averaged, with maxima.</summary>
    Minute = 60,
    /// <summary>One point per hour (bucket start), averaged, with maxima.</summary>
    Hour = 3600,
}

/// <summary>One object's resource use at one instant, as an agent reports it.</summary>
/// <param name="CpuPercent">0–100: for a server the share of its vCPUs, for a host the share of its cores.</param>
/// <param name="DiskUsedGib">Hosts: GiB used on the file system of the data directory; servers: 0.</param>
public readonly record struct MetricValues(
    double CpuPercent,
    long MemoryUsedMib,
    long DiskReadBytesPerSecond,
    long DiskWriteBytesPerSecond,
    long NetRxBytesPerSecond,
    long NetTxBytesPerSecond,
    long DiskUsedGib = 0);

/// <summary>One host report: the host's use and its servers', all sampled at <paramref name="At"/>.</summary>
public sealed record HostMetricsRecord(HostId Host, DateTimeOffset At, MetricValues Values, IReadOnlyList<(InstanceId Id, MetricValues Values)> Servers);

/// <summary>A point of a series: a raw sample, or a bucket starting at <paramref name="At"/> of <paramref name="Samples"/> raw samples.</summary>
/// <param name="CpuMaxPercent">Largest raw CPU sample in the bucket (equals <paramref name="CpuPercent"/> for a raw point).</param>
/// <param name="MemoryMaxMib">Largest raw memory sample in the bucket.</param>
public sealed record MetricPoint(
    DateTimeOffset At,
    double CpuPercent,
    double CpuMaxPercent,
    long MemoryUsedMib,
    long MemoryMaxMib,
    long DiskReadBytesPerSecond,
    long DiskWriteBytesPerSecond,
    long NetRxBytesPerSecond,
    long NetTxBytesPerSecond,
    long DiskUsedGib,
    long Samples);

/// <summary>A series query: points of one object with <c>From ≤ at &lt; To</c>.</summary>
public sealed record MetricSeriesQuery(MetricKind Kind, Guid ObjectId, DateTimeOffset From, DateTimeOffset To, MetricResolution Resolution);

/// <summary>A series answer, with the resolution actually used (never <see cref="MetricResolution.Auto"/>).</summary>
public sealed record MetricSeries(MetricResolution Resolution, IReadOnlyList<MetricPoint> Points);

/// <summary>How long each tier is kept. Raw samples older than <see cref="Raw"/> become minute points; minute
/// points older than <see cref="Minute"/> become hour points; hour points older than <see cref="Hour"/> are deleted.</summary>
public sealed record MetricsRetention(TimeSpan Raw, TimeSpan Minute, TimeSpan Hour)
{
    /// <summary>1 h raw, 1 day of minutes, 30 days of hours.</summary>
    public static MetricsRetention Default { get; } = new(TimeSpan.FromHours(1), TimeSpan.FromDays(1), TimeSpan.FromDays(30));
}

/// <summary>What one compaction pass did, per tier: raw rows folded into minutes, minute rows folded into hours, hour rows dropped.</summary>
public sealed record MetricsCompaction(long RawCompacted, long MinuteCompacted, long HourExpired);
