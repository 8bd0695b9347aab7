using System.Text;
using System.Text.Json;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>Prints objects as a table or as the JSON the REST API returns.</summary>
public static class Output
{
    public static bool IsJson(string? format) => format == "json";

    public static void Json<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Pretty));

    private static readonly JsonSerializerOptions Pretty = new(WireJson.Options) { WriteIndented = true };

    /// <summary>A table with a header row; columns are padded to their widest cell.</summary>
    public static void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows)
    {
        var all = rows.Select(r => r.Select(c => c ?? "-").ToArray()).ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
        var sb = new StringBuilder();
        void Line(IReadOnlyList<string> cells)
        {
            for (var i = 0; i < cells.Count; i++)
            {
                sb.Append(i == cells.Count - 1 ? cells[i] : cells[i].PadRight(widths[i] + 2));
            }
            sb.AppendLine();
        }
        Line(headers);
        foreach (var r in all)
        {
            Line(r);
        }
        Console.Out.Write(sb.ToString());
    }

    /// <summary>
    /// Prints objects: as JSON (one object when <paramref name="single"/>, else an array — the API's
    /// shapes), or as a table of <paramref name="headers"/> and one <paramref name="row"/> per object.
    /// </summary>
    public static void Objects<T>(IReadOnlyList<T> list, string? format, bool single, IReadOnlyList<string> headers, Func<T, string?[]> row)
    {
        if (IsJson(format))
        {
            if (single)
            {
                Json(list[0]);
            }
            else
            {
                Json(list);
            }
            return;
        }
        Table(headers, list.Select(row));
    }

    /// <summary>Key/value pairs of one object.</summary>
    public static void Fields(IEnumerable<(string Key, string? Value)> fields)
    {
        var list = fields.ToList();
        var w = list.Max(f => f.Key.Length);
        foreach (var (k, v) in list)
        {
            Console.Out.WriteLine($"{k.PadRight(w)}  {v ?? "-"}");
        }
    }

    public static void Server(ServerDto s, string? format)
    {
        if (IsJson(format))
        {
            Json(s);
            return;
        }
        Fields([
            ("id", s.Id), ("name", s.Name), ("vm_state", s.VmState), ("task", s.Task), ("power_state", s.PowerState),
            ("host", s.HostName ?? s.HostId), ("flavor_id", s.FlavorId), ("image_id", s.ImageId),
            ("vcpus", s.Vcpus.ToString(Inv)), ("ram_mib", s.RamMib.ToString(Inv)), ("disk_gib", s.DiskGib.ToString(Inv)),
            ("forwards", s.Forwards.Count == 0 ? null : string.Join(", ", s.Forwards.Select(f => $"127.0.0.1:{f.HostPort}->{f.GuestPort}"))),
            ("storage_pool", s.StoragePool),
            ("migration", s.Migration is { } m ? Migration(m) : null),
            ("fault", s.Fault), ("created_at", s.CreatedAt.ToString("u", Inv)),
        ]);
    }

    /// <summary>One line of a migration's progress: phase, bytes, dirty rate, expected downtime.</summary>
    public static string Migration(MigrationDto m)
    {
        var pct = m.TotalBytes > 0 ? $" {100.0 * Math.Min(m.TransferredBytes, m.TotalBytes) / m.TotalBytes:0}%" : "";
        return $"{m.Kind} {m.Phase} ({m.Status}){pct} {m.TransferredBytes / 1048576.0:0.0}/{m.TotalBytes / 1048576.0:0.0} MiB, " +
            $"dirty {m.DirtyRateBytesPerSecond / 1048576.0:0.0} MiB/s, expected downtime {m.ExpectedDowntimeMs} ms";
    }

    public static readonly IFormatProvider Inv = System.Globalization.CultureInfo.InvariantCulture;
}
