using System.Text.Json;
using System.Text.Json.Serialization;

namespace Stratus.Core.Wire;

// The JSON objects of the public REST API (/v1), shared by the server and the typed client so they
// cannot drift. Property names are snake_case on the wire.

/// <summary>GET /v1/health.</summary>
public sealed record HealthDto(string Status, string Version, int Hosts, int HostsUp, int HostsExpected, bool Ready, string Driver)
{
    /// <summary>Where agents dial the controller (gRPC over HTTP/2), e.g. http://127.0.0.1:7301.</summary>
    public string? AgentEndpoint { get; init; }

    /// <summary>The unix socket agents on the controller's machine may use instead.</summary>
    public string? AgentSocket { get; init; }

    /// <summary>Hosts whose agent is connected now.</summary>
    public int HostsConnected { get; init; }
}

/// <summary>POST /v1/hosts/tokens: issue the agent token of a host (by name).</summary>
public sealed record AgentTokenRequest(string? Host);

/// <summary>An agent token, shown once.</summary>
public sealed record AgentTokenDto(string Host, string Token);

/// <summary>A flavor.</summary>
public sealed record FlavorDto(string Id, string Name, int Vcpus, long RamMib, long DiskGib, bool IsPublic, DateTimeOffset CreatedAt);

/// <summary>POST /v1/flavors.</summary>
public sealed record CreateFlavorRequest(string? Name, int? Vcpus, long? RamMib, long? DiskGib, bool? IsPublic);

/// <summary>An image.</summary>
public sealed record ImageDto(string Id, string Name, string DiskFormat, string Status, long SizeBytes, string? Checksum, bool IsPublic, DateTimeOffset CreatedAt);

/// <summary>POST /v1/images (registers an image record; a file path on the controller is optional).</summary>
public sealed record CreateImageRequest(string? Name, string? DiskFormat, string? Path, bool? IsPublic);

/// <summary>A port forward of a server.</summary>
public sealed record ForwardDto(int HostPort, int GuestPort);

/// <summary>A server (cloud server / instance).</summary>
public sealed record ServerDto(
    string Id,
    string Name,
    string VmState,
    string? Task,
    string PowerState,
    string? HostId,
    string? HostName,
    string FlavorId,
    string ImageId,
    int Vcpus,
    long RamMib,
    long DiskGib,
    string? Fault,
    string? KeyName,
    string? GroupId,
    IReadOnlyList<ForwardDto> Forwards,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    long Version)
{
    /// <summary>Where the server's disk lives: "local" or "shared".</summary>
    public string StoragePool { get; init; } = "local";

    /// <summary>The migration in progress, while <see cref="Task"/> is "migrating".</summary>
    public MigrationDto? Migration { get; init; }

    /// <summary>HA-protected (restarted elsewhere when its host fails).</summary>
    public bool Ha { get; init; }

    public int HaPriority { get; init; }

    /// <summary>Live vCPU ceiling (hot-add up to it without a restart).</summary>
    public int MaxVcpus { get; init; }

    /// <summary>Live memory ceiling, MiB.</summary>
    public long MaxRamMib { get; init; }

    /// <summary>While a cold resize waits for confirm or revert: the flavor (id) it replaced; null otherwise.</summary>
    public string? PreviousFlavorId { get; init; }

    /// <summary>Only in the answer to a create: the project's budget warning (spending at or over its threshold), else null.</summary>
    public string? BudgetWarning { get; init; }
}

/// <summary>PATCH /v1/servers/{id}/ha.</summary>
public sealed record HaRequest(bool? Ha, int? HaPriority);

/// <summary>An incident: a host failure and its recovery, as a timeline.</summary>
public sealed record IncidentDto(string Id, string HostId, string? HostName, string State, DateTimeOffset DetectedAt, DateTimeOffset? ClosedAt,
    IReadOnlyList<IncidentEventDto> Timeline);

public sealed record IncidentEventDto(DateTimeOffset At, string Kind, string Message, string? ServerId);

