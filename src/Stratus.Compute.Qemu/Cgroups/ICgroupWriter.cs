namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>Limits of one VM's cgroup.</summary>
/// <param name="CpuQuotaMicroseconds">CPU time allowed per period, in µs; null = unlimited.</param>
/// <param name="CpuPeriodMicroseconds">CFS period, in µs.</param>
/// <param name="MemoryLimitBytes">Hard memory limit (guest RAM + QEMU overhead).</param>
/// <param name="CpuWeight">Relative CPU weight under contention, in vCPUs (v1: cpu.shares = 1024 × this; v2: cpu.weight = 100 × this).</param>
/// <param name="ParentCpuWeight">Weight of the parent of all VM cgroups against the host's other processes, in cores (same scale).</param>
public readonly record struct CgroupLimits(long? CpuQuotaMicroseconds, int CpuPeriodMicroseconds, long MemoryLimitBytes, int CpuWeight = 1, int ParentCpuWeight = 1);

/// <summary>What a VM's cgroup has used.</summary>
/// <param name="CpuUsageNanoseconds">Cumulative CPU time of its processes.</param>
/// <param name="MemoryBytes">Current memory charge.</param>
public readonly record struct CgroupUsage(long CpuUsageNanoseconds, long MemoryBytes);

/// <summary>
/// Writes one cgroup per VM under a parent (e.g. <c>stratus/&lt;instance id&gt;</c>). Implementations exist for
/// cgroup v1 (one hierarchy per controller) and v2 (unified). All methods are idempotent; <see cref="RemoveAsync"/>
/// of a missing cgroup does nothing. A process must be added while it has not yet run guest code
/// (QEMU started with <c>-S</c>): memory already charged elsewhere does not follow it on v2.
/// </summary>
public interface ICgroupWriter
{
    /// <summary>1 or 2.</summary>
    int Version { get; }

    /// <summary>Creates (or updates) the cgroup and writes its limits.</summary>
    Task CreateAsync(string name, CgroupLimits limits, CancellationToken cancellationToken);

    /// <summary>Moves a process (all its threads) into the cgroup.</summary>
    Task AddProcessAsync(string name, int pid, CancellationToken cancellationToken);

    /// <summary>The process ids in the cgroup (empty when it does not exist).</summary>
    Task<IReadOnlyList<int>> ReadProcessesAsync(string name, CancellationToken cancellationToken);

    /// <summary>CPU and memory used so far.</summary>
    Task<CgroupUsage> ReadUsageAsync(string name, CancellationToken cancellationToken);

    /// <summary>True when the cgroup exists.</summary>
    bool Exists(string name);

    /// <summary>Removes the cgroup (its processes must have exited; retried briefly while the kernel reaps them).</summary>
    Task RemoveAsync(string name, CancellationToken cancellationToken);
}
