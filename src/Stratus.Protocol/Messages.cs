using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Protocol;

/// <summary>The protocol version agents and controllers speak; a mismatch in the major part is refused.</summary>
public static class ProtocolVersion
{
    public const int Major = 1;
    public const int Minor = 0;
}

/// <summary>What a VM should be doing, as the controller wants it.</summary>
public enum DesiredPower { Running, Stopped, Paused, Absent }

/// <summary>A port forward in the protocol (host port 0 = choose).</summary>
public sealed record ForwardSpec(int HostPort, int GuestPort);

/// <summary>The controller's desired state for one VM on a host.</summary>
/// <param name="RebootSeq">Bumped for each reboot request; the agent reboots once per new value (hard when <paramref name="RebootHard"/>).</param>
public sealed record DesiredVm(
    InstanceId Id,
    string Name,
    int Vcpus,
    long MemoryMib,
    long DiskGib,
    string? ImageRef,
    string? ImageFormat,
    string? UserData,
    IReadOnlyList<string> PublicKeys,
    IReadOnlyList<ForwardSpec> Forwards,
    DesiredPower Power,
    long RebootSeq,
    bool RebootHard,
    string StoragePool = "local",
    bool Ha = false,
    int MaxVcpus = 0,
    long MaxMemoryMib = 0)
{
    /// <summary>Only in a live migration's PrepareIncoming: the source's hot-plugged devices, to recreate (see <see cref="HotPlugLayout"/>).</summary>
    public HotPlugLayout? HotPlugged { get; init; }
}

/// <summary>The full desired state of one host: level-triggered, the agent converges to it.</summary>
public sealed record DesiredHostState(HostId HostId, long Epoch, IReadOnlyList<DesiredVm> Vms);

/// <summary>What an agent reports of one VM.</summary>
/// <param name="RebootSeq">The latest reboot sequence the agent has carried out.</param>
/// <param name="Error">Set when the agent could not reach the desired state.</param>
/// <param name="Fenced">An HA VM the agent stopped when it fenced itself and has not started again: stopped by HA, not by its
/// guest or a user, so its power state says nothing about what the server should be.</param>
public sealed record ActualVm(
    InstanceId Id,
    PowerState Power,
    int? Pid,
    IReadOnlyList<ForwardSpec> Forwards,
    long RebootSeq,
    string? Error,
    bool Exists,
    bool Fenced = false)
{
    /// <summary>The running process's hot-plugged devices, when it has any (see <see cref="HotPlugLayout"/>).</summary>
    public HotPlugLayout? HotPlugged { get; init; }
}

/// <summary>An agent's registration: who it is and what its host has.</summary>
public sealed record HostRegistration(
    string Name,
    int Cores,
    long MemoryMib,
    long DiskGib,
    string Accelerator,
    string Driver,
    string CpuModel,
    int CgroupVersion,
    int AgentPid,
    int ProtocolMajor)
{
    /// <summary>CPU feature flags (from /proc/cpuinfo), for migration compatibility and placement traits.</summary>
    public IReadOnlyList<string> CpuFlags { get; init; } = [];

    /// <summary>Storage pools this host reaches ("local", "shared").</summary>
    public IReadOnlyList<string> StoragePools { get; init; } = ["local"];

    /// <summary>Who the host's hypervisor processes run as ("stratus-qemu", "root (fallback: …)"); null when not reported.</summary>
    public string? HypervisorUser { get; init; }
}

/// <summary>Agent → controller: a report of actual state for a host (full, level-triggered).</summary>
public sealed record HostReport(HostId HostId, long Epoch, IReadOnlyList<ActualVm> Vms, bool Complete);

