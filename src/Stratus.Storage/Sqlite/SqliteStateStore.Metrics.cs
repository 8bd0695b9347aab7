using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Stratus.Storage.Sqlite;

// The metric time series (table metric_samples, migration 0007): raw samples, minute and hour tiers in one
// table keyed by (kind, object, resolution, ts). Times are Unix milliseconds.
public sealed partial class SqliteStateStore
{
    private const string MetricCols = "kind,object_id,resolution,ts,samples,cpu_percent,cpu_max,memory_used_mib,memory_max_mib,disk_read_bps,disk_write_bps,net_rx_bps,net_tx_bps,disk_used_gib";

    /// <summary>Most rows in one INSERT (9 parameters a row stays far below SQLite's 32,766-parameter limit).</summary>
    private const int MetricRowsPerInsert = 500;

    /// <summary>The INSERT text per row count, so a steady fleet reuses the same few strings.</summary>
    private static readonly ConcurrentDictionary<int, string> MetricInsertSql = new();

    public Task AppendMetricsAsync(HostMetricsRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var ts = record.At.ToUnixTimeMilliseconds();
        var rows = new List<(int Kind, string Id, MetricValues V)>(record.Servers.Count + 1) { (0, record.Host.ToString(), record.Values) };
        foreach (var (id, v) in record.Servers)
        {
            rows.Add((1, id.ToString(), v));
        }
        return WriteAsync(async (c, tx) =>
        {
            for (var start = 0; start < rows.Count; start += MetricRowsPerInsert)
            {
                var n = Math.Min(MetricRowsPerInsert, rows.Count - start);
                await using var cmd = Cmd(c, tx, MetricInsertSql.GetOrAdd(n, BuildMetricInsert));
                cmd.Parameters.AddWithValue("$ts", ts);
                for (var i = 0; i < n; i++)
                {
                    var (kind, id, v) = rows[start + i];
                    var p = cmd.Parameters;
                    p.AddWithValue(P("k", i), kind);
                    p.AddWithValue(P("o", i), id);
                    p.AddWithValue(P("c", i), Finite(v.CpuPercent));
                    p.AddWithValue(P("m", i), v.MemoryUsedMib);
                    p.AddWithValue(P("r", i), v.DiskReadBytesPerSecond);
                    p.AddWithValue(P("w", i), v.DiskWriteBytesPerSecond);
                    p.AddWithValue(P("x", i), v.NetRxBytesPerSecond);
                    p.AddWithValue(P("t", i), v.NetTxBytesPerSecond);
                    p.AddWithValue(P("u", i), v.DiskUsedGib);
                }
                await cmd.ExecuteNonQueryAsync(cancellationToken);
            }
            return 0;
        }, cancellationToken);
    }

    private static string P(string prefix, int i) => string.Create(CultureInfo.InvariantCulture, $"${prefix}{i}");

    private static double Finite(double d) => double.IsFinite(d) ? d : 0;

