using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Compute;

/// <summary>
/// The one set of host states. Only <see cref="Up"/> hosts receive new servers.
/// </summary>
public enum HostState
{
    /// <summary>Agent connected and heartbeating; schedulable.</summary>
    Up,
    /// <summary>Agent not heard from; not schedulable, VMs not yet recovered.</summary>
    Down,
    /// <summary>Disabled by an operator; existing VMs keep running, no new ones.</summary>
    Disabled,
    /// <summary>Being (or been) evacuated for maintenance; no new VMs.</summary>
    Maintenance,
    /// <summary>Powered down to save energy; woken when capacity is needed.</summary>
    Standby,
    /// <summary>Declared failed (missed heartbeats and a second witness); its epoch was bumped.</summary>
    Failed,
}

/// <summary>A physical host as recorded in the store: a resource provider with an inventory.</summary>
/// <param name="Generation">Bumped on every claim or release against this host; claims compare-and-swap on it.</param>
/// <param name="Epoch">Fencing token: bumped when the host is declared failed.</param>
/// <param name="Used">Sum of the allocations held on this host (the ledger's per-host total).</param>
/// <param name="HypervisorUser">Who the host's hypervisor processes run as, as its agent reported it (null: not reported).</param>
public sealed record Host(
    HostId Id,
    string Name,
    HostState State,
    ResourceVector Total,
    ResourceVector Reserved,
    AllocationRatios Ratios,
    ResourceVector Used,
    long Generation,
    long Epoch,
    string Zone,
    string Accelerator,
    string Driver,
    int? AgentPid,
    DateTimeOffset? LastHeartbeat,
    DateTimeOffset CreatedAt,
    IReadOnlyList<string>? Traits = null,
    string? HypervisorUser = null)
{
    /// <summary>Capacity under the allocation ratios, after reserved resources.</summary>
    public ResourceVector Capacity => Ratios.Capacity(Total, Reserved);

    /// <summary>What is still free to allocate.</summary>
    public ResourceVector Free => Capacity - Used;
}
