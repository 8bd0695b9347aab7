using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Stratus.Core.Ids;

namespace Stratus.Core.Backups;

/// <summary>One file of a backup.</summary>
/// <param name="Role">"disk" (qcow2, flattened, or for an incremental a qcow2 whose backing is the parent's disk),
/// "kernel", "initrd", "cmdline", or "sim" (the simulated driver's stand-in disk).</param>
public sealed record BackupFileEntry(string Name, string Role, long SizeBytes, string Sha256);

/// <summary>The manifest of one backup (<c>manifest.json</c> in its directory).</summary>
/// <param name="Version">Manifest format version (1).</param>
/// <param name="Kind">"full" or "incremental".</param>
/// <param name="Parent">For an incremental: the directory name of the backup it builds on.</param>
/// <param name="VirtualSizeBytes">The disk's size as the guest sees it.</param>
public sealed record BackupManifest(
    int Version,
    InstanceId InstanceId,
    string Driver,
    string Kind,
    string? Parent,
    DateTimeOffset CreatedAt,
    long VirtualSizeBytes,
    IReadOnlyList<BackupFileEntry> Files);


/// <summary>The backup directory format, shared by drivers (writing) and the controller (verifying, restoring).</summary>
public static class BackupFiles
{
    public const string ManifestName = "manifest.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        await using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(s, cancellationToken));
    }

    /// <summary>Describes <paramref name="name"/> in <paramref name="directory"/> (size and checksum).</summary>
    public static async Task<BackupFileEntry> EntryAsync(string directory, string name, string role, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, name);
        return new BackupFileEntry(name, role, new FileInfo(path).Length, await Sha256Async(path, cancellationToken));
    }

    public static async Task WriteManifestAsync(string directory, BackupManifest manifest, CancellationToken cancellationToken)
    {
        var tmp = Path.Combine(directory, ManifestName + ".tmp");
        await File.WriteAllTextAsync(tmp, JsonSerializer.Serialize(manifest, Json), cancellationToken);
        File.Move(tmp, Path.Combine(directory, ManifestName), overwrite: true);
    }

    /// <summary>Reads a manifest; null when missing or unreadable.</summary>
    public static BackupManifest? ReadManifest(string directory)
    {
        try
        {
            return JsonSerializer.Deserialize<BackupManifest>(File.ReadAllText(Path.Combine(directory, ManifestName)), Json);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Checks every file of a backup against its manifest: present, same size, same SHA-256, and nothing but plain file
    /// names. Returns every problem found (empty = intact). Reads every byte: cost is one sequential read of the backup.
    /// </summary>
    public static async Task<IReadOnlyList<string>> VerifyAsync(string directory, CancellationToken cancellationToken)
    {
        var manifest = ReadManifest(directory);
        if (manifest is null)
        {
            return [$"{ManifestName} is missing or unreadable"];
        }
        var problems = new List<string>();
        if (manifest.Files is null || manifest.Files.Count == 0)
        {
            problems.Add("the manifest lists no files");
            return problems;
        }
        foreach (var f in manifest.Files)
        {
            if (string.IsNullOrEmpty(f.Name) || f.Name != Path.GetFileName(f.Name) || f.Name is "." or "..")
            {
                problems.Add($"file name '{f.Name}' is not a plain name");
                continue;
            }
            var path = Path.Combine(directory, f.Name);
            if (!File.Exists(path))
            {
                problems.Add($"{f.Name} is missing");
                continue;
            }
            var size = new FileInfo(path).Length;
            if (size != f.SizeBytes)
            {
                problems.Add($"{f.Name} is {size} bytes, the manifest says {f.SizeBytes}");
                continue;
            }
            var sum = await Sha256Async(path, cancellationToken);
            if (!string.Equals(sum, f.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"{f.Name} has SHA-256 {sum}, the manifest says {f.Sha256}");
            }
        }
        return problems;
    }
}
