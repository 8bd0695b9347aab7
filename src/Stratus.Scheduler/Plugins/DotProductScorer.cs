using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Alignment of the request with the host's free resources (Tetris, Grandl et al. 2014): the
/// cosine between the demand and the free vector, both as fractions of the host's capacity. 1 when
/// the host has room in the same proportions the request asks for. A positive weight prefers
/// aligned hosts, which keeps leftover capacity usable (less fragmentation) when packing.
/// </summary>
public sealed class DotProductScorer : IScorePlugin
{
    public string Name => "DotProductScorer";

    public bool NeedsNormalize => false;

    public bool Prepare(CycleState state) => true;

    public double Score(CycleState state, HostSnapshot host)
    {
        var c = host.Capacity;
        var u = host.Used;
        var dot = 0.0;
        var dd = 0.0;
        var ff = 0.0;
        Add(state.Cpu, c.MilliVcpus - u.MilliVcpus, c.MilliVcpus, ref dot, ref dd, ref ff);
        Add(state.Memory, c.MemoryMib - u.MemoryMib, c.MemoryMib, ref dot, ref dd, ref ff);
        if (state.Disk > 0)
        {
            Add(state.Disk, c.DiskGib - u.DiskGib, c.DiskGib, ref dot, ref dd, ref ff);
        }
        if (state.Gpu > 0)
        {
            Add(state.Gpu, host.GpuMilliCapacity - host.GpuMilliUsed, host.GpuMilliCapacity, ref dot, ref dd, ref ff);
        }
        return dd <= 0 || ff <= 0 ? 0 : Math.Clamp(dot / Math.Sqrt(dd * ff), 0, 1);
    }

    public void Normalize(CycleState state, Span<double> scores)
    {
    }

    private static void Add(long demand, long free, long capacity, ref double dot, ref double dd, ref double ff)
    {
        if (capacity <= 0)
        {
            return;
        }
        var d = (double)demand / capacity;
        var f = (double)Math.Max(0, free) / capacity;
        dot += d * f;
        dd += d * d;
        ff += f * f;
    }
}
