using System.Globalization;

namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>
/// cgroup v2 (unified hierarchy): <c>&lt;root&gt;/&lt;parent&gt;/&lt;name&gt;/</c> with <c>cpu.max</c>, <c>memory.max</c> and
/// <c>cgroup.procs</c>; enables the cpu and memory controllers in <c>cgroup.subtree_control</c> of the root and the parent.
/// Works on a fake tree of plain files too (the files are created), which is how it is tested.
/// </summary>
public sealed class CgroupV2Writer(string root, string parent) : ICgroupWriter
{
    /// <inheritdoc />
    public int Version => 2;

    private string ParentPath => Path.Combine(root, parent);

    private string PathOf(string name) => Path.Combine(root, parent, name);

    /// <inheritdoc />
    public async Task CreateAsync(string name, CgroupLimits limits, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(ParentPath);
        await EnableControllersAsync(root, cancellationToken);
        await EnableControllersAsync(ParentPath, cancellationToken);
        var dir = PathOf(name);
        Directory.CreateDirectory(dir);
        var cpu = limits.CpuQuotaMicroseconds is { } q
            ? string.Create(CultureInfo.InvariantCulture, $"{q} {limits.CpuPeriodMicroseconds}")
            : string.Create(CultureInfo.InvariantCulture, $"max {limits.CpuPeriodMicroseconds}");
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(dir, "cpu.max"), cpu, cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(ParentPath, "cpu.weight"), Weight(limits.ParentCpuWeight), cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(dir, "cpu.weight"), Weight(limits.CpuWeight), cancellationToken);
        await CgroupFiles.WriteOrCreateAsync(Path.Combine(dir, "memory.max"), limits.MemoryLimitBytes.ToString(CultureInfo.InvariantCulture), cancellationToken);
        var swap = Path.Combine(dir, "memory.swap.max");
        if (File.Exists(swap))
        {
            await CgroupFiles.WriteAsync(swap, "0", cancellationToken);
        }
    }

    private static string Weight(int units) => Math.Clamp(100L * Math.Max(1, units), 1, 10_000).ToString(CultureInfo.InvariantCulture);

    private static async Task EnableControllersAsync(string dir, CancellationToken cancellationToken)
    {
        var path = Path.Combine(dir, "cgroup.subtree_control");
        var current = File.Exists(path) ? await File.ReadAllTextAsync(path, cancellationToken) : "";
        var words = current.Split(' ', '\n', StringSplitOptions.RemoveEmptyEntries).Select(w => w.TrimStart('+')).ToArray();
        if (words.Contains("cpu") && words.Contains("memory"))
        {
            return;
        }

        if (File.Exists(path))
        {
            await CgroupFiles.WriteAsync(path, "+cpu +memory", cancellationToken);
        }
        else
        {
            await File.WriteAllTextAsync(path, string.Join(' ', words.Union(["cpu", "memory"]).Select(w => "+" + w)), cancellationToken);
        }
    }

    /// <inheritdoc />
    public Task AddProcessAsync(string name, int pid, CancellationToken cancellationToken) =>
        CgroupFiles.WriteOrCreateAsync(Path.Combine(PathOf(name), "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture), cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<int>> ReadProcessesAsync(string name, CancellationToken cancellationToken) =>
        CgroupFiles.ReadPidsAsync(Path.Combine(PathOf(name), "cgroup.procs"), cancellationToken);

    /// <inheritdoc />
    public async Task<CgroupUsage> ReadUsageAsync(string name, CancellationToken cancellationToken)
    {
        long usageUsec = 0;
        var stat = Path.Combine(PathOf(name), "cpu.stat");
        if (File.Exists(stat))
        {
            foreach (var line in await File.ReadAllLinesAsync(stat, cancellationToken))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 2 && parts[0] == "usage_usec")
                {
                    usageUsec = long.Parse(parts[1], CultureInfo.InvariantCulture);
                }
            }
        }

        var memory = await CgroupFiles.ReadLongAsync(Path.Combine(PathOf(name), "memory.current"), cancellationToken);
        return new CgroupUsage(usageUsec * 1000, memory);
    }

    /// <inheritdoc />
    public bool Exists(string name) => Directory.Exists(PathOf(name));

    /// <inheritdoc />
    public Task RemoveAsync(string name, CancellationToken cancellationToken) => CgroupFiles.RemoveDirectoryAsync(PathOf(name), cancellationToken);
}
