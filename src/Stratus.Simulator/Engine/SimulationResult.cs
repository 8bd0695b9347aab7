using System.Text.Json.Serialization;

namespace Stratus.Simulator.Engine;

/// <summary>One sample of the run's time series (taken at every scheduling round).</summary>
/// <param name="TimeS">Virtual time (s).</param>
/// <param name="ActiveHosts">Hosts drawing power (CloudSim mode: with utilisation &gt; 0).</param>
/// <param name="LowerBoundHosts">Analytic lower bound: total demand over the largest host's MIPS, rounded up.</param>
/// <param name="PowerW">Total power at that instant (W).</param>
/// <param name="SlaHostsPct">Active hosts whose VMs get less CPU than they ask for (%).</param>
/// <param name="Migrations">Migrations started at that round.</param>
public readonly record struct SeriesPoint(double TimeS, int ActiveHosts, int LowerBoundHosts, double PowerW, double SlaHostsPct, int Migrations);

/// <summary>
/// What a simulation run measured. Serialised with snake_case keys; percentages are in percent as
/// CloudSim prints them (SLAV 0.00432 means 0.00432 %).
/// </summary>
public sealed record SimulationResult
{
    /// <summary>Scenario name.</summary>
    public string Scenario { get; init; } = "";

    /// <summary>"cloud_sim" or "realistic".</summary>
    public string Mode { get; init; } = "";

    /// <summary>Policy name.</summary>
    public string Policy { get; init; } = "";

    /// <summary>Number of hosts.</summary>
    public int Hosts { get; init; }

    /// <summary>Number of VMs.</summary>
    public int Vms { get; init; }

    /// <summary>Energy drawn by the hosts (kWh).</summary>
    public double EnergyKwh { get; init; }

    /// <summary>Live migrations started.</summary>
    public int Migrations { get; init; }

    /// <summary>Migrations per VM per simulated day.</summary>
    public double MigrationsPerVmPerDay { get; init; }

    /// <summary>SLA violation: SLATAH × PDM, in percent.</summary>
    public double SlavPct { get; init; }

    /// <summary>SLA violation time per active host (%).</summary>
    public double SlatahPct { get; init; }

    /// <summary>Performance degradation due to migrations (%).</summary>
    public double PdmPct { get; init; }

    /// <summary>Energy × SLAV (kWh × fraction), Beloglazov &amp; Buyya's combined metric.</summary>
    public double Esv { get; init; }

    /// <summary>
    /// Analytic energy floor of the workload: every trace sample of every VM served for one interval
    /// at the most efficient host's peak watts per MIPS (kWh); 116.7 on PlanetLab 2011-03-03.
    /// </summary>
    public double EnergyFloorKwh { get; init; }

    /// <summary>
    /// The same floor over the demand actually served: CloudSim mode retires VMs whose demand reaches
    /// 0 (as CloudSim 3.0.3 does), so less than the workload is served there.
    /// </summary>
    public double ServedFloorKwh { get; init; }

    /// <summary>Mean active hosts over the rounds.</summary>
    public double MeanActiveHosts { get; init; }

    /// <summary>Mean analytic lower bound on hosts over the rounds.</summary>
    public double MeanLowerBoundHosts { get; init; }

    /// <summary>Virtual seconds simulated.</summary>
    public double SimulatedS { get; init; }

    /// <summary>Wall seconds spent in the simulation engine alone.</summary>
    public double EngineS { get; init; }

    /// <summary>Wall seconds from process start (or the caller's start stamp) to this result.</summary>
    public double ElapsedS { get; init; }

    /// <summary>Directory with the CSV and SVG outputs, when written.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary>The time series (not serialised; written as CSV).</summary>
    [JsonIgnore]
    public IReadOnlyList<SeriesPoint> Series { get; init; } = [];
}
