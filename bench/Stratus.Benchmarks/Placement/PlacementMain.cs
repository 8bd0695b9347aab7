using Stratus.Simulator.Placement;

namespace Stratus.Benchmarks.Placement;

/// <summary>
/// Console entry of the placement scale scenarios (see <see cref="PlacementBenchCommand"/> for the
/// arguments): <c>bench placement --hosts 10000 --profile spread --workload azure -o json</c>.
/// </summary>
public static class PlacementMain
{
    /// <summary>Runs one scenario; returns the process exit code (0 ok, 1 invariant violated, 2 bad arguments).</summary>
    public static Task<int> RunAsync(string[] args, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(PlacementBenchCommand.Run(args, Console.Out, Console.Error));
    }
}
