using System.Globalization;

namespace Stratus.Simulator.Traces;

/// <summary>One Azure VM flavour: <c>flav_map.txt</c> maps a letter to ⟨vCPUs, memory GB⟩.</summary>
/// <param name="Index">Position in the flavour map (0-based), handy for per-flavour counters.</param>
public sealed record AzureFlavor(char Code, int Index, int Vcpus, long MemoryMib);

/// <summary>One VM arrival of the Azure 2017 (Resource Central V1) flavour trace.</summary>
/// <param name="Time">Arrival time in seconds from the start of the trace file, spread evenly inside its 300 s bin.</param>
/// <param name="DurationSeconds">How long the VM lives (the midpoint of its duration bin); <see cref="long.MaxValue"/> when censored (still running at the trace's end).</param>
/// <param name="Batch">Global index of the tenant batch (VMs between two <c>|</c> on one line).</param>
public readonly record struct AzureArrival(int Index, long Time, AzureFlavor Flavor, long DurationSeconds, int Batch, int BatchSize);

/// <summary>
/// Reads the Azure V1 flavour traces as published in huaweicloud/trace_generation_rnn
/// (<c>resources/traces/v1.test.txt</c>, its durations <c>v1.test.c2591400.txt</c>, and
/// <c>resources/maps/flav_map.txt</c>, <c>v1.interval_map.txt</c>); see <c>INPUT.md</c> there.
/// </summary>
public static class AzureTrace
{
    /// <summary>Reads the flavour map (<c>vcpus,memGB letter</c> per line); memory GB are taken as GiB.</summary>
    public static IReadOnlyDictionary<char, AzureFlavor> ReadFlavors(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var map = new Dictionary<char, AzureFlavor>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            line = line.Trim();
            if (line.Length == 0)
            {
                continue;
            }
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var nums = parts[0].Split(',');
            var code = parts[1][0];
            var vcpus = int.Parse(nums[0], CultureInfo.InvariantCulture);
            var gb = double.Parse(nums[1], CultureInfo.InvariantCulture);
            map[code] = new AzureFlavor(code, map.Count, vcpus, (long)Math.Round(gb * 1024));
        }
        return map;
    }

    /// <summary>
    /// Reads the duration-bin map (<c>seconds bin</c> per line) into the representative duration of
    /// each bin: the midpoint of the seconds it covers (each row stands for a 300 s step).
    /// </summary>
    public static IReadOnlyDictionary<int, long> ReadIntervalMap(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var min = new Dictionary<int, long>();
        var max = new Dictionary<int, long>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2)
            {
                continue;
            }
            var seconds = long.Parse(parts[0], CultureInfo.InvariantCulture);
            var bin = int.Parse(parts[1], CultureInfo.InvariantCulture);
            if (!min.TryGetValue(bin, out var lo) || seconds < lo)
            {
                min[bin] = seconds;
            }
            if (!max.TryGetValue(bin, out var hi) || seconds > hi)
            {
                max[bin] = seconds;
            }
        }
        return min.ToDictionary(kv => kv.Key, kv => (kv.Value + max[kv.Key] + 300) / 2);
    }

    /// <summary>Reads the first <paramref name="maxArrivals"/> arrivals with their durations (the two files are read in lock step).</summary>
    public static List<AzureArrival> Read(TextReader flavors, TextReader durations, IReadOnlyDictionary<char, AzureFlavor> flavorMap,
        IReadOnlyDictionary<int, long> intervals, int maxArrivals)
    {
        ArgumentNullException.ThrowIfNull(flavors);
        ArgumentNullException.ThrowIfNull(durations);
        ArgumentNullException.ThrowIfNull(flavorMap);
        ArgumentNullException.ThrowIfNull(intervals);
        var result = new List<AzureArrival>(Math.Min(maxArrivals, 1 << 20));
        var batch = 0;
        string? fl;
        while (result.Count < maxArrivals && (fl = flavors.ReadLine()) is not null)
        {
            var dl = durations.ReadLine() ?? throw new InvalidDataException("the duration trace has fewer lines than the flavour trace");
            var fsp = fl.IndexOf(' ', StringComparison.Ordinal);
            var dsp = dl.IndexOf(' ', StringComparison.Ordinal);
            if (fsp < 0)
            {
                continue;
            }
            var time = long.Parse(fl.AsSpan(0, fsp), CultureInfo.InvariantCulture);
            var ftok = fl[(fsp + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries);
            var dtok = dl[(dsp + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries);
            if (ftok.Length != dtok.Length)
            {
                throw new InvalidDataException($"line at {time}: {ftok.Length} flavour tokens but {dtok.Length} duration tokens");
            }
            var vmsOnLine = ftok.Count(t => t != "|");
            var onLine = 0;
            var batchStart = result.Count;
            for (var k = 0; k < ftok.Length && result.Count < maxArrivals; k++)
            {
                if (ftok[k] == "|")
                {
                    FixBatchSize(result, batchStart, batch);
                    batch++;
                    batchStart = result.Count;
                    continue;
                }
                var flavor = flavorMap[ftok[k][0]];
                var d = dtok[k];
                var bin = int.Parse(d.AsSpan(1), CultureInfo.InvariantCulture);
                var duration = d[0] == 'C' ? long.MaxValue : intervals[bin];
                // Arrivals happened since the previous line (300 s earlier): spread them evenly over that bin.
                var at = time - 300 + (300L * (onLine + 1) / (vmsOnLine + 1));
                result.Add(new AzureArrival(result.Count, at, flavor, duration, batch, 0));
                onLine++;
            }
            FixBatchSize(result, batchStart, batch);
        }
        return result;
    }

    /// <summary>
    /// Reads from the data folder (<c>…/azure-v1-flavor-traces</c>): the first <paramref name="maxArrivals"/>
    /// arrivals of <c>v1.test.txt</c> with durations from <c>v1.test.c2591400.txt</c>.
    /// </summary>
    public static List<AzureArrival> ReadFolder(string azureDir, int maxArrivals = 100_000, string split = "v1.test", string durationSuffix = "c2591400")
    {
        var res = Path.Combine(azureDir, "resources");
        using var fm = File.OpenText(Path.Combine(res, "maps", "flav_map.txt"));
        using var im = File.OpenText(Path.Combine(res, "maps", "v1.interval_map.txt"));
        using var ft = File.OpenText(Path.Combine(res, "traces", split + ".txt"));
        using var dt = File.OpenText(Path.Combine(res, "traces", $"{split}.{durationSuffix}.txt"));
        return Read(ft, dt, ReadFlavors(fm), ReadIntervalMap(im), maxArrivals);
    }

    private static void FixBatchSize(List<AzureArrival> list, int start, int batch)
    {
        var size = list.Count - start;
        for (var i = start; i < list.Count; i++)
        {
            list[i] = list[i] with { Batch = batch, BatchSize = size };
        }
    }
}