/// <summary>One VM's resource use over the agent's last sampling interval.</summary>
/// <param name="CpuPercent">Share of the VM's vCPUs used, 0–100 (100 = every vCPU busy).</param>
/// <param name="MemoryUsedMib">Memory the hypervisor process uses for the guest, MiB.</param>
/// <param name="NetRxBytesPerSecond">0 when the driver's network backend exposes no counters (QEMU user-mode networking).</param>
public sealed record VmMetrics(
    InstanceId Id,
    double CpuPercent,
    long MemoryUsedMib,
    long DiskReadBytesPerSecond,
    long DiskWriteBytesPerSecond,
    long NetRxBytesPerSecond,
    long NetTxBytesPerSecond);

/// <summary>Agent → controller: one host's resource use sampled at <paramref name="At"/>, with its VMs'.</summary>
/// <param name="CpuPercent">Share of the host's cores used, 0–100.</param>
/// <param name="MemoryUsedMib">Host memory in use (MemTotal − MemAvailable), MiB.</param>
/// <param name="DiskUsedGib">Used space of the file system holding the agent's data directory, GiB.</param>
public sealed record HostMetricsReport(HostId HostId, DateTimeOffset At, double CpuPercent, long MemoryUsedMib, long DiskUsedGib, IReadOnlyList<VmMetrics> Vms);

/// <summary>
/// The controller side of the agent stream: what an agent calls. The all-in-one controller's
/// embedded agent calls it in-process; remote agents reach it over gRPC.
/// </summary>
public interface IControllerEndpoint
{
    /// <summary>Registers (or re-registers) a host by name; returns its id and current epoch.</summary>
    Task<(HostId HostId, long Epoch)> RegisterAsync(HostRegistration registration, CancellationToken cancellationToken);

    /// <summary>A heartbeat with the VMs' actual state.</summary>
    Task ReportAsync(HostReport report, CancellationToken cancellationToken);

    /// <summary>
    /// Resource use sampled by the agent (every <c>AgentOptions.MetricsInterval</c>). Fire-and-forget in spirit: a lost
    /// report is a gap in the time series, never an error the agent must retry; reports of unknown hosts and VMs not on
    /// the reporting host are dropped.
    /// </summary>
    Task ReportMetricsAsync(HostMetricsReport report, CancellationToken cancellationToken);
}

/// <summary>The agent side of the stream: what the controller calls.</summary>
public interface IAgentSession
{
    HostId HostId { get; }

