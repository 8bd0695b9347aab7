using Stratus.Core.Backups;
using Stratus.Core.Ids;

namespace Stratus.Compute;

/// <summary>Where a VM's disk lives: on this host only, or on a pool every host reaches (an NFS mount, say).</summary>
public static class StoragePools
{
    public const string Local = "local";
    public const string Shared = "shared";
}

/// <summary>Tuning of one live migration.</summary>
/// <param name="MaxDowntime">QEMU's downtime limit (null: QEMU's default, 300 ms).</param>
/// <param name="AutoConverge">Throttle the guest's vCPUs when it dirties memory faster than it can be sent.</param>
/// <param name="PostCopy">Switch to post-copy once pre-copy has made one full pass.</param>
/// <param name="BandwidthBytesPerSecond">Cap on the migration stream (null: unlimited).</param>
public sealed record MigrationOptions(
    TimeSpan? MaxDowntime = null,
    bool AutoConverge = false,
    bool PostCopy = false,
    long? BandwidthBytesPerSecond = null);

/// <summary>What the destination prepared for an incoming migration; handed to the source.</summary>
/// <param name="Uri">Where the source sends the VM's state (QEMU migration URI, e.g. <c>tcp:127.0.0.1:PORT</c>).</param>
/// <param name="DiskTarget">For a disk on a local pool: where the source mirrors the disk (an NBD export, e.g. <c>127.0.0.1:PORT:EXPORT</c>); null when the disk is on the shared pool.</param>
/// <param name="Forwards">The host forwards the destination bound (they differ from the source's).</param>
public sealed record IncomingMigration(InstanceId Id, string Uri, string? DiskTarget, IReadOnlyList<PortForward> Forwards)
{
    /// <summary>Why the destination cannot receive a post-copy migration (its hypervisor has no userfaultfd, say); null when
    /// it can or does not know. A source asked for post-copy refuses such a target before anything moves.</summary>
    public string? PostCopyUnavailable { get; init; }
}

/// <summary>A migration's progress as the source sees it (QEMU's query-migrate, in one shape for every driver).</summary>
/// <param name="Status">"setup", "active", "postcopy-active", "device", "completed", "failed", "cancelled".</param>
public sealed record MigrationProgress(
    string Status,
    long TotalBytes,
    long TransferredBytes,
    long RemainingBytes,
    long DirtyRateBytesPerSecond,
    long ExpectedDowntimeMs,
    long? DowntimeMs,
    long? TotalTimeMs,
    long DiskTotalBytes = 0,
    long DiskTransferredBytes = 0,
    string? Error = null);

/// <summary>
/// Optional driver ability: move a running VM to another host of the same driver while it keeps running.
/// Sequence: destination <see cref="PrepareIncomingAsync"/> → source <see cref="MigrateOutAsync"/> →
/// on success destination <see cref="CompleteIncomingAsync"/> then source <see cref="CompleteOutgoingAsync"/>;
/// on failure destination <see cref="AbortIncomingAsync"/> and the VM keeps running at the source.
/// </summary>
public interface ILiveMigrationDriver
{
    /// <summary>Destination: starts the VM waiting for incoming state (disk on the shared pool is opened in place; on a local pool an empty disk is exported for the mirror).</summary>
    Task<IncomingMigration> PrepareIncomingAsync(VmSpec spec, CancellationToken cancellationToken);

    /// <summary>
    /// Source: sends the running VM to <paramref name="target"/> and returns the final progress (status "completed"),
    /// or throws <see cref="ComputeException"/> with the VM still running here. Cancelling the token aborts the
    /// migration (QEMU <c>migrate_cancel</c>) and the VM keeps running here.
    /// </summary>
    Task<MigrationProgress> MigrateOutAsync(InstanceId id, IncomingMigration target, MigrationOptions options,
        IProgress<MigrationProgress>? progress, CancellationToken cancellationToken);

    /// <summary>Destination: the VM arrived; make sure it runs and becomes an ordinary VM of this host.</summary>
    Task<VmStatus> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Source: the VM runs elsewhere now; remove its process and local files (never the shared disk).</summary>
    Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Destination: the migration failed; remove everything prepared (never the shared disk). Idempotent.</summary>
    Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>VMs prepared here as migration destinations and not completed (also those left by a previous run of the agent).</summary>
    Task<IReadOnlyList<InstanceId>> ListIncomingAsync(CancellationToken cancellationToken);

