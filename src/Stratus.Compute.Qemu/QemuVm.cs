using Stratus.Compute.Qemu.Launch;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>What is persisted in <c>vms/&lt;id&gt;/state.json</c> so a new driver can adopt the VM.</summary>
/// <param name="Pid">QEMU's pid while it should be running; null after a requested stop.</param>
/// <param name="Power">Last power state the driver knew.</param>
/// <param name="Forwards">Forwards with their host ports resolved (kept for the VM's life).</param>
/// <param name="CpuCapCores">Explicit CPU cap set through <see cref="IVmCpuCap"/>, in cores; null = the spec's default.</param>
internal sealed record VmStateFile(int? Pid, PowerState Power, IReadOnlyList<PortForward> Forwards, double? CpuCapCores = null, LiveSize? Live = null);

/// <summary>What live resizes changed in the running QEMU process (gone at the next start, which boots the spec's size).</summary>
/// <param name="PluggedVcpus">vCPUs the process has (boot + hot-added; may exceed the spec after a rolled-back hot-add).</param>
/// <param name="BootMemoryMib">The <c>-m size</c> the process was started with.</param>
/// <param name="Dimms">Hot-plugged DIMMs, MiB each, in plug order (ids <c>dimm0</c>, <c>dimm1</c>, …).</param>
/// <param name="BootVcpus">The <c>-smp</c> the process was started with (null in state files written before it was recorded).</param>
internal sealed record LiveSize(int PluggedVcpus, long BootMemoryMib, IReadOnlyList<long> Dimms, int? BootVcpus = null)
{
    /// <summary>Memory the process has plugged in: boot memory plus DIMMs (the balloon may hold part of it back).</summary>
    public long PluggedMemoryMib => BootMemoryMib + Dimms.Sum();

    /// <summary>What a migration's destination must recreate, or null when nothing was hot-plugged (or the boot size is unknown).</summary>
    public HotPlugLayout? HotPlugged => BootVcpus is { } boot && (PluggedVcpus != boot || Dimms.Count > 0)
        ? new HotPlugLayout(boot, PluggedVcpus, BootMemoryMib, [.. Dimms])
        : null;
}

/// <summary>Runtime state of one VM (mutated only under <see cref="Gate"/>, apart from exit handling).</summary>
internal sealed class QemuVm(InstanceId id, string directory, VmSpec spec, IReadOnlyList<PortForward> forwards, string? diskDirectory = null)
{
    public InstanceId Id { get; } = id;

    public string Directory { get; } = directory;

    /// <summary>Where the disk overlay and the config drive live: <see cref="Directory"/> on the local pool,
    /// <c>&lt;SharedPoolDirectory&gt;/&lt;id&gt;</c> on the shared pool.</summary>
    public string DiskDirectory { get; } = diskDirectory ?? directory;

    /// <summary>True when the disk lives on the shared pool (never deleted by migration clean-up).</summary>
    public bool OnSharedPool => !string.Equals(DiskDirectory, Directory, StringComparison.Ordinal);

    /// <summary>The VM's size and devices; replaced (under <see cref="Gate"/>) by a resize.</summary>
    public VmSpec Spec { get; set; } = spec;

    /// <summary>The running process's live size (null while stopped).</summary>
    public LiveSize? Live;

    public IReadOnlyList<PortForward> Forwards { get; } = forwards;

    /// <summary>Serialises operations on this VM.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>The QEMU process this driver started (null when adopted or stopped).</summary>
    public volatile ChildProcess? Child;

    public int? Pid;

    public QmpClient? Qmp;

    public PowerState Power = PowerState.Shutdown;

    public double? CpuCapCores;

    /// <summary>While an outgoing live migration runs: the CPU cap is lifted for QEMU's migration thread.</summary>
    public bool MigrationHeadroom;

    /// <summary>The migration capabilities and parameters this QEMU process has (null: unknown, e.g. adopted), so an outgoing
    /// migration with the same settings goes straight to <c>migrate</c>.</summary>
    public QemuDriver.MigrationSetup? MigrationSetup;

    /// <summary>Set before the driver makes QEMU exit, so the exit raises no event.</summary>
    public volatile bool ExpectExit;

    /// <summary>The guest powered itself off (QMP SHUTDOWN with guest=true).</summary>
    public volatile bool GuestShutdown;

    /// <summary>Completes after the current QEMU process's exit has been handled.</summary>
    public Task Exited = Task.CompletedTask;

    public CancellationTokenSource? Detach;

    public string StatePath => Path.Combine(Directory, "state.json");

    public string SpecPath => Path.Combine(Directory, "spec.json");

    public string DiskPath => Path.Combine(DiskDirectory, "disk.qcow2");

    public string ConfigDrivePath => Path.Combine(DiskDirectory, "cidata.img");

    /// <summary>Present while the VM is an incoming migration's destination (not yet an ordinary VM of this host).</summary>
    public string IncomingMarkerPath => Path.Combine(Directory, "incoming");

    /// <summary>The prepared incoming migration, while this VM is one.</summary>
    public IncomingMigration? Incoming;

    /// <summary>A pipelined destination (see <c>PrepareIncomingAsync</c>): cancels its QEMU start and accept; and why that
    /// start failed, when it did (the VM's gate is held until it ended either way).</summary>
    public CancellationTokenSource? IncomingStart;

    /// <summary>Completes when a pipelined destination's QEMU runs (fails with its start's error).</summary>
    public TaskCompletionSource? IncomingStarted;

    public volatile string? IncomingStartFailure;

    /// <summary>NBD export on the destination of a local-pool migration (stopped at completion).</summary>
    public bool NbdServing;

    public string ConsolePath => Path.Combine(Directory, "console.log");

    public string LogPath => Path.Combine(Directory, "qemu.log");

    /// <summary>QMP socket: in the VM's directory, or (when that path would pass the 107-byte unix socket limit)
    /// in a short per-data-directory folder under /tmp. Deterministic, so adoption finds it again.</summary>
    public string QmpPath { get; init; } = Path.Combine(directory, "qmp.sock");

    public string CgroupName => Id.ToString();

    public VmStatus Status(string? detail = null) => new(Id, Power, Pid, Forwards, detail) { HotPlugged = Pid is null ? null : Live?.HotPlugged };
}