/// <summary>GET /v1/ha: HA admission control's failover reserve and the out-of-band fence.</summary>
/// <param name="Tolerate">Host failures the reserve is evaluated for (stratusd --ha-tolerate, or the `tolerate` query parameter).</param>
/// <param name="Enforced">True when admission control is on (--ha-tolerate above 0) and this is its tolerance.</param>
/// <param name="Ok">The reserve holds: the HA servers of any <see cref="Tolerate"/> failed hosts can be restarted on the others.</param>
/// <param name="Headroom">More servers of the slot's size that would still be admitted; null when unlimited (nothing to reserve for, or tolerance 0).</param>
/// <param name="LargestHa">The largest HA server per dimension (the reserve must fit it); null with no HA server.</param>
/// <param name="Slot">The unit the reserve is counted in: the largest HA server, or it stretched to the shape of host <see cref="SlotShape"/>.</param>
/// <param name="Whole">The whole-slot test (each server takes whole slots).</param>
/// <param name="Fractional">The fractional test (servers take fractions of a slot; each surviving host keeps one slot for fragmentation).</param>
/// <param name="FenceCommand">True when stratusd runs an out-of-band fence command (--fence-command).</param>
public sealed record HaStatusDto(int Tolerate, bool Enforced, bool Ok, long? Headroom, string Summary, HaSlotDto? LargestHa, HaSlotDto? Slot, string? SlotShape,
    IReadOnlyList<HaHostSlotsDto> Hosts,
    HaReserveTestDto? Whole, HaReserveTestDto? Fractional, bool FenceCommand, double FenceTimeoutSeconds, int OpenIncidents);

public sealed record HaSlotDto(double Vcpus, long RamMib, long DiskGib);

/// <summary>An up host's room in slots: whole slots, and its capacity over the slot in its tightest dimension.</summary>
public sealed record HaHostSlotsDto(string Name, long Slots, double SlotsFractional);

/// <summary>One test of the reserve: losing <see cref="WorstFailure"/> (the hosts with the most room) leaves <see cref="Room"/> slots; the servers need <see cref="Demand"/>.</summary>
public sealed record HaReserveTestDto(IReadOnlyList<string> WorstFailure, double Demand, double Room, bool Ok);

/// <summary>A migration in progress (or just finished): phase and QEMU's progress figures.</summary>
public sealed record MigrationDto(
    string Kind,
    string Phase,
    string SourceHostId,
    string DestinationHostId,
    string Status,
    long TotalBytes,
    long TransferredBytes,
    long RemainingBytes,
    long DirtyRateBytesPerSecond,
    long ExpectedDowntimeMs,
    long? DowntimeMs,
    long? TotalTimeMs,
    DateTimeOffset StartedAt);

/// <summary>POST /v1/servers/{id}/migrate.</summary>
/// <param name="Live">True: live (the server keeps running); false: cold (stopped servers). Default: live when running, cold when stopped.</param>
/// <param name="Host">Destination host (name or id); default: the scheduler chooses.</param>
public sealed record MigrateRequest(string? Host, bool? Live, long? MaxDowntimeMs, bool? AutoConverge, bool? PostCopy, long? BandwidthMibps);

/// <summary>POST /v1/servers.</summary>
public sealed record CreateServerRequest(string? Name, string? Flavor, string? Image, string? UserData, string? KeyName, string? Zone, IReadOnlyList<ForwardDto>? Forwards)
{
    /// <summary>Server group (name or id) whose placement rule the server joins.</summary>
    public string? Group { get; init; }

    /// <summary>Traits the host must have; a leading '!' means the host must not have it.</summary>
    public IReadOnlyList<string>? Traits { get; init; }

    /// <summary>Where the disk lives: "local" or "shared" (default: shared when the cloud has a shared pool).</summary>
    public string? StoragePool { get; init; }

    /// <summary>HA-protected: restarted on another host when its host fails (needs the shared pool).</summary>
    public bool? Ha { get; init; }

    /// <summary>Recovery order among HA servers: higher first (0–1000, default 0).</summary>
    public int? HaPriority { get; init; }

    /// <summary>Create this many servers (1–100) named NAME-1…NAME-N in one request; the answer is then a list.</summary>
    public int? Count { get; init; }

    /// <summary>With <see cref="Count"/>: place all or none (one refusal refuses the whole batch).</summary>
    public bool? AllOrNothing { get; init; }

    /// <summary>Live resize ceiling for vCPUs (default 4× the flavor's, capped by the largest host's allocatable vCPUs).</summary>
    public int? MaxVcpus { get; init; }

    /// <summary>Live resize ceiling for memory, MiB (default 4× the flavor's, capped by the largest host's allocatable memory).</summary>
    public long? MaxRamMib { get; init; }
}

/// <summary>A host aggregate.</summary>
public sealed record AggregateDto(string Id, string Name, string? Zone, IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<string> Hosts, DateTimeOffset CreatedAt);

/// <summary>POST /v1/aggregates and PATCH /v1/aggregates/{id}.</summary>
public sealed record AggregateRequest(string? Name, string? Zone, IReadOnlyDictionary<string, string>? Metadata);

