using System.Globalization;
using Stratus.Simulator.Placement;

namespace Stratus.Benchmarks.Placement;

/// <summary>
/// Console entry of the placement scale scenarios:
/// <c>bench placement [--hosts N] [--profile spread|pack|energy] [--workload azure|alibaba]
/// [--placers 1|2|4] [--anti-affinity] [--gpu] [--order trace|size] [--sample N] [--arrivals N] [--repack-peak]
/// [--data DIR] [-o json|table]</c>. Prints one JSON object (or a two-column table) on stdout.
/// </summary>
public static class PlacementMain
{
    /// <summary>Runs one scenario from command-line arguments; returns the process exit code (2 for bad arguments).</summary>
    public static Task<int> RunAsync(string[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        PlacementBenchOptions o;
        string output;
        try
        {
            (o, output) = Parse(args);
            o.Validate();
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"bench placement: {e.Message}");
            return Task.FromResult(2);
        }
        cancellationToken.ThrowIfCancellationRequested();
        var result = PlacementBench.Run(o);
        if (output == "json")
        {
            Console.WriteLine(result.ToJson());
        }
        else
        {
            using var doc = System.Text.Json.JsonDocument.Parse(result.ToJson());
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                Console.WriteLine($"{p.Name,-24} {p.Value}");
            }
        }
        return Task.FromResult(result.InvariantViolations == 0 ? 0 : 1);
    }

    private static (PlacementBenchOptions, string) Parse(string[] args)
    {
        var o = new PlacementBenchOptions();
        var output = "json";
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{args[i - 1]} needs an integer");
            switch (args[i])
            {
                case "placement":
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
                case "--cpu-ratio":
                    o = o with { CpuAllocationRatio = double.Parse(Next(), CultureInfo.InvariantCulture) };
                    break;
                case "--order":
                    o = o with { Order = Next() };
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
                    throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }
        return (o, output);
    }
}