    private static string BuildMetricInsert(int rows)
    {
        var sb = new StringBuilder($"INSERT OR REPLACE INTO metric_samples({MetricCols}) VALUES ");
        for (var i = 0; i < rows; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? "" : ",")}($k{i},$o{i},0,$ts,1,$c{i},$c{i},$m{i},$m{i},$r{i},$w{i},$x{i},$t{i},$u{i})");
        }
        return sb.ToString();
    }

    public Task<MetricSeries> QueryMetricsAsync(MetricSeriesQuery query, CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        ArgumentNullException.ThrowIfNull(query);
        var from = query.From.ToUnixTimeMilliseconds();
        var to = query.To.ToUnixTimeMilliseconds();
        var resolution = query.Resolution;
        if (resolution == MetricResolution.Auto)
        {
            await using var probe = c.CreateCommand();
            probe.CommandText = """
                SELECT EXISTS(SELECT 1 FROM metric_samples WHERE kind=$k AND object_id=$o AND resolution=3600 AND ts >= $fh AND ts < $to),
                       EXISTS(SELECT 1 FROM metric_samples WHERE kind=$k AND object_id=$o AND resolution=60 AND ts >= $fm AND ts < $to)
                """;
            BindSeries(probe, query, to);
            probe.Parameters.AddWithValue("$fh", Floor(from, 3600_000));
            probe.Parameters.AddWithValue("$fm", Floor(from, 60_000));
            await using var r = await probe.ExecuteReaderAsync(cancellationToken);
            await r.ReadAsync(cancellationToken);
            resolution = r.GetInt64(0) != 0 ? MetricResolution.Hour : r.GetInt64(1) != 0 ? MetricResolution.Minute : MetricResolution.Raw;
        }
        await using var cmd = c.CreateCommand();
        if (resolution == MetricResolution.Raw)
        {
            cmd.CommandText = """
                SELECT ts,cpu_percent,cpu_max,memory_used_mib,memory_max_mib,disk_read_bps,disk_write_bps,net_rx_bps,net_tx_bps,disk_used_gib,samples
                FROM metric_samples WHERE kind=$k AND object_id=$o AND resolution=0 AND ts >= $from AND ts < $to ORDER BY ts
                """;
            cmd.Parameters.AddWithValue("$from", from);
        }
        else
        {
            var bucket = (long)resolution * 1000;
            var tiers = resolution == MetricResolution.Minute ? "0,60" : "0,60,3600";
            cmd.CommandText = $"""
                SELECT (ts / $b) * $b AS bucket, {Weighted("cpu_percent")}, MAX(cpu_max), {Weighted("memory_used_mib")}, MAX(memory_max_mib),
                  {Weighted("disk_read_bps")}, {Weighted("disk_write_bps")}, {Weighted("net_rx_bps")}, {Weighted("net_tx_bps")}, {Weighted("disk_used_gib")}, SUM(samples)
                FROM metric_samples WHERE kind=$k AND object_id=$o AND resolution IN ({tiers}) AND ts >= $from AND ts < $to
                GROUP BY bucket ORDER BY bucket
                """;
            cmd.Parameters.AddWithValue("$b", bucket);
            cmd.Parameters.AddWithValue("$from", Floor(from, bucket));
        }
        BindSeries(cmd, query, to);
        var points = new List<MetricPoint>();
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken))
        {
            while (await r.ReadAsync(cancellationToken))
            {
                points.Add(new MetricPoint(DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0)), r.GetDouble(1), r.GetDouble(2),
                    Round(r.GetDouble(3)), Round(r.GetDouble(4)), Round(r.GetDouble(5)), Round(r.GetDouble(6)), Round(r.GetDouble(7)), Round(r.GetDouble(8)),
                    Round(r.GetDouble(9)), r.GetInt64(10)));
            }
        }
        return new MetricSeries(resolution, points);
    }, cancellationToken);

    private static string Weighted(string column) => $"SUM({column} * samples) / SUM(samples)";

    private static void BindSeries(SqliteCommand cmd, MetricSeriesQuery q, long to)
    {
        cmd.Parameters.AddWithValue("$k", (int)q.Kind);
        cmd.Parameters.AddWithValue("$o", q.ObjectId.ToString("D"));
        cmd.Parameters.AddWithValue("$to", to);
    }

    private static long Floor(long ms, long bucket) => ms >= 0 ? ms / bucket * bucket : ((ms - bucket + 1) / bucket) * bucket;

    private static long Round(double d) => (long)Math.Round(d, MidpointRounding.AwayFromZero);

    public async Task<MetricsCompaction> CompactMetricsAsync(DateTimeOffset now, MetricsRetention retention, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(retention);
        var nowMs = now.ToUnixTimeMilliseconds();
        var raw = await CompactTierAsync(0, 60, Floor(nowMs - (long)retention.Raw.TotalMilliseconds, 60_000), cancellationToken);
        var minute = await CompactTierAsync(60, 3600, Floor(nowMs - (long)retention.Minute.TotalMilliseconds, 3600_000), cancellationToken);
        var expired = await WriteAsync(async (c, tx) =>
        {
            await using var del = Cmd(c, tx, "DELETE FROM metric_samples WHERE resolution=3600 AND ts < $b");
            del.Parameters.AddWithValue("$b", nowMs - (long)retention.Hour.TotalMilliseconds);
            return (long)await del.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
        return new MetricsCompaction(raw, minute, expired);
    }

    /// <summary>
    /// Folds every row of tier <paramref name="fine"/> older than <paramref name="boundary"/> (a multiple of the coarse
    /// bucket) into tier <paramref name="coarse"/> and deletes it, in one transaction. A bucket that already exists (a
    /// late sample) is merged by sample count, never overwritten or counted twice.
    /// </summary>
    private Task<long> CompactTierAsync(int fine, int coarse, long boundary, CancellationToken ct) => WriteAsync(async (c, tx) =>
    {
        await using (var agg = Cmd(c, tx, $"""
            INSERT INTO metric_samples({MetricCols})
            SELECT kind, object_id, $coarse, (ts / $b) * $b, SUM(samples), {Weighted("cpu_percent")}, MAX(cpu_max), {Weighted("memory_used_mib")}, MAX(memory_max_mib),
              {Weighted("disk_read_bps")}, {Weighted("disk_write_bps")}, {Weighted("net_rx_bps")}, {Weighted("net_tx_bps")}, {Weighted("disk_used_gib")}
            FROM metric_samples WHERE resolution=$fine AND ts < $boundary
            GROUP BY kind, object_id, (ts / $b) * $b
            ON CONFLICT(kind, object_id, resolution, ts) DO UPDATE SET
              cpu_percent = {Merge("cpu_percent")},
              cpu_max = MAX(cpu_max, excluded.cpu_max),
              memory_used_mib = {Merge("memory_used_mib")},
              memory_max_mib = MAX(memory_max_mib, excluded.memory_max_mib),
              disk_read_bps = {Merge("disk_read_bps")},
              disk_write_bps = {Merge("disk_write_bps")},
              net_rx_bps = {Merge("net_rx_bps")},
              net_tx_bps = {Merge("net_tx_bps")},
              disk_used_gib = {Merge("disk_used_gib")},
              samples = samples + excluded.samples
            """))
        {
            agg.Parameters.AddWithValue("$coarse", coarse);
            agg.Parameters.AddWithValue("$b", coarse * 1000L);
            agg.Parameters.AddWithValue("$fine", fine);
            agg.Parameters.AddWithValue("$boundary", boundary);
            await agg.ExecuteNonQueryAsync(ct);
        }
        await using var del = Cmd(c, tx, "DELETE FROM metric_samples WHERE resolution=$fine AND ts < $boundary");
        del.Parameters.AddWithValue("$fine", fine);
        del.Parameters.AddWithValue("$boundary", boundary);
        return (long)await del.ExecuteNonQueryAsync(ct);
    }, ct);

    // In an upsert's SET every column names the stored row (before the update), excluded.* the incoming bucket.
    private static string Merge(string column) => $"({column} * samples + excluded.{column} * excluded.samples) / (samples + excluded.samples)";
}
