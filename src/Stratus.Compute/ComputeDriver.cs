using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute;

/// <summary>A port forward from the host to a guest port. HostPort 0 asks the driver to choose one.</summary>
public sealed record PortForward(int HostPort, int GuestPort, string Protocol = "tcp");

/// <summary>Everything a driver needs to create a VM. Immutable.</summary>
/// <param name="ImagePath">Path of the base image on this host (null for drivers that need no file).</param>
/// <param name="KernelPath">Optional direct-boot kernel (for the tiny guest); null boots from disk.</param>
/// <param name="InitrdPath">Optional direct-boot initrd, with <see cref="KernelPath"/>.</param>
/// <param name="MaxVcpus">Ceiling for live vCPU hot-add (≥ Vcpus).</param>
/// <param name="MaxMemoryMib">Ceiling for live memory hot-add (≥ MemoryMib).</param>
/// <param name="StoragePool">"local" (this host's directory) or "shared" (the pool every host reaches); see <see cref="StoragePools"/>.</param>
public sealed record VmSpec(
    InstanceId Id,
    string Name,
    int Vcpus,
    long MemoryMib,
    long DiskGib,
    string? ImagePath,
    string? ImageFormat,
    string? KernelPath,
    string? InitrdPath,
    string? KernelCmdline,
    string? UserData,
    IReadOnlyList<string> PublicKeys,
    IReadOnlyList<PortForward> Forwards,
    int MaxVcpus,
    long MaxMemoryMib,
    bool CpuCapped = true,
    string StoragePool = StoragePools.Local)
{
    /// <summary>Only for a live migration's destination (<c>PrepareIncomingAsync</c>): the source process's hot-plugged
    /// devices, which the destination recreates (boot with the source's boot size, then the same vCPUs and DIMMs in the same
    /// order) instead of booting <see cref="Vcpus"/>/<see cref="MemoryMib"/> directly. Null: nothing was hot-plugged.</summary>
    public HotPlugLayout? HotPlugged { get; init; }
}

/// <summary>What a driver observes of one VM.</summary>
/// <param name="Pid">Hypervisor process id, when there is one.</param>
/// <param name="Forwards">The forwards as actually bound (host ports resolved).</param>
public sealed record VmStatus(InstanceId Id, PowerState Power, int? Pid, IReadOnlyList<PortForward> Forwards, string? Detail = null)
{
    /// <summary>Set when the running process's vCPUs or memory were hot-plugged since it started (what a migration's
    /// destination must recreate); null otherwise.</summary>
    public HotPlugLayout? HotPlugged { get; init; }
}

/// <summary>What a driver detects about the host it runs on.</summary>
/// <param name="Accelerator">"kvm" when hardware virtualisation actually works, else "tcg" (or "sim").</param>
public sealed record HostInventory(int Cores, long MemoryMib, long DiskGib, string Accelerator, string CpuModel, int CgroupVersion)
{
    /// <summary>Who the hypervisor processes run as: a user name ("stratus-qemu"), "root", or "root (fallback: reason)"
    /// when dropping privileges failed on this host; null when the driver runs no processes (simulated).</summary>
    public string? HypervisorUser { get; init; }
}

/// <summary>A VM changed state without being asked (crash, guest power-off).</summary>
public sealed record VmEvent(InstanceId Id, PowerState Power, string Reason);

/// <summary>
/// The hypervisor driver contract: a small core every driver implements. Optional abilities
/// (live migration, resize, snapshots) are separate capability interfaces.
/// Every method is idempotent: asking for the state a VM is already in succeeds and changes nothing.
/// </summary>
public interface IComputeDriver : IAsyncDisposable
{
    /// <summary>"simulated" or "qemu".</summary>
    string Name { get; }

    /// <summary>Detects cores, memory, disk, accelerator of this host.</summary>
    Task<HostInventory> DetectInventoryAsync(CancellationToken cancellationToken);

    /// <summary>Finds VMs that exist on this host (adopting running ones after a restart; never restarting them).</summary>
    Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Creates the VM's disk and resources and boots it. Idempotent: an existing VM is left as it is.</summary>
    Task<VmStatus> CreateAsync(VmSpec spec, CancellationToken cancellationToken);

    /// <summary>Boots an existing, stopped VM.</summary>
    Task<VmStatus> StartAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Stops a VM: gracefully (ACPI) within <paramref name="graceful"/>, then forced. Zero forces at once.</summary>
    Task<VmStatus> StopAsync(InstanceId id, TimeSpan graceful, CancellationToken cancellationToken);

    /// <summary>Reboots: soft through the guest, hard by resetting the machine.</summary>
    Task<VmStatus> RebootAsync(InstanceId id, bool hard, CancellationToken cancellationToken);

    Task<VmStatus> PauseAsync(InstanceId id, CancellationToken cancellationToken);

    Task<VmStatus> ResumeAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>Stops the VM if needed and removes everything it had (process, cgroup, disk, ports). Idempotent.</summary>
    Task DestroyAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>The VM's status, or null when it does not exist here.</summary>
    Task<VmStatus?> GetStatusAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>The last <paramref name="maxBytes"/> of the VM's serial console.</summary>
    Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken);

    /// <summary>Stops every VM on this host (for `stratus down`); desired state is untouched.</summary>
    Task ShutdownAllAsync(TimeSpan graceful, CancellationToken cancellationToken);

    /// <summary>Raised when a VM changes state on its own.</summary>
    event Action<VmEvent>? VmChanged;
}

/// <summary>Thrown by drivers for a request that cannot be satisfied (bad image, port in use). Carries a stable code.</summary>
public sealed class ComputeException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
