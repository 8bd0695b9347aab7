using System.Globalization;
using System.Text.Json;

namespace Stratus.Simulator.Placement;

/// <summary>
/// The command line of the placement scale scenarios, shared by <c>./stratus bench placement</c>
/// and the benchmark console:
/// <c>[placement] [--hosts N] [--profile spread|pack|energy] [--workload azure|alibaba]
/// [--placers N] [--anti-affinity] [--gpu] [--order size|trace] [--sample N] [--arrivals N]
/// [--cpu-ratio R] [--repack-peak] [--data DIR] [-o json|table]</c>.
/// </summary>
public static class PlacementBenchCommand
{
    /// <summary>
    /// Parses <paramref name="args"/>, runs the scenario and prints one JSON object (or a two-column
    /// table) on <paramref name="stdout"/>. Returns 0, 1 when an invariant was violated, 2 for bad
    /// arguments (one line on <paramref name="stderr"/>).
    /// </summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        PlacementBenchOptions o;
        string output;
        try
        {
            (o, output) = Parse(args);
            o.Validate();
        }
        catch (ArgumentException e)
        {
            stderr.WriteLine($"bench placement: {e.Message}");
            return 2;
        }
        PlacementBenchResult result;
        try
        {
            result = PlacementBench.Run(o);
        }
        catch (IOException e)
        {
            stderr.WriteLine($"bench placement: {e.Message}");
            return 2;
        }
        if (output == "json")
        {
            stdout.WriteLine(result.ToJson());
        }
        else
        {
            using var doc = JsonDocument.Parse(result.ToJson());
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                stdout.WriteLine($"{p.Name,-26} {p.Value}");
            }
        }
        return result.InvariantViolations == 0 ? 0 : 1;
    }

    /// <summary>Parses the arguments into options and the output format; throws <see cref="ArgumentException"/> on a bad one.</summary>
    public static (PlacementBenchOptions Options, string Output) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var o = new PlacementBenchOptions();
        var output = "json";
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            int NextInt() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name} needs an integer");
            switch (name)
            {
                case "placement" when i == 0:
                    break;
                case "--hosts":
                    o = o with { Hosts = NextInt() };
                    break;
                case "--profile":
                    o = o with { Profile = Next() };
                    break;
                case "--workload":
                    o = o with { Workload = Next() };
                    break;
                case "--placers":
                    o = o with { Placers = NextInt() };
                    break;
                case "--arrivals":
                    o = o with { Arrivals = NextInt() };
                    break;
                case "--sample":
                    o = o with { SampleSize = NextInt() };
                    break;
                case "--order":
                    o = o with { Order = Next() };
                    break;
                case "--cpu-ratio":
                    o = o with
                    {
                        CpuAllocationRatio = double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && r > 0
                            ? r
                            : throw new ArgumentException("--cpu-ratio needs a positive number"),
                    };
                    break;
                case "--data":
                    o = o with { DataDir = Next() };
                    break;
                case "--anti-affinity":
                    o = o with { AntiAffinity = true };
                    break;
                case "--gpu":
                    o = o with { Gpu = true };
                    break;
                case "--repack-peak":
                    o = o with { RepackPeak = true };
                    break;
                case "-o":
                case "--output":
                    output = Next();
                    if (output is not ("json" or "table"))
                    {
                        throw new ArgumentException("-o must be json or table");
                    }
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{name}'");
            }
        }
        return (o, output);
    }
}