/// <summary>POST /v1/aggregates/{id}/hosts.</summary>
public sealed record AggregateHostRequest(string? Host);

/// <summary>PUT /v1/hosts/{id}/traits.</summary>
public sealed record TraitsRequest(IReadOnlyList<string>? Traits);

/// <summary>A server group.</summary>
public sealed record ServerGroupDto(string Id, string Name, string Policy, int MaxPerHost, DateTimeOffset CreatedAt);

/// <summary>POST /v1/groups.</summary>
public sealed record CreateGroupRequest(string? Name, string? Policy, int? MaxPerHost);

/// <summary>POST /v1/servers/{id}/actions.</summary>
public sealed record ServerActionRequest(string? Action, string? Type);

/// <summary>One entry of a server's action log.</summary>
public sealed record ActionDto(long Seq, string Action, string RequestedBy, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string Result, string? Message);

/// <summary>GET /v1/servers/{id}/console.</summary>
public sealed record ConsoleDto(string ServerId, string Output);

/// <summary>A host with its capacity, allocation and state.</summary>
public sealed record HostDto(
    string Id,
    string Name,
    string State,
    string Zone,
    string Driver,
    string Accelerator,
    int? AgentPid,
    ResourcesDto Total,
    ResourcesDto Reserved,
    RatiosDto AllocationRatios,
    ResourcesDto Capacity,
    ResourcesDto Used,
    int Servers,
    long Generation,
    long Epoch,
    DateTimeOffset? LastHeartbeat)
{
    /// <summary>The host's traits.</summary>
    public IReadOnlyList<string> Traits { get; init; } = [];

    /// <summary>Who the host's hypervisor processes run as: "stratus-qemu", "root", "root (fallback: why)"; null when the
    /// agent does not say (simulated hosts).</summary>
    public string? HypervisorUser { get; init; }
}

/// <summary>An amount of resources on the wire: vCPUs may be fractional.</summary>
public sealed record ResourcesDto(double Vcpus, long RamMib, long DiskGib);

/// <summary>Allocation ratios on the wire.</summary>
public sealed record RatiosDto(double Cpu, double Ram, double Disk);

/// <summary>An SSH keypair's public half.</summary>
public sealed record KeypairDto(string Id, string Name, string PublicKey, string Fingerprint, DateTimeOffset CreatedAt);

/// <summary>POST /v1/keypairs: import a public key.</summary>
public sealed record ImportKeypairRequest(string? Name, string? PublicKey);

/// <summary>GET /v1/servers/{id}/placement: why the scheduler chose (or could not choose) a host.</summary>
public sealed record PlacementDto(string ServerId, string Outcome, string? HostId, IReadOnlyList<string> Reasons, string Profile, int FleetSize,
    int HostsConsidered, int SampleSize, IReadOnlyList<FilterStepDto> Filters, IReadOnlyList<CandidateDto> Top, DateTimeOffset DecidedAt);

/// <summary>A filter's effect in a decision: hosts that reached it and hosts it removed.</summary>
public sealed record FilterStepDto(string Filter, int Before, int Removed);

/// <summary>A scored candidate host in a decision.</summary>
public sealed record CandidateDto(string HostId, string Name, double Score);

/// <summary>GET /v1/servers/{id}/stats and GET /v1/hosts/{id}/stats: a resource-use time series.</summary>
/// <param name="Kind">"server" or "host".</param>
/// <param name="Resolution">The tier the points come from: "raw", "1m" or "1h" (never "auto").</param>
/// <param name="Latest">The newest sample, whatever the window; null before the first report.</param>
public sealed record StatsDto(string Kind, string Id, string Name, string Resolution, DateTimeOffset Since, DateTimeOffset Until,
    IReadOnlyList<StatsPointDto> Points, StatsPointDto? Latest);

/// <summary>
/// One point of a stats series: a raw sample, or a 1m/1h bucket starting at <paramref name="At"/> with averages
/// (weighted by <paramref name="Samples"/>) and maxima. Rates are bytes per second.
/// </summary>
/// <param name="CpuPercent">Servers: share of the server's vCPUs; hosts: share of the host's cores (0–100).</param>
/// <param name="DiskUsedGib">Hosts only: used space of the data directory's file system; null for servers.</param>
/// <param name="NetRxBps">0 when the hypervisor exposes no network counters (QEMU user-mode networking).</param>
public sealed record StatsPointDto(
    DateTimeOffset At,
    double CpuPercent,
    double CpuMaxPercent,
    long MemoryUsedMib,
    long MemoryMaxMib,
    long DiskReadBps,
    long DiskWriteBps,
    long NetRxBps,
    long NetTxBps,
    long? DiskUsedGib,
    long Samples);

