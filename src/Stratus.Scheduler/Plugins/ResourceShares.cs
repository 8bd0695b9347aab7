using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Per-dimension fractions used by the resource scorers. CPU and memory always count; disk and
/// GPU count only when the request asks for them, so every host is scored on the same dimensions.
/// </summary>
internal static class ResourceShares
{
    /// <summary>Fills <paramref name="free"/> with the free fraction of each counted dimension after placing the request; returns how many.</summary>
    public static int FreeAfter(CycleState state, HostSnapshot host, Span<double> free)
    {
        var c = host.Capacity;
        var u = host.Used;
        var n = 0;
        free[n++] = Fraction(c.MilliVcpus - u.MilliVcpus - state.Cpu, c.MilliVcpus);
        free[n++] = Fraction(c.MemoryMib - u.MemoryMib - state.Memory, c.MemoryMib);
        if (state.Disk > 0)
        {
            free[n++] = Fraction(c.DiskGib - u.DiskGib - state.Disk, c.DiskGib);
        }
        if (state.Gpu > 0)
        {
            free[n++] = Fraction(host.GpuMilliCapacity - host.GpuMilliUsed - state.Gpu, host.GpuMilliCapacity);
        }
        return n;
    }

    public static double Fraction(long part, long whole) => whole <= 0 ? 0 : Math.Clamp((double)part / whole, 0, 1);
}
