using Stratus.Benchmarks.ControlPlane;
using Stratus.Benchmarks.Migration;

// bench entry: `dotnet run -c Release --project bench/Stratus.Benchmarks -- <scenario> [options]`
// Scenarios: controlplane (create throughput, list latency, controller memory), claims, migration (live migration, raw QEMU vs driver).
return args.FirstOrDefault() switch
{
    "controlplane" => await ControlPlaneBench.RunAsync(args[1..]),
    "claims" => await ClaimPathBench.RunAsync(args[1..]),
    "migration" => await MigrationBench.RunAsync(args[1..]),
    "auth" => await Stratus.Benchmarks.Auth.AuthBench.RunAsync(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Stratus.Benchmarks controlplane [--servers N] [--clients N] [--hosts N] [--pages N]");
    Console.Error.WriteLine("       Stratus.Benchmarks claims [--servers N] [--hosts N] [--placers N]");
    Console.Error.WriteLine("       Stratus.Benchmarks auth [--requests N]   (what authentication adds to a request; login cost)");
    Console.Error.WriteLine("       Stratus.Benchmarks migration [--runs N] [--memory MIB] [--guest DIR]   (raw QEMU vs QemuDriver live migration)");
    return 2;
}
