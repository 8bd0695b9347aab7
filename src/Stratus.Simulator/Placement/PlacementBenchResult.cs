using System.Text.Json;
using System.Text.Json.Serialization;

namespace Stratus.Simulator.Placement;

/// <summary>The figures of one placement scenario run; <see cref="ToJson"/> prints them as one JSON object.</summary>
public sealed record PlacementBenchResult
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    [JsonPropertyName("workload")] public required string Workload { get; init; }
    [JsonPropertyName("profile")] public required string Profile { get; init; }
    [JsonPropertyName("hosts")] public required int Hosts { get; init; }
    [JsonPropertyName("placers")] public required int Placers { get; init; }
    [JsonPropertyName("anti_affinity")] public required bool AntiAffinity { get; init; }
    [JsonPropertyName("gpu")] public bool Gpu { get; init; }
    /// <summary>Decisions attempted (arrivals or pods).</summary>
    [JsonPropertyName("requests")] public required int Requests { get; init; }
    [JsonPropertyName("placed")] public required int Placed { get; init; }
    [JsonPropertyName("unplaced")] public required int Unplaced { get; init; }
    /// <summary>Placements (decision + claim, with departures processed in between) per wall-clock second.</summary>
    [JsonPropertyName("placements_per_second")] public required double PlacementsPerSecond { get; init; }
    [JsonPropertyName("p50_us")] public required double P50Us { get; init; }
    [JsonPropertyName("p99_us")] public required double P99Us { get; init; }
    [JsonPropertyName("max_us")] public required double MaxUs { get; init; }
    /// <summary>Non-empty hosts (azure: at the moment the most VMs were live; alibaba: at the end).</summary>
    [JsonPropertyName("hosts_used")] public required int HostsUsed { get; init; }
    [JsonPropertyName("lower_bound")] public required int LowerBound { get; init; }
    [JsonPropertyName("lower_bound_method")] public required string LowerBoundMethod { get; init; }
    [JsonPropertyName("packing_ratio")] public double PackingRatio => LowerBound == 0 ? 0 : Math.Round((double)HostsUsed / LowerBound, 4);
    /// <summary>The profile's sampling limit (0 = every feasible host scored).</summary>
    [JsonPropertyName("sample_size")] public required int SampleSize { get; init; }
    /// <summary>Mean hosts scored per decision.</summary>
    [JsonPropertyName("mean_scored")] public required double MeanScored { get; init; }
    [JsonPropertyName("mean_examined")] public required double MeanExamined { get; init; }
    [JsonPropertyName("conflicts")] public required long Conflicts { get; init; }
    [JsonPropertyName("retries")] public required long Retries { get; init; }
    [JsonPropertyName("peak_live")] public int PeakLive { get; init; }
    [JsonPropertyName("peak_repack_hosts_used")] public int? PeakRepackHostsUsed { get; init; }
    [JsonPropertyName("peak_repack_lower_bound")] public int? PeakRepackLowerBound { get; init; }
    [JsonPropertyName("peak_repack_ratio")] public double? PeakRepackRatio { get; init; }
    [JsonPropertyName("invariant_violations")] public required int InvariantViolations { get; init; }
    [JsonPropertyName("elapsed_s")] public required double ElapsedSeconds { get; init; }
    /// <summary>CPU time this process spent in the replay (all threads); on a shared machine, placements per CPU-second is steadier than per wall-clock second.</summary>
    [JsonPropertyName("cpu_s")] public double CpuSeconds { get; init; }
    [JsonPropertyName("placements_per_cpu_second")] public double PlacementsPerCpuSecond => CpuSeconds <= 0 ? 0 : Math.Round(Placed / CpuSeconds, 0);
    [JsonPropertyName("first_refusal")] public string? FirstRefusal { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}
