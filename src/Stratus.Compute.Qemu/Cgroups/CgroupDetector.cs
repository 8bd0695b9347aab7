namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>Chooses the cgroup writer for this host from <c>/proc/self/mountinfo</c>.</summary>
public static class CgroupDetector
{
    /// <summary>The writer for <paramref name="mode"/>, or null for <see cref="CgroupMode.None"/> or when
    /// <see cref="CgroupMode.Auto"/> finds no usable hierarchy. Throws when V1/V2 is asked for and missing.</summary>
    public static ICgroupWriter? Create(CgroupMode mode, string root, string parent, string mountInfoPath = "/proc/self/mountinfo")
    {
        if (mode == CgroupMode.None)
        {
            return null;
        }

        var mounts = ReadMounts(mountInfoPath);
        var v2 = mounts.FirstOrDefault(m => m.Type == "cgroup2" && m.MountPoint == root);
        var v2Usable = v2 is not null && File.Exists(Path.Combine(root, "cgroup.controllers"))
            && File.ReadAllText(Path.Combine(root, "cgroup.controllers")).Split(' ', '\n').Intersect(["cpu", "memory"]).Count() == 2;
        if (mode == CgroupMode.V2 || (mode == CgroupMode.Auto && v2Usable))
        {
            return v2Usable ? new CgroupV2Writer(root, parent)
                : throw new InvalidOperationException($"cgroup v2 with cpu and memory controllers is not mounted at {root}");
        }

        string? Find(string controller) => mounts.FirstOrDefault(m => m.Type == "cgroup" && m.Options.Contains(controller)
            && m.MountPoint.StartsWith(root, StringComparison.Ordinal))?.MountPoint;
        var cpu = Find("cpu");
        var cpuacct = Find("cpuacct");
        var memory = Find("memory");
        if (cpu is not null && cpuacct is not null && memory is not null)
        {
            return new CgroupV1Writer(cpu, cpuacct, memory, parent);
        }

        return mode == CgroupMode.V1
            ? throw new InvalidOperationException($"cgroup v1 cpu, cpuacct and memory hierarchies are not all mounted under {root}")
            : null;
    }

    private sealed record Mount(string MountPoint, string Type, string[] Options);

    private static List<Mount> ReadMounts(string mountInfoPath)
    {
        var result = new List<Mount>();
        if (!File.Exists(mountInfoPath))
        {
            return result;
        }

        foreach (var line in File.ReadLines(mountInfoPath))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var parts = line.Split(' ');
            var sep = Array.IndexOf(parts, "-");
            if (sep < 5 || parts.Length < sep + 4)
            {
                continue;
            }

            result.Add(new Mount(parts[4], parts[sep + 1], parts[sep + 3].Split(',')));
        }

        return result;
    }
}
