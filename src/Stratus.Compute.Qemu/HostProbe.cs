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

    /// <summary>Size (free + used) of the file system holding <paramref name="directory"/>, in GiB.</summary>
    public static long DiskGib(string directory)
    {
        Directory.CreateDirectory(directory);
        var drive = new DriveInfo(directory);
        return drive.TotalSize / (1024L * 1024 * 1024);
    }
}
