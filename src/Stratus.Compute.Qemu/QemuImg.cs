using System.Diagnostics;
using System.Text.Json;

namespace Stratus.Compute.Qemu;

/// <summary>What <c>qemu-img info</c> says about an image (format detected from content, never from the name).</summary>
/// <param name="Format">Detected format ("qcow2", "raw", ...).</param>
/// <param name="VirtualSizeBytes">Size the guest sees.</param>
/// <param name="ActualSizeBytes">Bytes used on the host.</param>
/// <param name="BackingFile">Backing file named in the image header, when there is one.</param>
/// <param name="Corrupt">qcow2 "corrupt" flag from the header.</param>
public sealed record QemuImageInfo(string Format, long VirtualSizeBytes, long ActualSizeBytes, string? BackingFile, bool Corrupt);

/// <summary>Result of <c>qemu-img check</c>.</summary>
/// <param name="Ok">No corruption and no leaks worth failing for.</param>
/// <param name="Detail">qemu-img's own words when not ok.</param>
public sealed record QemuImageCheck(bool Ok, int Corruptions, int Leaks, string? Detail);

/// <summary>
/// Runs <c>qemu-img</c> (exec'd directly, arguments never pass through a shell). Errors become
/// <see cref="ComputeException"/> with code <c>image_invalid</c> (the file is not a usable image) or
/// <c>hypervisor_error</c> (the tool failed to run).
/// </summary>
public sealed class QemuImg(string binary = "qemu-img")
{
    /// <summary>Inspects an image. <paramref name="mayBeInUse"/> adds <c>-U</c> (read without taking QEMU's lock).</summary>
    public async Task<QemuImageInfo> InfoAsync(string path, bool mayBeInUse, CancellationToken cancellationToken)
    {
        var args = new List<string> { "info", "--output=json" };
        if (mayBeInUse)
        {
            args.Add("-U");
        }

        args.Add(path);
        var (code, stdout, stderr) = await RunAsync(args, cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("image_invalid", $"qemu-img info failed for {Path.GetFileName(path)}: {stderr.Trim()}");
        }

        return ParseInfo(stdout);
    }

    /// <summary>Parses <c>qemu-img info --output=json</c> output.</summary>
    internal static QemuImageInfo ParseInfo(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var format = root.GetProperty("format").GetString() ?? "";
        var virtualSize = root.TryGetProperty("virtual-size", out var vs) ? vs.GetInt64() : 0;
        var actual = root.TryGetProperty("actual-size", out var a) ? a.GetInt64() : 0;
        var backing = root.TryGetProperty("backing-filename", out var b) ? b.GetString() : null;
        var corrupt = root.TryGetProperty("format-specific", out var fs)
            && fs.TryGetProperty("data", out var data)
            && data.TryGetProperty("corrupt", out var c)
            && c.ValueKind == JsonValueKind.True;
        return new QemuImageInfo(format, virtualSize, actual, backing, corrupt);
    }

    /// <summary>Checks an image's consistency (qcow2 and other formats with metadata; raw always passes).</summary>
    public async Task<QemuImageCheck> CheckAsync(string path, string format, CancellationToken cancellationToken)
    {
        var (code, stdout, stderr) = await RunAsync(["check", "--output=json", "-f", format, path], cancellationToken);
        // Exit codes: 0 ok, 1 check not completed (error), 2 corruptions, 3 leaks only, 63 format has no check.
        if (code == 63)
        {
            return new QemuImageCheck(true, 0, 0, null);
        }

        var corruptions = 0;
        var leaks = 0;
        if (stdout.TrimStart().StartsWith('{'))
        {
            using var doc = JsonDocument.Parse(stdout);
            var root = doc.RootElement;
            corruptions = root.TryGetProperty("corruptions", out var c) ? c.GetInt32() : 0;
            leaks = root.TryGetProperty("leaks", out var l) ? l.GetInt32() : 0;
        }

        return code is 0 or 3
            ? new QemuImageCheck(true, corruptions, leaks, null)
            : new QemuImageCheck(false, corruptions, leaks, (stderr + stdout).Trim());
    }

