namespace Stratus.Core.Resources;

/// <summary>
/// An amount of host resources in fine integer units, so fractional demands and allocation
/// ratios stay exact: CPU in milli-vCPUs (1 vCPU = 1000), memory in MiB, disk in GiB.
/// </summary>
public readonly record struct ResourceVector(long MilliVcpus, long MemoryMib, long DiskGib)
{
    public static readonly ResourceVector Zero = new(0, 0, 0);

    /// <summary>A vector of whole vCPUs, MiB of memory and GiB of disk.</summary>
    public static ResourceVector Of(int vcpus, long memoryMib, long diskGib) => new(vcpus * 1000L, memoryMib, diskGib);

    public static ResourceVector operator +(ResourceVector a, ResourceVector b) =>
        new(a.MilliVcpus + b.MilliVcpus, a.MemoryMib + b.MemoryMib, a.DiskGib + b.DiskGib);

    public static ResourceVector operator -(ResourceVector a, ResourceVector b) =>
        new(a.MilliVcpus - b.MilliVcpus, a.MemoryMib - b.MemoryMib, a.DiskGib - b.DiskGib);

    public static ResourceVector operator *(ResourceVector a, int n) =>
        new(a.MilliVcpus * n, a.MemoryMib * n, a.DiskGib * n);

    /// <summary>True when every dimension of this vector is at most the same dimension of <paramref name="other"/>.</summary>
    public bool FitsIn(ResourceVector other) =>
        MilliVcpus <= other.MilliVcpus && MemoryMib <= other.MemoryMib && DiskGib <= other.DiskGib;

    /// <summary>True when any dimension is negative.</summary>
    public bool AnyNegative => MilliVcpus < 0 || MemoryMib < 0 || DiskGib < 0;

    public override string ToString() => $"{MilliVcpus / 1000.0:0.###} vCPU, {MemoryMib} MiB, {DiskGib} GiB";
}

/// <summary>
/// Allocation ratios (over-commit factors) in thousandths so they stay exact: 4.0 is 4000.
/// Capacity = (total − reserved) × ratio.
/// </summary>
public readonly record struct AllocationRatios(int CpuPermille, int RamPermille, int DiskPermille)
{
    /// <summary>The defaults: cpu 4.0, ram 1.0, disk 1.0.</summary>
    public static readonly AllocationRatios Default = new(4000, 1000, 1000);

    public static AllocationRatios FromDecimal(double cpu, double ram, double disk) =>
        new((int)Math.Round(cpu * 1000), (int)Math.Round(ram * 1000), (int)Math.Round(disk * 1000));

    public double Cpu => CpuPermille / 1000.0;
    public double Ram => RamPermille / 1000.0;
    public double Disk => DiskPermille / 1000.0;

    /// <summary>Usable capacity of <paramref name="total"/> less <paramref name="reserved"/> under these ratios, rounded down.</summary>
    public ResourceVector Capacity(ResourceVector total, ResourceVector reserved) => new(
        (total.MilliVcpus - reserved.MilliVcpus) * CpuPermille / 1000,
        (total.MemoryMib - reserved.MemoryMib) * RamPermille / 1000,
        (total.DiskGib - reserved.DiskGib) * DiskPermille / 1000);
}
