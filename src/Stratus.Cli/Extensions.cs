using System.CommandLine;
using Stratus.Simulator.Placement;

namespace Stratus.Cli;

/// <summary>Local verbs that run parts of Stratus in this process (bench, simulate).</summary>
public static class Extensions
{
    public static IEnumerable<Command> Commands()
    {
        var bench = new Command("bench", "Run a benchmark scenario on this machine");
        var args = new Argument<string[]>("args") { Arity = ArgumentArity.ZeroOrMore, Description = "Scenario options (see `bench placement --help`)" };
        var placement = new Command("placement",
            "Replay a real workload through the production scheduler: [--hosts N] [--profile spread|pack|energy] [--workload azure|alibaba] " +
            "[--placers N] [--anti-affinity] [--gpu] [--order size|trace] [--sample N] [--arrivals N] [--repack-peak] [--data DIR] [-o json|table]") { args };
        placement.TreatUnmatchedTokensAsErrors = false;
        placement.SetAction(r =>
        {
            var rest = (r.GetValue(args) ?? []).Concat(r.UnmatchedTokens).ToArray();
            if (!rest.Contains("--data") && Environment.GetEnvironmentVariable("STRATUS_HOME") is { Length: > 0 } home)
            {
                rest = [.. rest, "--data", Path.Combine(home, "..", "shared", "data")];
            }
            return PlacementBenchCommand.Run(rest, Console.Out, Console.Error);
        });
        bench.Subcommands.Add(placement);
        yield return bench;

        var simArgs = new Argument<string[]>("args") { Arity = ArgumentArity.OneOrMore, Description = "SCENARIO.json [-o json|table] [--data DIR] [--out DIR]" };
        var simulate = new Command("simulate", "Run a trace-driven datacenter simulation with the production scheduler and consolidation code") { simArgs };
        simulate.TreatUnmatchedTokensAsErrors = false;
        simulate.SetAction((r, ct) =>
        {
            var rest = (r.GetValue(simArgs) ?? []).Concat(r.UnmatchedTokens).ToArray();
            if (!rest.Contains("--data") && Environment.GetEnvironmentVariable("STRATUS_HOME") is { Length: > 0 } home)
            {
                rest = [.. rest, "--data", Path.GetFullPath(Path.Combine(home, "..", "shared", "data"))];
            }
            return Stratus.Simulator.Cli.SimulateMain.RunAsync(rest, cancellationToken: ct);
        });
        yield return simulate;

        var agentArgs = new Argument<string[]>("args") { Arity = ArgumentArity.ZeroOrMore, Description = "--controller URL --data-dir DIR [--name N] [--token T] [--driver qemu|simulated] [--shared-pool DIR] [--hollow N]" };
        var agent = new Command("agent", "Run a host agent in the foreground, as on another server: it dials the controller and serves its VMs") { agentArgs };
        agent.TreatUnmatchedTokensAsErrors = false;
        agent.SetAction(async (r, ct) =>
        {
            var exe = Environment.GetEnvironmentVariable("STRATUS_AGENT_PATH") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "stratus-agent");
            var psi = new System.Diagnostics.ProcessStartInfo(exe) { UseShellExecute = false };
            foreach (var a in (r.GetValue(agentArgs) ?? []).Concat(r.UnmatchedTokens))
            {
                psi.ArgumentList.Add(a);
            }
            using var proc = System.Diagnostics.Process.Start(psi)!;
            await proc.WaitForExitAsync(CancellationToken.None);
            return proc.ExitCode;
        });
        yield return agent;
    }
}
