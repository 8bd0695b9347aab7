using System.Diagnostics;
using System.Globalization;
using System.Text;
using Stratus.Scheduler.Consolidation;
using Stratus.Simulator.Engine;
using Stratus.Simulator.Output;
using Stratus.Simulator.Scenarios;
using Stratus.Simulator.Traces;

namespace Stratus.Simulator;

/// <summary>
/// Runs a scenario file end to end: loads traces, builds hosts and VMs (CloudSim's mapping), runs
/// the discrete-event simulation and writes CSV and SVG outputs. Entry point for
/// <c>./stratus simulate</c>.
/// </summary>
public static class SimulationRunner
{
    /// <summary>Runs one scenario.</summary>
    /// <param name="scenarioPath">Scenario JSON file.</param>
    /// <param name="dataDir">Data directory against which trace folders are resolved (after the scenario's own folder); null: <c>../shared/data</c> from the repository root, found upwards from the scenario.</param>
    /// <param name="outputDir">Where to write CSV/SVG; null: no files.</param>
    /// <param name="startedAt">Start stamp for <c>elapsed_s</c> (e.g. the process start time); null: now.</param>
    public static SimulationResult Run(string scenarioPath, string? dataDir, string? outputDir = null, DateTime? startedAt = null)
    {
        var start = startedAt ?? DateTime.Now;
        var scenario = Scenario.Load(scenarioPath);
        var result = Run(scenario, Path.GetDirectoryName(Path.GetFullPath(scenarioPath))!, dataDir);
        if (outputDir is not null)
        {
            ResultWriter.Write(result, outputDir);
            result = result with { OutputDirectory = Path.GetFullPath(outputDir) };
        }
        return result with { ElapsedS = (DateTime.Now - start).TotalSeconds };
    }

    /// <summary>Runs an already loaded scenario; trace folders resolve against <paramref name="scenarioDir"/> then <paramref name="dataDir"/>.</summary>
    public static SimulationResult Run(Scenario scenario, string scenarioDir, string? dataDir)
    {
        var sw = Stopwatch.StartNew();
        var hosts = BuildHosts(scenario);
        var vms = BuildVms(scenario, scenarioDir, dataDir);
        var planner = PolicyFactory.Create(scenario.Policy);
        var sim = new DatacenterSimulation(hosts, vms, scenario.Mode, scenario.IntervalSeconds, scenario.DurationSeconds, planner,
            PolicyFactory.InitialDetector(scenario.Policy), scenario.Realistic, scenario.RetireIdleVms ?? scenario.Mode == SimulationMode.CloudSim,
            fullInitialDemand: scenario.InitialDemand == "full");
        var result = sim.Run(scenario.Name, scenario.Policy.Name);
        return result with { ElapsedS = sw.Elapsed.TotalSeconds };
    }

    /// <summary>Hosts interleaved across groups (host i gets group i mod groups while each group has hosts left), as CloudSim's helper builds them.</summary>
    public static IReadOnlyList<HostSpec> BuildHosts(Scenario scenario)
    {
        var bw = scenario.HostBandwidth;
        var specs = scenario.Hosts.Select(g => HostType(g, bw)).ToArray();
        var left = scenario.Hosts.Select(g => g.Count).ToArray();
        var result = new List<HostSpec>(left.Sum());
        while (left.Any(c => c > 0))
        {
            for (var g = 0; g < specs.Length; g++)
            {
                if (left[g] > 0)
                {
                    result.Add(specs[g]);
                    left[g]--;
                }
            }
        }
        return result;
    }