    /// <summary>
    /// Validates an uploaded image before it becomes a base image: the format is detected from the content (never the
    /// file name) and must be qcow2 or raw; a backing file is refused (<c>image_has_backing_file</c>: it could point
    /// anywhere on the host); a qcow2 must pass <c>qemu-img check</c> and not be flagged corrupt (<c>image_invalid</c>,
    /// which also covers truncated and unreadable files).
    /// </summary>
    public async Task<QemuImageInfo> InspectForImportAsync(string path, CancellationToken cancellationToken)
    {
        var info = await InfoAsync(path, mayBeInUse: false, cancellationToken);
        if (info.Format is not ("qcow2" or "raw"))
        {
            throw new ComputeException("image_invalid", $"image format {info.Format} is not supported (qcow2 or raw)");
        }

        if (info.BackingFile is not null)
        {
            throw new ComputeException("image_has_backing_file", "image refers to a backing file; upload a standalone image (qemu-img convert)");
        }

        if (info.Corrupt || info.VirtualSizeBytes <= 0)
        {
            throw new ComputeException("image_invalid", "image is marked corrupt or has no size");
        }

        var check = await CheckAsync(path, info.Format, cancellationToken);
        return check.Ok ? info : throw new ComputeException("image_invalid", $"image failed its consistency check: {check.Detail}");
    }

