using Stratus.Compute.Qemu.Cgroups;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>The v2 writer against a fake cgroup tree (plain files in a temp directory) and the detector on fake mountinfo.</summary>
public sealed class CgroupWriterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "fake-cgroup-" + Guid.NewGuid().ToString("N"));

    public CgroupWriterTests()
    {
        Directory.CreateDirectory(_root);
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
        File.WriteAllText(Path.Combine(_root, "cgroup.subtree_control"), "");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task V2_CreateCapped_WritesCpuMaxMemoryMaxAndEnablesControllers()
    {
        var writer = new CgroupV2Writer(_root, "stratus");
        await writer.CreateAsync("vm1", new CgroupLimits(200_000, 100_000, 300L * 1024 * 1024, CpuWeight: 2, ParentCpuWeight: 8), CancellationToken.None);

        var dir = Path.Combine(_root, "stratus", "vm1");
        Assert.Equal("200000 100000", await File.ReadAllTextAsync(Path.Combine(dir, "cpu.max")));
        Assert.Equal((300L * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), await File.ReadAllTextAsync(Path.Combine(dir, "memory.max")));
        foreach (var level in new[] { _root, Path.Combine(_root, "stratus") })
        {
            var enabled = (await File.ReadAllTextAsync(Path.Combine(level, "cgroup.subtree_control"))).Split(' ', '\n', StringSplitOptions.RemoveEmptyEntries).Select(w => w.TrimStart('+'));
            Assert.Contains("cpu", enabled);
            Assert.Contains("memory", enabled);
        }

        Assert.Equal("200", await File.ReadAllTextAsync(Path.Combine(dir, "cpu.weight")));
        Assert.Equal("800", await File.ReadAllTextAsync(Path.Combine(_root, "stratus", "cpu.weight")));
        Assert.Equal(2, writer.Version);
        Assert.True(writer.Exists("vm1"));
    }

    [Fact]
    public async Task V2_CreateUncapped_WritesMaxAndAddsProcess()
    {
        var writer = new CgroupV2Writer(_root, "stratus");
        await writer.CreateAsync("vm2", new CgroupLimits(null, 100_000, 128L * 1024 * 1024), CancellationToken.None);
        await writer.AddProcessAsync("vm2", 4242, CancellationToken.None);

        Assert.Equal("max 100000", await File.ReadAllTextAsync(Path.Combine(_root, "stratus", "vm2", "cpu.max")));
        Assert.Equal([4242], await writer.ReadProcessesAsync("vm2", CancellationToken.None));
    }

    [Fact]
    public async Task V2_ReadUsage_ParsesCpuStatAndMemoryCurrent()
    {
        var writer = new CgroupV2Writer(_root, "stratus");
        await writer.CreateAsync("vm3", new CgroupLimits(100_000, 100_000, 1), CancellationToken.None);
        var dir = Path.Combine(_root, "stratus", "vm3");
        await File.WriteAllTextAsync(Path.Combine(dir, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
        await File.WriteAllTextAsync(Path.Combine(dir, "memory.current"), "4096\n");

        var usage = await writer.ReadUsageAsync("vm3", CancellationToken.None);

        Assert.Equal(1_500_000, usage.CpuUsageNanoseconds);
        Assert.Equal(4096, usage.MemoryBytes);
    }

    [Fact]
    public async Task V2_Remove_IsIdempotent()
    {
        var writer = new CgroupV2Writer(_root, "stratus");
        await writer.CreateAsync("vm4", new CgroupLimits(null, 100_000, 1), CancellationToken.None);
        await writer.RemoveAsync("vm4", CancellationToken.None);
        Assert.False(writer.Exists("vm4"));
        await writer.RemoveAsync("vm4", CancellationToken.None);
        Assert.False(Directory.Exists(Path.Combine(_root, "stratus", "vm4")));
    }

    [Fact]
    public async Task V1_Create_WritesQuotaAndLimitInEachHierarchy()
    {
        string Mount(string name) => Directory.CreateDirectory(Path.Combine(_root, name)).FullName;
        var writer = new CgroupV1Writer(Mount("cpu"), Mount("cpuacct"), Mount("memory"), "stratus");
        await writer.CreateAsync("vm", new CgroupLimits(50_000, 100_000, 1024, CpuWeight: 4, ParentCpuWeight: 2), CancellationToken.None);
        await writer.AddProcessAsync("vm", 77, CancellationToken.None);

        Assert.Equal("50000", await File.ReadAllTextAsync(Path.Combine(_root, "cpu", "stratus", "vm", "cpu.cfs_quota_us")));
        Assert.Equal("4096", await File.ReadAllTextAsync(Path.Combine(_root, "cpu", "stratus", "vm", "cpu.shares")));
        Assert.Equal("2048", await File.ReadAllTextAsync(Path.Combine(_root, "cpu", "stratus", "cpu.shares")));
        Assert.Equal("1024", await File.ReadAllTextAsync(Path.Combine(_root, "memory", "stratus", "vm", "memory.limit_in_bytes")));
        Assert.Equal("77", await File.ReadAllTextAsync(Path.Combine(_root, "cpuacct", "stratus", "vm", "cgroup.procs")));
    }

    [Fact]
    public void Detector_MountInfo_PicksV2WhenUnifiedHasControllersElseV1()
    {
        var mountinfo = Path.Combine(_root, "mountinfo");
        File.WriteAllText(mountinfo, $"30 1 0:26 / {_root} rw,nosuid - cgroup2 cgroup2 rw\n");
        Assert.IsType<CgroupV2Writer>(CgroupDetector.Create(CgroupMode.Auto, _root, "stratus", mountinfo));

        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "hugetlb\n");
        File.WriteAllText(mountinfo,
            $"30 1 0:26 / {_root}/unified rw - cgroup2 cgroup2 rw\n" +
            $"31 1 0:27 / {_root}/cpu rw - cgroup cgroup rw,cpu\n" +
            $"32 1 0:28 / {_root}/cpuacct rw - cgroup cgroup rw,cpuacct\n" +
            $"33 1 0:29 / {_root}/memory rw - cgroup cgroup rw,memory\n");
        var v1 = CgroupDetector.Create(CgroupMode.Auto, _root, "stratus", mountinfo);
        Assert.Equal(1, Assert.IsType<CgroupV1Writer>(v1).Version);
        Assert.Null(CgroupDetector.Create(CgroupMode.None, _root, "stratus", mountinfo));
        Assert.Throws<InvalidOperationException>(() => CgroupDetector.Create(CgroupMode.V2, _root, "stratus", mountinfo));
    }

    [Fact]
    public void FavorDynMods_HybridHost_RemountKeepsEveryOptionAndAddsIt()
    {
        string[] mountInfo =
        [
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
            "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
            "32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu",
        ];

        var plan = CgroupTuning.PlanRemount(mountInfo, out var already);

        Assert.False(already);
        Assert.Equal(("/sys/fs/cgroup/unified", "rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot,favordynmods"), plan);
    }

    [Fact]
    public void FavorDynMods_AlreadyOnOrNoCgroup2_NothingToDo()
    {
        Assert.Null(CgroupTuning.PlanRemount(["31 30 0:27 / /sys/fs/cgroup rw,relatime shared:10 - cgroup2 cgroup2 rw,favordynmods"], out var on));
        Assert.True(on);
        Assert.Null(CgroupTuning.PlanRemount(["32 30 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:11 - cgroup cgroup rw,cpu", "garbage"], out var v1));
        Assert.False(v1);
        Assert.Equal(("/srv/cg roup", "rw,favordynmods"), CgroupTuning.PlanRemount(["31 30 0:27 / /srv/cg\\040roup rw shared:10 - cgroup2 cgroup2 rw"], out _));
    }

    /// <summary>On this host, as root: the option ends up on and the mount keeps every flag it had (a remount that named only
    /// the new option would drop nosuid/nodev/noexec).</summary>
    [Fact]
    public async Task FavorDynMods_RealHost_TurnedOnWithOtherOptionsKept()
    {
        var before = File.ReadAllLines("/proc/self/mountinfo").FirstOrDefault(l => l.Contains(" - cgroup2 ", StringComparison.Ordinal));
        if (!Environment.IsPrivilegedProcess || before is null || Environment.OSVersion.Version.Major < 6)
        {
            Assert.Fail($"this test needs root, a cgroup2 mount and Linux ≥ 6.0 (CI runs as root on such a host): root={Environment.IsPrivilegedProcess}, cgroup2={before is not null}");
        }

        var outcome = await CgroupTuning.EnsureFavorDynModsAsync("/proc/self/mountinfo", "mount", CancellationToken.None);

        Assert.True(outcome.Enabled, outcome.Detail);
        var after = File.ReadAllLines("/proc/self/mountinfo").First(l => l.Contains(" - cgroup2 ", StringComparison.Ordinal));
        Assert.Contains("favordynmods", after.Split(' ').Last().Split(','));
        Assert.Equal(before.Split(' ')[5].Split(',').Order(), after.Split(' ')[5].Split(',').Order());
        Assert.Equal(before.Split(' ').Last().Split(',').Where(o => o != "favordynmods").Order(), after.Split(' ').Last().Split(',').Where(o => o != "favordynmods").Order());
    }
}
