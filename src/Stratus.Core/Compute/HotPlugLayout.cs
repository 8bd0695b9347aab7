namespace Stratus.Core.Compute;

/// <summary>
/// The device model of a running VM whose vCPUs or memory were hot-plugged since its hypervisor process started: what it
/// booted with and what was added, in order. A live migration's destination must be built with the same devices (not
/// simply the new size), or the source's device state does not fit it. Reported by the source's agent, handed to the
/// destination by the controller.
/// </summary>
/// <param name="BootVcpus">vCPUs the process was started with.</param>
/// <param name="PluggedVcpus">vCPUs it has now (boot plus hot-added, in slot order).</param>
/// <param name="BootMemoryMib">Memory it was started with.</param>
/// <param name="DimmsMib">Hot-plugged memory modules, MiB each, in plug order.</param>
public sealed record HotPlugLayout(int BootVcpus, int PluggedVcpus, long BootMemoryMib, IReadOnlyList<long> DimmsMib)
{
    /// <summary>Memory plugged in now (boot plus modules).</summary>
    public long PluggedMemoryMib => BootMemoryMib + DimmsMib.Sum();

    public bool Equals(HotPlugLayout? other) => other is not null && BootVcpus == other.BootVcpus && PluggedVcpus == other.PluggedVcpus
        && BootMemoryMib == other.BootMemoryMib && DimmsMib.SequenceEqual(other.DimmsMib);

    public override int GetHashCode() => HashCode.Combine(BootVcpus, PluggedVcpus, BootMemoryMib, DimmsMib.Count);
}
