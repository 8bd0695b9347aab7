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
/// <param name="ActionSeq">Bumped for every requested action, so agents tell a new reboot from an old one.</param>
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
    long ActionSeq,
    long Version,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? TaskRequestedAt);

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
