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
/// <param name="Version">Manifest format version: 1 (full backups only), 2 (adds incrementals and <paramref name="FullReason"/>).</param>
/// <param name="Kind">"full" or "incremental" (<see cref="BackupKinds"/>).</param>
/// <param name="Parent">For an incremental: the directory name of the backup it builds on (a sibling directory in the
/// backup store; its <c>disk.qcow2</c> is the backing file of this one's, named <c>../PARENT/disk.qcow2</c>).</param>
/// <param name="VirtualSizeBytes">The disk's size as the guest sees it.</param>
/// <param name="Files">The files in this directory. An incremental lists its disk and only those of kernel, initrd and
/// command line that differ from the nearest ancestor's (an unchanged one is inherited from the chain).</param>
/// <param name="FullReason">Set on a full backup written although an incremental was asked for: why the chain could not
/// continue (no change-tracking bitmap, the disk was reverted to a snapshot, ...).</param>
public sealed record BackupManifest(
    int Version,
    InstanceId InstanceId,
    string Driver,
    string Kind,
    string? Parent,
    DateTimeOffset CreatedAt,
    long VirtualSizeBytes,
    IReadOnlyList<BackupFileEntry> Files,
    string? FullReason = null);

/// <summary>Backup kinds.</summary>
public static class BackupKinds
{
    /// <summary>Self-contained: the whole disk (base image flattened in) and, for a directly booted VM, its kernel files.</summary>
    public const string Full = "full";

    /// <summary>Only the clusters that changed since the parent backup; restoring it needs every link down to a full one.</summary>
    public const string Incremental = "incremental";
}


/// <summary>The backup directory format, shared by drivers (writing) and the controller (verifying, restoring).</summary>
public static class BackupFiles
{
    public const string ManifestName = "manifest.json";

    /// <summary>Manifest format written by current drivers.</summary>
    public const int ManifestVersion = 2;

    /// <summary>
    /// The entry of role <paramref name="role"/> that applies to the backup in <paramref name="directory"/>: its own, or
    /// (for an incremental that inherited it) the nearest ancestor's, found by following <see cref="BackupManifest.Parent"/>
    /// through sibling directories. Returns the directory holding the file with its entry; null when no link has one or
    /// the chain cannot be followed.
    /// </summary>
    public static (string Directory, BackupFileEntry Entry)? Effective(string directory, string role)
    {
        var dir = directory;
        for (var depth = 0; depth < 10_000; depth++)
        {
            var manifest = ReadManifest(dir);
            if (manifest is null)
            {
                return null;
            }
            if (manifest.Files?.FirstOrDefault(f => f.Role == role) is { } entry)
            {
                return (dir, entry);
            }
            if (manifest.Kind != BackupKinds.Incremental || string.IsNullOrEmpty(manifest.Parent) || manifest.Parent != Path.GetFileName(manifest.Parent))
            {
                return null;
            }
            dir = Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(dir)) ?? "", manifest.Parent);
        }
        return null;
    }

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