    /// <summary>Creates a qcow2 overlay of <paramref name="sizeBytes"/> over a read-only base image
    /// (<c>-F</c> names the base's format explicitly so it is never probed).</summary>
    public async Task CreateOverlayAsync(string overlayPath, string basePath, string baseFormat, long sizeBytes, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await RunAsync(["create", "-q", "-f", "qcow2", "-b", Path.GetFullPath(basePath), "-F", baseFormat, overlayPath, sizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("image_invalid", $"qemu-img create overlay failed: {stderr.Trim()}");
        }
    }

    /// <summary>Grows a stopped image's virtual size to <paramref name="sizeBytes"/> (never shrinks).</summary>
    public async Task GrowAsync(string path, long sizeBytes, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await RunAsync(["resize", "-q", path, sizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img resize failed: {stderr.Trim()}");
        }
    }

    /// <summary>Creates an empty image of <paramref name="sizeBytes"/>.</summary>
    public async Task CreateBlankAsync(string path, string format, long sizeBytes, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await RunAsync(["create", "-q", "-f", format, path, sizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img create failed: {stderr.Trim()}");
        }
    }

    /// <summary>The internal snapshots of a qcow2 image (<c>qemu-img info -U</c>: safe while QEMU runs it).</summary>
    public async Task<IReadOnlyList<VmSnapshotInfo>> ListSnapshotsAsync(string path, CancellationToken cancellationToken)
    {
        var (code, stdout, stderr) = await RunAsync(["info", "--output=json", "-U", path], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img info failed for {Path.GetFileName(path)}: {stderr.Trim()}");
        }

        return ParseSnapshots(stdout);
    }

    internal static IReadOnlyList<VmSnapshotInfo> ParseSnapshots(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var result = new List<VmSnapshotInfo>();
        if (doc.RootElement.TryGetProperty("snapshots", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var s in list.EnumerateArray())
            {
                var state = s.TryGetProperty("vm-state-size", out var v) ? v.GetInt64() : 0;
                var sec = s.TryGetProperty("date-sec", out var d) ? d.GetInt64() : 0;
                result.Add(new VmSnapshotInfo(s.GetProperty("name").GetString() ?? "", state > 0, state, DateTimeOffset.FromUnixTimeSeconds(sec)));
            }
        }

        return result;
    }

    /// <summary>
    /// A VM's qcow2 overlay with its base named explicitly, as a <c>json:</c> filename for qemu-img: with it, qemu-img (root)
    /// never opens the backing file named in the overlay's header. That header is writable by the VM's QEMU (it holds the
    /// overlay open read-write), so a QEMU taken over by its guest could point it at any host file, and a root
    /// <c>qemu-img convert</c> of the chain would copy that file into the tenant's backup. <paramref name="basePath"/> null:
    /// no base at all.
    /// </summary>
    public static string Chain(string overlay, string? basePath, string? baseFormat)
    {
        static Dictionary<string, object?> File(string path) => new() { ["driver"] = "file", ["filename"] = path };
        var node = new Dictionary<string, object?>
        {
            ["driver"] = "qcow2",
            ["file"] = File(overlay),
            ["backing"] = basePath is null ? null : new Dictionary<string, object?> { ["driver"] = baseFormat ?? "qcow2", ["file"] = File(basePath) },
        };
        return "json:" + JsonSerializer.Serialize(node);
    }

    /// <summary><c>qemu-img snapshot -c|-a|-d NAME</c> on a stopped image (a path or a <see cref="Chain"/>).</summary>
    public async Task SnapshotAsync(string operation, string path, string name, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await RunAsync(["snapshot", operation, name, path], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img snapshot {operation} {name} failed: {stderr.Trim()}");
        }
    }

    /// <summary>
    /// Creates an empty qcow2 of <paramref name="sizeBytes"/> whose backing file is <paramref name="backing"/> exactly as
    /// given (a relative name is resolved against the new image's directory, so a chain of backup directories can be moved
    /// or copied as a whole); null creates a standalone image.
    /// </summary>
    public async Task CreateWithBackingAsync(string path, string? backing, long sizeBytes, CancellationToken cancellationToken)
    {
        var args = new List<string> { "create", "-q", "-f", "qcow2" };
        if (backing is not null)
        {
            args.AddRange(["-b", backing, "-F", "qcow2"]);
        }

        args.AddRange([path, sizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        var (code, _, stderr) = await RunAsync(args, cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img create failed: {stderr.Trim()}");
        }
    }

    /// <summary>Names of the persistent dirty bitmaps stored in a qcow2 image, with their "in-use" flag (set while a
    /// QEMU has the image open, and left set when it did not close the image cleanly: such a bitmap is inconsistent).</summary>
    public async Task<IReadOnlyList<(string Name, bool InUse)>> ListBitmapsAsync(string path, CancellationToken cancellationToken)
    {
        var (code, stdout, stderr) = await RunAsync(["info", "--output=json", "-U", path], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img info failed for {Path.GetFileName(path)}: {stderr.Trim()}");
        }

        return ParseBitmaps(stdout);
    }

    internal static IReadOnlyList<(string Name, bool InUse)> ParseBitmaps(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var result = new List<(string, bool)>();
        if (doc.RootElement.TryGetProperty("format-specific", out var fs) && fs.TryGetProperty("data", out var data)
            && data.TryGetProperty("bitmaps", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var b in list.EnumerateArray())
            {
                var inUse = b.TryGetProperty("flags", out var flags) && flags.ValueKind == JsonValueKind.Array
                    && flags.EnumerateArray().Any(f => f.GetString() == "in-use");
                result.Add((b.GetProperty("name").GetString() ?? "", inUse));
            }
        }

        return result;
    }

    /// <summary><c>qemu-img bitmap --remove</c> on an image no QEMU has open.</summary>
    public async Task RemoveBitmapAsync(string path, string name, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await RunAsync(["bitmap", "--remove", path, name], cancellationToken);
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"qemu-img bitmap --remove {name} failed: {stderr.Trim()}");
        }
    }

    private Task<(int Code, string Stdout, string Stderr)> RunAsync(IEnumerable<string> args, CancellationToken cancellationToken) =>
        ToolProcess.RunAsync(binary, args, "is qemu-utils installed?", cancellationToken);
}