    /// <summary>VMs in trace order; VM type k covers the k-th of equal contiguous blocks (CloudSim: i / ceil(n / types)).</summary>
    public static IReadOnlyList<SimulatedVm> BuildVms(Scenario scenario, string scenarioDir, string? dataDir)
    {
        var traces = new List<double[]>();
        foreach (var folder in scenario.Workload.Traces)
        {
            var dir = ResolveData(folder, scenarioDir, dataDir);
            string? order = null;
            if (scenario.Workload.CloudSimOrder)
            {
                var day = Path.GetFileName(dir.TrimEnd(Path.DirectorySeparatorChar));
                order = Path.Combine(Path.GetDirectoryName(dir.TrimEnd(Path.DirectorySeparatorChar))!, $"cloudsim_listFiles_order_{day}.txt");
            }
            traces.AddRange(PlanetLabTrace.LoadDay(dir, order).Select(t => t.Samples));
        }
        if (traces.Count == 0)
        {
            throw new InvalidDataException("the workload has no trace files");
        }
        var n = scenario.Workload.Vms ?? traces.Count;
        var types = scenario.VmTypes.Select((t, i) => new VmSpec($"type{i}", t.Mips, t.RamMb, scenario.VmBandwidth)).ToArray();
        var block = (int)Math.Ceiling((double)n / types.Length);
        var vms = new SimulatedVm[n];
        for (var i = 0; i < n; i++)
        {
            vms[i] = new SimulatedVm(types[Math.Min(i / block, types.Length - 1)], traces[i % traces.Count]);
        }
        return vms;
    }

    /// <summary>
    /// Finds a trace folder: absolute, relative to the scenario file, relative to the data directory,
    /// or under <c>../shared/data</c> beside the repository root (found above the scenario file or
    /// the current directory).
    /// </summary>
    public static string ResolveData(string folder, string scenarioDir, string? dataDir)
    {
        if (Path.IsPathRooted(folder))
        {
            return folder;
        }
        var candidates = new List<string> { Path.Combine(scenarioDir, folder) };
        if (dataDir is not null)
        {
            candidates.Add(Path.Combine(dataDir, folder));
        }
        foreach (var start in new[] { scenarioDir, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
                {
                    candidates.Add(Path.Combine(dir.FullName, "..", "shared", "data", folder));
                    break;
                }
            }
        }
        foreach (var c in candidates)
        {
            if (Directory.Exists(c))
            {
                return Path.GetFullPath(c);
            }
        }
        throw new DirectoryNotFoundException($"trace folder '{folder}' not found (looked in: {string.Join(", ", candidates)})");
    }

    /// <summary>A one-line human-readable summary table of a result.</summary>
    public static string FormatTable(SimulationResult r)
    {
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"scenario            {r.Scenario} ({r.Mode}, policy {r.Policy})");
        sb.AppendLine(ci, $"hosts / VMs         {r.Hosts} / {r.Vms}");
        sb.AppendLine(ci, $"energy              {r.EnergyKwh:F2} kWh (floor {r.EnergyFloorKwh:F1} kWh for the workload, {r.ServedFloorKwh:F1} kWh for the demand served)");
        sb.AppendLine(ci, $"migrations          {r.Migrations} ({r.MigrationsPerVmPerDay:F2} per VM per day)");
        sb.AppendLine(ci, $"SLAV                {r.SlavPct:F5} %  (SLATAH {r.SlatahPct:F2} %, PDM {r.PdmPct:F2} %)");
        sb.AppendLine(ci, $"ESV                 {r.Esv:E3}");
        sb.AppendLine(ci, $"active hosts (mean) {r.MeanActiveHosts:F1} (lower bound {r.MeanLowerBoundHosts:F1})");
        sb.AppendLine(ci, $"time                engine {r.EngineS:F2} s, elapsed {r.ElapsedS:F2} s");
        return sb.ToString();
    }

    private static HostSpec HostType(HostGroupSpec g, long bw)
    {
        if (g.PowerWatts is { } watts)
        {
            return new HostSpec(g.Type, g.Pes ?? 2, g.MipsPerPe ?? 2660, g.RamMb ?? 4096, bw, new SpecPowerModel(watts));
        }
        return g.Type switch
        {
            "HP ProLiant ML110 G4" => new HostSpec(g.Type, 2, 1860, g.RamMb ?? 4096, bw, SpecPowerModel.HpProLiantMl110G4),
            "HP ProLiant ML110 G5" => new HostSpec(g.Type, 2, 2660, g.RamMb ?? 4096, bw, SpecPowerModel.HpProLiantMl110G5),
            _ => throw new InvalidDataException($"unknown host type '{g.Type}' (give pes, mips_per_pe, ram_mb and power_watts)"),
        };
    }
}