    /// <summary>Cold migration, source: the stopped VM's disk as a file the destination can copy from (null when on the shared pool).</summary>
    Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Cold migration, destination: defines the stopped VM here from <paramref name="spec"/>, copying the disk from <paramref name="sourceDisk"/> unless it is on the shared pool.</summary>
    Task<VmStatus> ImportStoppedAsync(VmSpec spec, string? sourceDisk, CancellationToken cancellationToken);
}

/// <summary>One VM's resource use over the last sampling interval.</summary>
/// <param name="CpuPercent">Share of the VM's vCPUs used, 0–100 (100 = every vCPU busy).</param>
/// <param name="MemoryUsedMib">Memory the hypervisor process uses for the guest.</param>
public sealed record VmSample(
    InstanceId Id,
    double CpuPercent,
    long MemoryUsedMib,
    long DiskReadBytesPerSecond,
    long DiskWriteBytesPerSecond,
    long NetRxBytesPerSecond,
    long NetTxBytesPerSecond);

/// <summary>One host's resource use at <paramref name="At"/>, with its VMs'.</summary>
/// <param name="CpuPercent">Share of the host's cores used, 0–100.</param>
public sealed record HostSample(DateTimeOffset At, double CpuPercent, long MemoryUsedMib, long DiskUsedGib, IReadOnlyList<VmSample> Vms);

/// <summary>
/// Optional driver ability: sample host and per-VM resource use (rates since the previous call). A VM whose rates cannot
/// be computed yet (the first reading of its hypervisor process) may be left out of a sample; stopped VMs are not listed.
/// Rates a driver cannot measure are 0 (QEMU user-mode networking has no network counters).
/// </summary>
public interface IMetricsSource
{
    Task<HostSample> SampleAsync(CancellationToken cancellationToken);
}

/// <summary>One internal snapshot of a VM's disk.</summary>
/// <param name="Name">Caller-chosen name, unique per VM (letters, digits, '.', '_', '-'; 1–64).</param>
/// <param name="WithMemory">The snapshot also holds the guest's memory and device state (a revert resumes where it was taken).</param>
/// <param name="VmStateBytes">Size of the saved memory state (0 for a disk-only snapshot).</param>
public sealed record VmSnapshotInfo(string Name, bool WithMemory, long VmStateBytes, DateTimeOffset CreatedAt);

/// <summary>
/// Optional driver ability: named point-in-time snapshots of a VM, kept with its disk.
/// <para>With memory (<c>withMemory</c>, running VM only): disk, RAM and device state; a revert of a running VM resumes the
/// guest exactly where the snapshot was taken. Disk only: the disk as it is at that instant (crash-consistent — whatever the
/// guest had not written out yet is not in it); a revert powers the VM off (forced), rolls the disk back and boots it again
/// when it was running. A revert of a stopped VM only rolls the disk back.</para>
/// <para>Codes: <c>not_found</c> (VM), <c>snapshot_not_found</c>, <c>snapshot_exists</c>, <c>invalid_spec</c> (bad name),
/// <c>invalid_state</c> (a VM without a disk; memory snapshot of a stopped VM), <c>hypervisor_error</c>.</para>
/// </summary>
public interface ISnapshotDriver
{
    Task<VmSnapshotInfo> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken);

    Task<IReadOnlyList<VmSnapshotInfo>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Returns the VM's status after the revert (same power state as before).</summary>
    Task<VmStatus> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken);

    /// <summary>Idempotent: deleting a snapshot that does not exist succeeds.</summary>
    Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken);
}