/// <summary>A page of a list.</summary>
public sealed record ListDto<T>(IReadOnlyList<T> Items, string? NextMarker);

/// <summary>One field's validation error inside a problem.</summary>
public sealed record FieldError(string Field, string Code, string Message);

/// <summary>RFC 7807 problem details with a stable error code and every validation error at once.</summary>
public sealed record ProblemDto(string Type, string Title, int Status, string? Detail, string Code, IReadOnlyList<FieldError>? Errors, string? Instance);

/// <summary>The serializer settings of the API: snake_case, unknown members refused, strict numbers.</summary>
public static class WireJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            NumberHandling = JsonNumberHandling.Strict,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
            MaxDepth = 16,
        };
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}

/// <summary>A server snapshot.</summary>
/// <param name="Status">"creating", "available", "reverting", "deleting", "error".</param>
public sealed record SnapshotDto(string Name, bool WithMemory, string Status, long VmStateBytes, DateTimeOffset CreatedAt);

/// <summary>POST /v1/servers/{id}/snapshots.</summary>
public sealed record CreateSnapshotRequest(string? Name, bool? WithMemory);

/// <summary>A backup in the backup store.</summary>
/// <param name="Kind">"full" or "incremental".</param>
/// <param name="ParentId">For an incremental: the backup it builds on (a restore needs every link down to a full one).</param>
/// <param name="Status">"creating", "available", "error", or "expired" (deleted by request or beyond the keep count; its
/// files stay only while a kept incremental builds on it, and it cannot be restored).</param>
/// <param name="SizeBytes">Bytes this backup adds to the store (an incremental: only its changed clusters).</param>
/// <param name="FullReason">A full backup written although an incremental was asked for (or due by policy): why.</param>
/// <param name="ExpiredReason">For an expired backup: why, and that it is kept for its dependants.</param>
/// <param name="Verified">"ok" (every checksum matched at <paramref name="VerifiedAt"/>), "corrupt" (see
/// <paramref name="VerifyError"/>), or "never".</param>
/// <param name="ChainLength">Links a restore of this backup reads: 1 for a full, parent's + 1 for an incremental.</param>
public sealed record BackupDto(string Id, string ServerId, string ServerName, string Kind, string? ParentId, string Status, long SizeBytes,
    string? ManifestSha256, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? FinishedAt, string? FullReason = null, string? ExpiredReason = null,
    string Verified = "never", DateTimeOffset? VerifiedAt = null, string? VerifyError = null, int ChainLength = 1);

/// <summary>POST /v1/servers/{id}/backups (body optional).</summary>
/// <param name="Keep">Retention for this server from now on: keep the newest N backups (1–1000).</param>
/// <param name="Mode">"auto" (default: incremental when the server has a backup to build on and its chain is shorter than
/// the policy's full_every, else full), "full", or "incremental" (build on the newest backup whatever the chain length).
/// A driver that cannot continue the chain writes a full backup and says why (<see cref="BackupDto.FullReason"/>).</param>
public sealed record CreateBackupRequest(int? Keep, string? Mode = null);

/// <summary>GET/PUT /v1/servers/{id}/backup-policy.</summary>
/// <param name="Keep">Restore points kept: the newest N backups (1–1000). On PUT, null keeps the current value.</param>
/// <param name="FullEvery">A full backup at least every N backups (1–1000; the chain length cap); null = <paramref name="Keep"/>.</param>
/// <param name="IsDefault">GET: the server has no policy of its own (the controller's defaults apply).</param>
public sealed record BackupPolicyDto(int? Keep, int? FullEvery, bool IsDefault = false);

/// <summary>POST /v1/backups/{id}/verify: every checksum of every link of the backup's chain, oldest first.</summary>
/// <param name="Chain">Backup ids from the full backup to this one.</param>
/// <param name="Problems">Empty when intact; else each problem, naming its link.</param>
public sealed record BackupVerificationDto(string Id, bool Ok, IReadOnlyList<string> Chain, IReadOnlyList<string> Problems);

/// <summary>POST /v1/backups/{id}/restore: a new server from the backup (forwards and key default to the original's).</summary>
public sealed record RestoreBackupRequest(string? Name, IReadOnlyList<ForwardDto>? Forwards, string? KeyName);
