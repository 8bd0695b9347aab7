using System.Globalization;

namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>
/// cgroup v1: one directory per controller hierarchy (<c>cpu</c>, <c>cpuacct</c>, <c>memory</c>; the first two may share
/// a mount). Writes <c>cpu.cfs_period_us</c>/<c>cpu.cfs_quota_us</c>, <c>memory.limit_in_bytes</c> and sets
/// <c>memory.move_charge_at_immigrate</c> so memory QEMU touched before the move follows it.
/// </summary>
/// <param name="cpuMount">Mount point of the hierarchy with the cpu controller.</param>
/// <param name="cpuacctMount">Mount point of the hierarchy with cpuacct (may equal <paramref name="cpuMount"/>).</param>
/// <param name="memoryMount">Mount point of the memory hierarchy.</param>
public sealed class CgroupV1Writer(string cpuMount, string cpuacctMount, string memoryMount, string parent) : ICgroupWriter
{
    /// <inheritdoc />
    public int Version => 1;

    private IEnumerable<string> Mounts => new[] { cpuMount, cpuacctMount, memoryMount }.Distinct(StringComparer.Ordinal);

    private string PathOf(string mount, string name) => Path.Combine(mount, parent, name);

    /// <inheritdoc />
    public async Task CreateAsync(string name, CgroupLimits limits, CancellationToken cancellationToken)
    {
        foreach (var mount in Mounts)
        {
            Directory.CreateDirectory(PathOf(mount, name));
        }

        var cpu = PathOf(cpuMount, name);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(cpuMount, parent, "cpu.shares"), (1024L * Math.Max(1, limits.ParentCpuWeight)).ToString(CultureInfo.InvariantCulture), cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(cpu, "cpu.shares"), (1024L * Math.Max(1, limits.CpuWeight)).ToString(CultureInfo.InvariantCulture), cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(cpu, "cpu.cfs_period_us"), limits.CpuPeriodMicroseconds.ToString(CultureInfo.InvariantCulture), cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(cpu, "cpu.cfs_quota_us"), (limits.CpuQuotaMicroseconds ?? -1).ToString(CultureInfo.InvariantCulture), cancellationToken);
        var memory = PathOf(memoryMount, name);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(memory, "memory.limit_in_bytes"), limits.MemoryLimitBytes.ToString(CultureInfo.InvariantCulture), cancellationToken);
        var move = Path.Combine(memory, "memory.move_charge_at_immigrate");
        if (File.Exists(move))
        {
            try
            {
                await CgroupFiles.WriteAsync(move, "3", cancellationToken);
            }
            catch (IOException)
            {
                // Deprecated in newer kernels; without it only memory touched after the move is charged.
            }
        }
    }

    /// <inheritdoc />
    public async Task AddProcessAsync(string name, int pid, CancellationToken cancellationToken)
    {
        foreach (var mount in Mounts)
        {
            await CgroupFiles.WriteOrCreateAsync(Path.Combine(PathOf(mount, name), "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture), cancellationToken);
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<int>> ReadProcessesAsync(string name, CancellationToken cancellationToken) =>
        CgroupFiles.ReadPidsAsync(Path.Combine(PathOf(memoryMount, name), "cgroup.procs"), cancellationToken);

    /// <inheritdoc />
    public async Task<CgroupUsage> ReadUsageAsync(string name, CancellationToken cancellationToken) =>
        new(await CgroupFiles.ReadLongAsync(Path.Combine(PathOf(cpuacctMount, name), "cpuacct.usage"), cancellationToken),
            await CgroupFiles.ReadLongAsync(Path.Combine(PathOf(memoryMount, name), "memory.usage_in_bytes"), cancellationToken));

    /// <inheritdoc />
    public bool Exists(string name) => Mounts.Any(m => Directory.Exists(PathOf(m, name)));

    /// <inheritdoc />
    public async Task RemoveAsync(string name, CancellationToken cancellationToken)
    {
        foreach (var mount in Mounts)
        {
            await CgroupFiles.RemoveDirectoryAsync(PathOf(mount, name), cancellationToken);
        }
    }
}