/// <summary>
/// Optional driver ability: copy a VM's disk (running or stopped) into a backup directory, as files plus a
/// <see cref="BackupManifest"/> (<c>manifest.json</c>) with the SHA-256 of every file (see <see cref="BackupFiles"/>).
/// </summary>
public interface IBackupDriver
{
    /// <summary>
    /// Writes a backup of VM <paramref name="id"/> into <paramref name="targetDirectory"/> (created; must be empty).
    /// A full backup is self-contained: the whole disk flattened (base image included) and, for a directly booted VM,
    /// its kernel, initrd and command line. <paramref name="incrementalFrom"/> (the directory of an earlier backup of the
    /// same VM, a sibling of <paramref name="targetDirectory"/>) asks for an incremental one: only what changed since that
    /// backup, its disk backed by <c>../PARENT/disk.qcow2</c>, <see cref="BackupManifest.Parent"/> = the parent's
    /// directory name. A driver writes an incremental only when it knows exactly what changed since that parent (the
    /// backup's point in time, not its own later state); otherwise — no change tracking, tracking lost, disk reverted or
    /// moved — it writes a full backup and says why in <see cref="BackupManifest.FullReason"/>. Backups of a VM are
    /// serialised with its other operations. On failure the target directory is removed.
    /// </summary>
    Task<BackupManifest> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken);
}

/// <summary>The size a VM should have after a resize.</summary>
/// <param name="MaxVcpus">Ceiling for later live vCPU hot-add (a cold resize may raise it; a live one never changes it).</param>
/// <param name="MaxMemoryMib">Ceiling for later live memory hot-add (as <paramref name="MaxVcpus"/>).</param>
public sealed record VmResizeTarget(int Vcpus, long MemoryMib, long DiskGib, int MaxVcpus, long MaxMemoryMib);

/// <summary>What a resize did.</summary>
/// <param name="Live">True when the VM kept running (hot-add, balloon, online disk growth); false for an offline change.</param>
/// <param name="GuestVerified">True when the guest's own report (its status page) showed the new CPUs and memory.</param>
/// <param name="GuestCpus">CPUs the guest reported online after the resize (null: no report).</param>
/// <param name="GuestMemoryKib">Memory the guest reported after the resize (MemTotal minus the balloon; null: no report).</param>
/// <param name="GuestVisibleMs">From the request to the guest showing the change (live), or to the end of the offline change.</param>
/// <param name="Detail">One line per step, in order (e.g. "hot-added vCPU 2 (socket 0 core 1)").</param>
public sealed record VmResizeOutcome(VmStatus Status, bool Live, bool GuestVerified, int? GuestCpus, long? GuestMemoryKib, long GuestVisibleMs, IReadOnlyList<string> Detail);

/// <summary>
/// Optional driver ability: change a VM's vCPUs, memory and disk.
/// <para>Running VM (<see cref="ResizeLiveAsync"/>): vCPUs only grow, by hot-add up to the VM's <c>MaxVcpus</c> (removal is
/// never live: QEMU 7.2 corrupts its heap on unplug under TCG); memory grows by hot-plugged DIMMs up to <c>MaxMemoryMib</c>
/// and shrinks through the balloon; the disk only grows (online, the guest's block device sees the new capacity). When the
/// guest reports its CPUs and memory (the tiny guest's status page on guest port 80, forwarded), the driver waits until
/// the report shows the change; if it does not within the driver's timeout the CPU and memory change is rolled back
/// (balloon back to the old size, CPU quota back to the old vCPU count: a hot-added vCPU stays plugged but unused) and the
/// call fails with <c>resize_not_visible</c>. Codes: <c>invalid_spec</c> (below or above what a live resize can do),
/// <c>invalid_state</c> (not running), <c>resize_not_visible</c>, <c>hypervisor_error</c>.</para>
/// <para>Stopped VM (<see cref="ResizeStoppedAsync"/>): any vCPU and memory size, disk growth only; kept revertible until
/// <see cref="ConfirmResizeAsync"/> or <see cref="RevertResizeAsync"/> (the previous spec; when the disk grew, the disk as it
/// was before, so a revert discards what the guest wrote since, as OpenStack's does).</para>
/// </summary>
public interface IResizeDriver
{
    Task<VmResizeOutcome> ResizeLiveAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken);

    Task<VmResizeOutcome> ResizeStoppedAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken);

    /// <summary>Forgets what a revert would need. Idempotent.</summary>
    Task ConfirmResizeAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Stopped VM: restores the size (and disk) from before the last <see cref="ResizeStoppedAsync"/>. Codes:
    /// <c>invalid_state</c> (running, or nothing to revert).</summary>
    Task<VmStatus> RevertResizeAsync(InstanceId id, CancellationToken cancellationToken);
}
