using System.Text.Json;
using System.Text.Json.Serialization;

namespace Stratus.Simulator.Scenarios;

/// <summary>How faithfully the run follows CloudSim 3.0.3.</summary>
public enum SimulationMode
{
    /// <summary>CloudSim's model and quirks: idle hosts draw 0 W, reservations drop, unlimited migrations.</summary>
    CloudSim,

    /// <summary>Memory reserved, idle-but-on hosts draw idle power, power-on delay and energy, migrations limited per host.</summary>
    Realistic,
}

/// <summary>A host group of a scenario: <see cref="Count"/> machines of one type.</summary>
public sealed record HostGroupSpec
{
    /// <summary>Machine type name: "HP ProLiant ML110 G4" or "HP ProLiant ML110 G5", or a custom name with the fields below.</summary>
    public string Type { get; init; } = "HP ProLiant ML110 G5";

    /// <summary>Number of hosts.</summary>
    public int Count { get; init; }

    /// <summary>Cores (custom types).</summary>
    public int? Pes { get; init; }

    /// <summary>MIPS per core (custom types).</summary>
    public double? MipsPerPe { get; init; }

    /// <summary>Memory in MB (custom types; overrides a named type's 4,096 MB when given).</summary>
    public int? RamMb { get; init; }

    /// <summary>Watts at 0, 10, …, 100 % (custom types).</summary>
    public double[]? PowerWatts { get; init; }
}

/// <summary>A VM type: single vCPU with a MIPS rating and memory.</summary>
public sealed record VmTypeSpec
{
    /// <summary>MIPS of the vCPU.</summary>
    public double Mips { get; init; }

    /// <summary>Memory in MB.</summary>
    public int RamMb { get; init; }
}

/// <summary>Where VM demand comes from.</summary>
public sealed record WorkloadSpec
{
    /// <summary>"planetlab".</summary>
    public string Type { get; init; } = "planetlab";

    /// <summary>Trace folders (one day each), relative to the scenario file or to the data directory.</summary>
    public string[] Traces { get; init; } = [];

    /// <summary>Use CloudSim's recorded file order (<c>cloudsim_listFiles_order_&lt;day&gt;.txt</c> beside the day folder).</summary>
    public bool CloudSimOrder { get; init; } = true;

    /// <summary>Number of VMs; traces are reused cyclically when larger than the files available. Null: one VM per file.</summary>
    public int? Vms { get; init; }
}

/// <summary>Policy settings: which planner and its parameters.</summary>
public sealed record PolicySpec
{
    /// <summary>"lr-mmt", "lrr-mmt", "thr-mmt", "iqr-mmt", "mad-mmt", any "detector-selector" pair (selectors mmt, mc, mu, rs), "stratus", or "none".</summary>
    public string Name { get; init; } = "lr-mmt";

    /// <summary>Safety parameter (LR, LRR, IQR, MAD) or threshold (THR).</summary>
    public double? Parameter { get; init; }

    /// <summary>Seed for random selection.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Stratus policy: target utilisation when packing (fraction).</summary>
    public double? Target { get; init; }

    /// <summary>Stratus policy: overload threshold on forecast demand (fraction).</summary>
    public double? Upper { get; init; }

    /// <summary>Stratus policy: hosts below this utilisation are evacuation candidates (fraction).</summary>
    public double? Lower { get; init; }

    /// <summary>Stratus policy: at most this many migrations per round.</summary>
    public int? Budget { get; init; }

    /// <summary>Stratus policy: a VM migrated within this many intervals is not moved again by evacuation.</summary>
    public int? Cooldown { get; init; }

    /// <summary>Stratus policy: CPU over-commitment ratio at initial placement (≥ 1).</summary>
    public double? InitialOvercommit { get; init; }
}

/// <summary>Realistic-mode parameters.</summary>
public sealed record RealisticSpec
{
    /// <summary>Concurrent migrations allowed into or out of one host per round.</summary>
    public int MaxMigrationsPerHost { get; init; } = 2;

