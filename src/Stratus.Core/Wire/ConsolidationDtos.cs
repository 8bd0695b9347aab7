namespace Stratus.Core.Wire;

/// <summary>GET /v1/consolidation: whether the loop runs, its policy and its most recent passes (newest first).</summary>
/// <param name="IntervalSeconds">Seconds between passes.</param>
/// <param name="Standby">Names of the hosts in standby now.</param>
public sealed record ConsolidationStatusDto(bool Enabled, bool Paused, string Policy, string PowerDriver, double IntervalSeconds,
    IReadOnlyList<string> Standby, IReadOnlyList<ConsolidationPassDto> Passes);

/// <summary>One pass of the consolidation loop, or one wake on behalf of a server that found no room.</summary>
/// <param name="Trigger">"interval" (a loop pass) or "capacity" (the scheduler found no room and a standby host was woken).</param>
/// <param name="PlanMoves">Moves in the planner's plan.</param>
/// <param name="Started">Migrations the executor started.</param>
/// <param name="Finished">Started migrations that completed (the server runs on its destination).</param>
/// <param name="Failed">Moves refused by the migrator or rolled back.</param>
/// <param name="Skipped">Moves not attempted (server busy, host not up, plan timeout).</param>
/// <param name="Decisions">What was done and why.</param>
public sealed record ConsolidationPassDto(long Pass, string Trigger, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string Policy, int Hosts, int Servers,
    int PlanMoves, int Started, int Finished, int Failed, int Skipped, IReadOnlyList<string> HostsToStandby, IReadOnlyList<string> HostsWoken,
    IReadOnlyList<ConsolidationDecisionDto> Decisions, string? Error);

/// <summary>One decision of a pass.</summary>
/// <param name="Kind">migrate, finished, failed, skip, standby, wake.</param>
public sealed record ConsolidationDecisionDto(string Kind, string? Server, string? Host, string? To, string Reason);

/// <summary>GET /v1/energy?day=YYYY-MM-DD: energy per host over one UTC day (up to now for today), from the hosts' power models.</summary>
/// <param name="Day">The UTC day, YYYY-MM-DD.</param>
/// <param name="Until">End of the integrated span (the day's end, or now for today).</param>
public sealed record EnergyReportDto(string Day, DateTimeOffset From, DateTimeOffset Until, double TotalKwh, double StandbyHours, IReadOnlyList<EnergyHostDto> Hosts);

/// <summary>One host's energy over the report's span.</summary>
/// <param name="Kwh">Energy, kWh: Σ power(CPU) over metered minutes + standby watts over standby time.</param>
/// <param name="AverageCpuPercent">Mean CPU over metered minutes.</param>
/// <param name="MeteredHours">Hours with CPU samples (host up).</param>
/// <param name="StandbyHours">Hours in standby.</param>
/// <param name="UnmeteredHours">Hours with neither (host off, unregistered or not reporting): not counted.</param>
public sealed record EnergyHostDto(string HostId, string Name, string State, double IdleWatts, double MaxWatts, double StandbyWatts, double Kwh,
    double AverageCpuPercent, double MeteredHours, double StandbyHours, double UnmeteredHours);
