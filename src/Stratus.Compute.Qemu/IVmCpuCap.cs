using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Capability: change a running VM's CPU cap without restarting it. The cap is CPU time per period, in cores
/// (1.0 = one host core); null restores the spec's default (vCPUs × period when <see cref="VmSpec.CpuCapped"/>, else none).
/// The cap is kept in the VM's state and survives stop/start and adoption.
/// </summary>
public interface IVmCpuCap
{
    /// <summary>Sets the cap (0.01–vCPUs cores) or restores the default with null. not_found for a missing VM.</summary>
    Task SetCpuCapAsync(InstanceId id, double? cores, CancellationToken cancellationToken);
}
