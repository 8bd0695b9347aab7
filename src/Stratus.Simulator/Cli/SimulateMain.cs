using System.Diagnostics;
using System.Text.Json;
using Stratus.Simulator.Scenarios;

namespace Stratus.Simulator.Cli;

/// <summary>
/// Console entry for <c>stratus simulate SCENARIO.json [-o json|table] [--data DIR] [--out DIR]</c>.
/// Prints a table (default) or one JSON object; returns 0 on success, 2 on bad arguments or input.
/// </summary>
public static class SimulateMain
{
    /// <summary>Runs the command.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null, CancellationToken cancellationToken = default)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        string? scenario = null, data = null, outDir = null;
        var format = "table";
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-o" or "--output" when i + 1 < args.Length:
                    format = args[++i];
                    break;
                case "--data" when i + 1 < args.Length:
                    data = args[++i];
                    break;
                case "--out" when i + 1 < args.Length:
                    outDir = args[++i];
                    break;
                default:
                    if (args[i].StartsWith('-') || scenario is not null)
                    {
                        stderr.WriteLine($"usage: stratus simulate SCENARIO.json [-o json|table] [--data DIR] [--out DIR] (unexpected '{args[i]}')");
                        return Task.FromResult(2);
                    }
                    scenario = args[i];
                    break;
            }
        }
        if (scenario is null)
        {
            stderr.WriteLine("usage: stratus simulate SCENARIO.json [-o json|table] [--data DIR] [--out DIR]");
            return Task.FromResult(2);
        }
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var start = Process.GetCurrentProcess().StartTime;
            var result = SimulationRunner.Run(scenario, data, outDir ?? Path.Combine("out", "simulate"), start);
            stdout.WriteLine(format == "json" ? JsonSerializer.Serialize(result, Scenario.JsonOptions) : SimulationRunner.FormatTable(result));
            return Task.FromResult(0);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or JsonException)
        {
            stderr.WriteLine($"simulate: {e.Message}");
            return Task.FromResult(2);
        }
    }
}
