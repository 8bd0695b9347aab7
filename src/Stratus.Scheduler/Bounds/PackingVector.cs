using Stratus.Core.Resources;

namespace Stratus.Scheduler.Bounds;

/// <summary>A demand or a capacity in the four packed dimensions: milli-vCPUs, MiB, GiB of disk, milli-GPUs.</summary>
public readonly record struct PackingVector(long Cpu, long Memory, long Disk, long Gpu)
{
    /// <summary>Number of dimensions.</summary>
    public const int Dimensions = 4;

    public static PackingVector From(ResourceVector v, long gpuMilli = 0) => new(v.MilliVcpus, v.MemoryMib, v.DiskGib, gpuMilli);

    /// <summary>The value of dimension <paramref name="d"/> (0 cpu, 1 memory, 2 disk, 3 gpu).</summary>
    public long this[int d] => d switch
    {
        0 => Cpu,
        1 => Memory,
        2 => Disk,
        3 => Gpu,
        _ => throw new ArgumentOutOfRangeException(nameof(d)),
    };

    public static PackingVector operator +(PackingVector a, PackingVector b) => new(a.Cpu + b.Cpu, a.Memory + b.Memory, a.Disk + b.Disk, a.Gpu + b.Gpu);

    public bool FitsIn(PackingVector c) => Cpu <= c.Cpu && Memory <= c.Memory && Disk <= c.Disk && Gpu <= c.Gpu;
}
