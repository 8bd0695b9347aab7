using Stratus.Benchmarks.ControlPlane;

// bench entry: `dotnet run -c Release --project bench/Stratus.Benchmarks -- <scenario> [options]`
// Scenarios: controlplane (create throughput, list latency, controller memory).
return args.FirstOrDefault() switch
{
    "controlplane" => await ControlPlaneBench.RunAsync(args[1..]),
    "claims" => await ClaimPathBench.RunAsync(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Stratus.Benchmarks controlplane [--servers N] [--clients N] [--hosts N] [--pages N]");
    Console.Error.WriteLine("       Stratus.Benchmarks claims [--servers N] [--hosts N] [--placers N]");
    return 2;
}
