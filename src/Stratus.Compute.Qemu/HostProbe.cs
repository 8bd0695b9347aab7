using System.Globalization;

namespace Stratus.Compute.Qemu;

/// <summary>Reads this host's capacity from <c>/proc</c> and the data directory's file system.</summary>
internal static class HostProbe
{
    public static long MemoryMib(string meminfo = "/proc/meminfo")
    {
        foreach (var line in File.ReadLines(meminfo))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var kib = long.Parse(line["MemTotal:".Length..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);
                return kib / 1024;
            }
        }

        throw new InvalidDataException("MemTotal missing from " + meminfo);
    }

    public static string CpuModel(string cpuinfo = "/proc/cpuinfo")
    {
        foreach (var line in File.ReadLines(cpuinfo))
        {
            if (line.StartsWith("model name", StringComparison.Ordinal))
            {
                return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }

        return "unknown";
    }

    /// <summary>Busy and total CPU time of the whole host since boot, in clock ticks (first line of /proc/stat).
    /// Busy is user + nice + system + irq + softirq + steal; total adds idle and iowait.</summary>
    public static (long Busy, long Total) CpuTicks(string stat = "/proc/stat")
    {
        using var reader = new StreamReader(stat);
        var f = (reader.ReadLine() ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 9 || f[0] != "cpu")
        {
            throw new InvalidDataException("no cpu line in " + stat);
        }

        long F(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
        var busy = F(1) + F(2) + F(3) + F(6) + F(7) + F(8);
        return (busy, busy + F(4) + F(5));
    }

    /// <summary>Memory in use (MemTotal − MemAvailable), in MiB.</summary>
    public static long MemoryUsedMib(string meminfo = "/proc/meminfo")
    {
        long total = -1, available = -1;
        foreach (var line in File.ReadLines(meminfo))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                total = Kib(line);
            }
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
            {
                available = Kib(line);
            }
        }

        return total < 0 || available < 0 ? throw new InvalidDataException("MemTotal or MemAvailable missing from " + meminfo) : (total - available) / 1024;
    }

    private static long Kib(string line) =>
        long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);

    /// <summary>Used space (size − free) of the file system holding <paramref name="directory"/>, in GiB.</summary>
    public static long DiskUsedGib(string directory)
    {
        var drive = new DriveInfo(directory);
        return (drive.TotalSize - drive.TotalFreeSpace) / (1024L * 1024 * 1024);
    }

    /// <summary>CPU time (user + system, ns) and resident memory (bytes) of one process, from /proc; null when it is gone.
    /// Clock ticks are USER_HZ = 100, as on every Linux architecture .NET runs on.</summary>
    public static (long CpuNanoseconds, long RssBytes)? ProcessUsage(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
            var statm = File.ReadAllText($"/proc/{pid}/statm").Split(' ');
            var rss = long.Parse(statm[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
            return (ticks * 10_000_000, rss);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Size (free + used) of the file system holding <paramref name="directory"/>, in GiB.</summary>
    public static long DiskGib(string directory)
    {
        Directory.CreateDirectory(directory);
        var drive = new DriveInfo(directory);
        return drive.TotalSize / (1024L * 1024 * 1024);
    }
}