    /// <summary>Seconds to power a host on (migrations to it wait).</summary>
    public double PowerOnSeconds { get; init; } = 120;

    /// <summary>Seconds at peak power charged when a host powers on.</summary>
    public double PowerOnPeakSeconds { get; init; } = 120;
}

/// <summary>A simulation scenario, read from a JSON file (snake_case keys).</summary>
public sealed record Scenario
{
    /// <summary>Scenario name (used in output file names).</summary>
    public string Name { get; init; } = "scenario";

    /// <summary>Model fidelity.</summary>
    public SimulationMode Mode { get; init; } = SimulationMode.CloudSim;

    /// <summary>Host groups; hosts are interleaved round-robin across groups (CloudSim's i mod types).</summary>
    public HostGroupSpec[] Hosts { get; init; } = [];

    /// <summary>VM types, assigned in equal contiguous blocks of the trace order (CloudSim's mapping).</summary>
    public VmTypeSpec[] VmTypes { get; init; } = [];

    /// <summary>Workload.</summary>
    public WorkloadSpec Workload { get; init; } = new();

    /// <summary>Scheduling interval in seconds.</summary>
    public double IntervalSeconds { get; init; } = 300;

    /// <summary>Simulated duration in seconds.</summary>
    public double DurationSeconds { get; init; } = 86_400;

    /// <summary>Host network bandwidth in CloudSim's units (1,000,000 = 1 Gbit/s); migrations use half.</summary>
    public long HostBandwidth { get; init; } = 1_000_000;

    /// <summary>Per-VM bandwidth reservation in the same units.</summary>
    public long VmBandwidth { get; init; } = 100_000;

    /// <summary>
    /// Retire a VM whose demand reaches exactly 0, as CloudSim 3.0.3 does ("completed" VMs).
    /// Null: true in CloudSim mode, false in realistic mode.
    /// </summary>
    public bool? RetireIdleVms { get; init; }

    /// <summary>
    /// Demand a VM asks for at initial placement: "full" (its whole MIPS, CloudSim's behaviour) or
    /// "first_sample" (its trace's first sample, for fleets sized to real demand).
    /// </summary>
    public string InitialDemand { get; init; } = "full";

    /// <summary>Consolidation policy.</summary>
    public PolicySpec Policy { get; init; } = new();

    /// <summary>Realistic-mode parameters (ignored in CloudSim mode).</summary>
    public RealisticSpec Realistic { get; init; } = new();

    /// <summary>JSON options used for scenarios and results: snake_case, enums as snake_case strings.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Reads and validates a scenario file; throws <see cref="InvalidDataException"/> listing every problem.</summary>
    public static Scenario Load(string path)
    {
        var scenario = JsonSerializer.Deserialize<Scenario>(File.ReadAllText(path), JsonOptions)
            ?? throw new InvalidDataException($"{path}: empty scenario");
        var errors = scenario.Validate();
        if (errors.Count > 0)
        {
            throw new InvalidDataException($"{path}: " + string.Join("; ", errors));
        }
        return scenario;
    }

    /// <summary>Every problem with the scenario (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Hosts.Length == 0 || Hosts.Any(h => h.Count <= 0))
        {
            errors.Add("hosts: at least one group with count > 0");
        }
        if (VmTypes.Length == 0 || VmTypes.Any(v => v.Mips <= 0 || v.RamMb <= 0))
        {
            errors.Add("vm_types: at least one type with mips > 0 and ram_mb > 0");
        }
        if (Workload.Traces.Length == 0)
        {
            errors.Add("workload.traces: at least one trace folder");
        }
        if (InitialDemand is not ("full" or "first_sample"))
        {
            errors.Add("initial_demand must be \"full\" or \"first_sample\"");
        }
        if (IntervalSeconds <= 0)
        {
            errors.Add("interval_seconds must be > 0");
        }
        if (DurationSeconds <= 0)
        {
            errors.Add("duration_seconds must be > 0");
        }
        return errors;
    }
}
