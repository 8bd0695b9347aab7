using System.Globalization;

namespace Stratus.Simulator.Traces;

/// <summary>One node of the Alibaba openb GPU cluster trace.</summary>
/// <param name="GpuMilli">GPUs in thousandths (8 GPUs = 8000).</param>
public readonly record struct AlibabaNode(string Name, long CpuMilli, long MemoryMib, long GpuMilli, string Model);

/// <summary>One pod of the Alibaba openb trace.</summary>
/// <param name="GpuMilli">Total GPU demand in thousandths: <c>num_gpu × gpu_milli</c> (a shared GPU asks for a fraction).</param>
/// <param name="CreationTime">Seconds from the trace start.</param>
public readonly record struct AlibabaPod(string Name, long CpuMilli, long MemoryMib, int NumGpu, long GpuMilli, long CreationTime, long DeletionTime);

/// <summary>
/// Reads the Alibaba cluster-trace-gpu-v2023 CSVs (<c>openb_node_list_all_node.csv</c>,
/// <c>openb_pod_list_default.csv</c>) by header name.
/// </summary>
public static class AlibabaTrace
{
    public static List<AlibabaNode> ReadNodes(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var (cols, rows) = Csv(reader);
        return rows.Select(r => new AlibabaNode(
            r[cols["sn"]],
            Long(r[cols["cpu_milli"]]),
            Long(r[cols["memory_mib"]]),
            Long(r[cols["gpu"]]) * 1000,
            cols.TryGetValue("model", out var m) && m < r.Length ? r[m] : "")).ToList();
    }

    public static List<AlibabaPod> ReadPods(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var (cols, rows) = Csv(reader);
        return rows.Select(r =>
        {
            var num = (int)Long(r[cols["num_gpu"]]);
            var milli = Long(r[cols["gpu_milli"]]);
            return new AlibabaPod(
                r[cols["name"]],
                Long(r[cols["cpu_milli"]]),
                Long(r[cols["memory_mib"]]),
                num,
                num * milli,
                Long(r[cols["creation_time"]]),
                Long(r[cols["deletion_time"]]));
        }).ToList();
    }

    /// <summary>Reads the default pod list and all nodes from the data folder (<c>…/alibaba-gpu-v2023</c>).</summary>
    public static (List<AlibabaNode> Nodes, List<AlibabaPod> Pods) ReadFolder(string alibabaDir,
        string nodes = "openb_node_list_all_node.csv", string pods = "openb_pod_list_default.csv")
    {
        using var n = File.OpenText(Path.Combine(alibabaDir, "csv", nodes));
        using var p = File.OpenText(Path.Combine(alibabaDir, "csv", pods));
        return (ReadNodes(n), ReadPods(p));
    }

    private static long Long(string s) => string.IsNullOrWhiteSpace(s) ? 0 : long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static (Dictionary<string, int> Columns, List<string[]> Rows) Csv(TextReader reader)
    {
        var header = reader.ReadLine() ?? throw new InvalidDataException("empty CSV");
        var cols = header.Split(',').Select((name, i) => (name.Trim(), i)).ToDictionary(t => t.Item1, t => t.i, StringComparer.Ordinal);
        var rows = new List<string[]>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Length > 0)
            {
                rows.Add(line.Split(','));
            }
        }
        return (cols, rows);
    }
}
