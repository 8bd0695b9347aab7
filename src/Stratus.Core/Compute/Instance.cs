using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Compute;

/// <summary>The stable state of a server (changes only when a task finishes).</summary>
public enum VmState { Building, Active, Stopped, Paused, Error, Deleted }

/// <summary>The task in progress on a server; null when idle.</summary>
public enum InstanceTask
{
    Scheduling,
    Spawning,
    Starting,
    Stopping,
    Rebooting,
    RebootingHard,
    Pausing,
    Resuming,
    Deleting,
    Migrating,
    Resizing,
    Recovering,
}

/// <summary>What the hypervisor says a VM is doing.</summary>
public enum PowerState { NoState, Running, Paused, Shutdown, Crashed }

/// <summary>A cloud server as recorded in the store.</summary>
/// <param name="Version">Row version: every update compare-and-swaps on it.</param>
/// <param name="Fault">Why the server is in error, when it is.</param>
/// <param name="TaskRequestedAt">When the current task was requested (for timeouts).</param>
/// <param name="RebootSeq">Bumped for every reboot request, so an agent tells a new reboot from one it already did.</param>
/// <param name="Forwards">Port forwards; a host port of 0 means "not chosen yet".</param>
/// <param name="ProjectId">The project that owns the server; null means the built-in admin project.</param>
/// <param name="MaxVcpus">Live vCPU ceiling the server was started with (QEMU <c>maxcpus</c>); 0 = its size, no hot-add.</param>
/// <param name="MaxMemoryMib">Live memory ceiling (QEMU <c>maxmem</c>), MiB; 0 = its size, no hot-add.</param>
/// <param name="PendingResize">Set while a cold resize waits for confirm or revert (status <c>verify_resize</c>): the size before it.</param>
public sealed record Instance(
    InstanceId Id,
    string Name,
    FlavorId FlavorId,
    ImageId ImageId,
    HostId? HostId,
    VmState VmState,
    InstanceTask? Task,
    PowerState PowerState,
    ResourceVector Resources,
    string? Fault,
    string? IdempotencyKey,
    long RebootSeq,
    long Version,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? TaskRequestedAt,
    string? UserData = null,
    string? KeyName = null,
    string? Zone = null,
    IReadOnlyList<Forward>? Forwards = null,
    Guid? GroupId = null,
    IReadOnlyList<string>? Traits = null,
    Guid? BatchId = null,
    bool BatchAllOrNothing = false,
    string StoragePool = "local",
    bool Ha = false,
    int HaPriority = 0,
    Guid? ProjectId = null,
    int MaxVcpus = 0,
    long MaxMemoryMib = 0,
    PendingResize? PendingResize = null)
{
    /// <summary>The live vCPU ceiling in force (never below the current size).</summary>
    public int VcpuCeiling => Math.Max(MaxVcpus, (int)(Resources.MilliVcpus / 1000));

    /// <summary>The live memory ceiling in force, MiB (never below the current size).</summary>
    public long MemoryCeilingMib => Math.Max(MaxMemoryMib, Resources.MemoryMib);

    /// <summary>True while the server holds (or is about to hold) resources on a host.</summary>
    public bool IsLive => VmState != VmState.Deleted;

    /// <summary>The owning project (servers created before projects existed belong to the admin project).</summary>
    public Guid Project => ProjectId ?? Stratus.Core.Identity.Project.AdminId;
}

/// <summary>A port forward from host port to guest port (host port 0 until chosen).</summary>
public readonly record struct Forward(int HostPort, int GuestPort);

/// <summary>One entry in a server's action log (who, what, when, result).</summary>
public sealed record InstanceAction(
    long Seq,
    InstanceId InstanceId,
    string Action,
    string RequestedBy,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string Result,
    string? Message);

/// <summary>What a cold resize replaced, kept until it is confirmed or reverted; a revert restores exactly this.</summary>
/// <param name="At">When the resize took effect.</param>
public sealed record PendingResize(FlavorId FlavorId, ResourceVector Resources, int MaxVcpus, long MaxMemoryMib, DateTimeOffset At);
