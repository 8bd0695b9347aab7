using System.Diagnostics;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>What is persisted in <c>vms/&lt;id&gt;/state.json</c> so a new driver can adopt the VM.</summary>
/// <param name="Pid">QEMU's pid while it should be running; null after a requested stop.</param>
/// <param name="Power">Last power state the driver knew.</param>
/// <param name="Forwards">Forwards with their host ports resolved (kept for the VM's life).</param>
/// <param name="CpuCapCores">Explicit CPU cap set through <see cref="IVmCpuCap"/>, in cores; null = the spec's default.</param>
internal sealed record VmStateFile(int? Pid, PowerState Power, IReadOnlyList<PortForward> Forwards, double? CpuCapCores = null);

/// <summary>Runtime state of one VM (mutated only under <see cref="Gate"/>, apart from exit handling).</summary>
internal sealed class QemuVm(InstanceId id, string directory, VmSpec spec, IReadOnlyList<PortForward> forwards)
{
    public InstanceId Id { get; } = id;

    public string Directory { get; } = directory;

    public VmSpec Spec { get; } = spec;

    public IReadOnlyList<PortForward> Forwards { get; } = forwards;

    /// <summary>Serialises operations on this VM.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    public volatile Process? Process;

    public int? Pid;

    public QmpClient? Qmp;

    public PowerState Power = PowerState.Shutdown;

    public double? CpuCapCores;

    /// <summary>Set before the driver makes QEMU exit, so the exit raises no event.</summary>
    public volatile bool ExpectExit;

    /// <summary>The guest powered itself off (QMP SHUTDOWN with guest=true).</summary>
    public volatile bool GuestShutdown;

    /// <summary>Completes after the current QEMU process's exit has been handled.</summary>
    public Task Exited = Task.CompletedTask;

    public CancellationTokenSource? Detach;

    public string StatePath => Path.Combine(Directory, "state.json");

    public string SpecPath => Path.Combine(Directory, "spec.json");

    public string DiskPath => Path.Combine(Directory, "disk.qcow2");

    public string ConfigDrivePath => Path.Combine(Directory, "cidata.img");

    public string ConsolePath => Path.Combine(Directory, "console.log");

    public string LogPath => Path.Combine(Directory, "qemu.log");

    public string QmpPath => Path.Combine(Directory, "qmp.sock");

    public string CgroupName => Id.ToString();

    public VmStatus Status(string? detail = null) => new(Id, Power, Pid, Forwards, detail);
}
