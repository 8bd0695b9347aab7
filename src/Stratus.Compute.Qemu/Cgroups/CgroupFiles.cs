using System.Globalization;

namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>Small helpers shared by the cgroup writers.</summary>
internal static class CgroupFiles
{
    public static async Task WriteAsync(string path, string value, CancellationToken cancellationToken)
    {
        // cgroupfs wants one write() of the whole value, without truncate or create.
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
        var bytes = System.Text.Encoding.ASCII.GetBytes(value);
        await stream.WriteAsync(bytes, cancellationToken);
    }

    /// <summary>Writes a value into a control file of a fake tree (creates the file) or a real one.</summary>
    public static async Task WriteOrCreateAsync(string path, string value, CancellationToken cancellationToken)
    {
        if (File.Exists(path))
        {
            await WriteAsync(path, value, cancellationToken);
        }
        else
        {
            await File.WriteAllTextAsync(path, value, cancellationToken);
        }
    }

    public static async Task<IReadOnlyList<int>> ReadPidsAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        var text = await File.ReadAllTextAsync(path, cancellationToken);
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
    }

    public static async Task<long> ReadLongAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return 0;
        }

        var text = (await File.ReadAllTextAsync(path, cancellationToken)).Trim();
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0;
    }

    /// <summary>rmdir of a cgroup; retried while the kernel still counts exiting processes. A fake tree
    /// (plain files) is removed recursively.</summary>
    public static async Task RemoveDirectoryAsync(string path, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            if (!Directory.Exists(path))
            {
                return;
            }

            try
            {
                Directory.Delete(path, recursive: false);
                return;
            }
            catch (IOException) when (!IsCgroupFs(path))
            {
                Directory.Delete(path, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 50)
            {
                await Task.Delay(20, cancellationToken);
            }
        }
    }

    private static bool IsCgroupFs(string path)
    {
        try
        {
            var full = Path.GetFullPath(path);
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                var parts = line.Split(' ');
                var sep = Array.IndexOf(parts, "-");
                if (sep > 0 && parts.Length > sep + 1 && parts[sep + 1] is "cgroup" or "cgroup2" && full.StartsWith(parts[4] + "/", StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
        }

        return false;
    }
}