    /// <summary>Pushes the host's full desired state; the agent converges asynchronously and reports back.</summary>
    Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken);

    /// <summary>Reads the tail of a VM's console.</summary>
    Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken);

    /// <summary>Destination of a live migration: start the VM waiting for its state.</summary>
    Task<IncomingMigrationInfo> PrepareIncomingAsync(DesiredVm vm, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Source of a live migration: send the VM; cancelling aborts it and the VM keeps running here.</summary>
    Task<MigrationStatus> MigrateOutAsync(InstanceId id, IncomingMigrationInfo target, MigrationSettings settings,
        IProgress<MigrationStatus>? progress, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Destination: the VM arrived and runs; it is an ordinary VM of this host from now on.</summary>
    Task<ActualVm> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Source: the VM runs elsewhere; remove what is left here (never a shared disk).</summary>
    Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Destination: the migration failed; remove everything prepared. Idempotent.</summary>
    Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Cold migration, source: the stopped VM's disk file (null when on the shared pool).</summary>
    Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Cold migration, destination: define the stopped VM here, copying its disk unless shared.</summary>
    Task<ActualVm> ImportStoppedAsync(DesiredVm vm, string? sourceDisk, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>HA recovery: start a VM this host defined (with <see cref="ImportStoppedAsync"/>) right now, outside desired state.</summary>
    Task<ActualVm> StartVmAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>The controller renewed this agent's lease (remote agents only; embedded agents have no lease).</summary>
    Task RenewLeaseAsync(long epoch, TimeSpan valid, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Takes a named snapshot of a VM (disk only, or with memory on a running VM).</summary>
    Task<VmSnapshot> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    Task<IReadOnlyList<VmSnapshot>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Rolls the VM back to a snapshot; its power state is kept (a disk-only revert reboots a running VM).</summary>
    Task<ActualVm> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Deletes a snapshot; idempotent.</summary>
    Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Writes a backup of the VM into <paramref name="targetDirectory"/> (a path this host reaches): files plus a checksummed manifest.</summary>
    Task<BackupResult> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Resizes a VM (see <see cref="ResizeOrder"/>). Answers with what was done; a refusal is an
    /// <see cref="AgentRequestException"/> with the driver's code (<c>invalid_spec</c>, <c>invalid_state</c>, <c>resize_not_visible</c>, …).</summary>
    Task<ResizeReport> ResizeAsync(ResizeOrder order, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");

    /// <summary>Stops every VM of the host (for `stratus down`), leaving desired state untouched.</summary>
    Task ShutdownVmsAsync(TimeSpan graceful, CancellationToken cancellationToken) =>
        throw new AgentRequestException("unsupported_request", "this agent session cannot do that");
}

/// <summary>How a resize is carried out on the host.</summary>
public enum ResizePhase
{
    /// <summary>Running VM: hot-add vCPUs and memory, balloon, grow the disk online; checked against the guest's report.</summary>
    Live,
    /// <summary>Stop the VM, change its size, start it again if it ran; revertible until confirmed.</summary>
    Cold,
    /// <summary>Forget what a revert would need.</summary>
    Confirm,
    /// <summary>Stop, restore the size (and disk) from before the cold resize, start again if it ran.</summary>
    Revert,
}

/// <summary>A resize the controller asks a host for. Sizes are ignored for <see cref="ResizePhase.Confirm"/> and <see cref="ResizePhase.Revert"/>.</summary>
public sealed record ResizeOrder(InstanceId Id, ResizePhase Phase, int Vcpus, long MemoryMib, long DiskGib, int MaxVcpus, long MaxMemoryMib);

/// <summary>What a host did for a resize.</summary>
/// <param name="GuestVisibleMs">Live: from the agent receiving the request to the guest showing the change.</param>
public sealed record ResizeReport(bool Live, bool GuestVerified, int? GuestCpus, long? GuestMemoryKib, long GuestVisibleMs, IReadOnlyList<string> Detail, ActualVm Vm);

/// <summary>A VM snapshot as an agent reports it.</summary>
public sealed record VmSnapshot(string Name, bool WithMemory, long VmStateBytes, DateTimeOffset CreatedAt);

/// <summary>What a backup wrote (the manifest in the target directory has the details and checksums).</summary>
/// <param name="Kind">"full" or "incremental" (a driver without incrementals answers "full").</param>
/// <param name="FullReason">Why a full backup was written although an incremental was asked for (null otherwise).</param>
public sealed record BackupResult(string Kind, long SizeBytes, long VirtualSizeBytes, int Files, string? FullReason = null);

/// <summary>Tuning of one live migration, as the controller asks for it.</summary>
public sealed record MigrationSettings(long? MaxDowntimeMs = null, bool AutoConverge = false, bool PostCopy = false, long? BandwidthBytesPerSecond = null);

/// <summary>What a destination prepared for an incoming VM (see the driver contract).</summary>
public sealed record IncomingMigrationInfo(InstanceId Id, string Uri, string? DiskTarget, IReadOnlyList<ForwardSpec> Forwards)
{
    /// <summary>Why the destination cannot receive post-copy; null when it can or does not say.</summary>
    public string? PostCopyUnavailable { get; init; }
}

/// <summary>A migration's progress as the source reports it.</summary>
public sealed record MigrationStatus(
    string Status,
    long TotalBytes,
    long TransferredBytes,
    long RemainingBytes,
    long DirtyRateBytesPerSecond,
    long ExpectedDowntimeMs,
    long? DowntimeMs,
    long? TotalTimeMs,
    long DiskTotalBytes,
    long DiskTransferredBytes,
    string? Error);

/// <summary>An agent refused or failed a request; <see cref="Code"/> is stable (the driver's code, or "agent_unreachable").</summary>
public sealed class AgentRequestException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
