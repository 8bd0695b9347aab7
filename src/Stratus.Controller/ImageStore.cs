using System.Security.Cryptography;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>What an inspection of an uploaded disk image found, from its content (never its name).</summary>
public sealed record ImageInspection(string? Format, long VirtualSizeBytes, string? Error, string? ErrorCode);

/// <summary>Inspects a disk image file (format detected from content, backing files refused, consistency checked).</summary>
public interface IImageInspector
{
    Task<ImageInspection> InspectAsync(string path, CancellationToken cancellationToken);
}

/// <summary>
/// The controller's image store: uploads are streamed to a temporary file while hashed (SHA-256),
/// inspected, then moved into place and recorded — or removed entirely when refused, so a bad
/// upload leaves nothing behind.
/// </summary>
public sealed class ImageStore(IStateStore store, IImageInspector inspector, TimeProvider time, string directory)
{
    /// <summary>Largest image accepted, bytes (default 64 GiB).</summary>
    public long MaxBytes { get; init; } = 64L * 1024 * 1024 * 1024;

    public string Directory => directory;

    /// <summary>
    /// Imports an image from <paramref name="content"/>. The format comes from the content; when the
    /// uploader's file name or declared format says otherwise, the upload is refused (a raw file named
    /// .qcow2 is a mistake, not a qcow2).
    /// </summary>
    /// <summary>Removes an imported image's file once its record is deleted (files this store did not write are left alone).</summary>
    public void RemoveFile(Image? image)
    {
        if (image?.Path is { } path && Path.GetDirectoryName(Path.GetFullPath(path)) == Path.GetFullPath(directory) && File.Exists(path))
        {
            File.Delete(path);
        }
    }

    public async Task<Outcome<Image>> ImportAsync(string? name, Stream content, long? declaredLength, string? fileName, string? declaredFormat, CancellationToken ct, Guid? owner = null)
    {
        if (declaredFormat is not null && declaredFormat is not ("qcow2" or "raw"))
        {
            return Problem.Validation([new FieldError("disk_format", "invalid", "must be qcow2 or raw (or left out: the format is detected)")]);
        }
        if (NameRules.Check(name) is { } bad)
        {
            return Problem.Validation([new FieldError("name", name is null ? "required" : "invalid", bad)]);
        }
        if (await store.FindImageAsync(name!, ct) is not null)
        {
            return Problem.Conflict("name_in_use", $"an image named '{name}' already exists");
        }
        if (declaredLength > MaxBytes)
        {
            return new Problem("image_too_large", 413, "The image is too large", $"at most {MaxBytes} bytes");
        }
        System.IO.Directory.CreateDirectory(directory);
        var id = ImageId.New();
        var part = Path.Combine(directory, $"{id}.part");
        try
        {
            string checksum;
            long size = 0;
            await using (var file = new FileStream(part, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await content.ReadAsync(buffer, ct)) > 0)
                {
                    size += n;
                    if (size > MaxBytes)
                    {
                        return new Problem("image_too_large", 413, "The image is too large", $"at most {MaxBytes} bytes");
                    }
                    sha.AppendData(buffer, 0, n);
                    await file.WriteAsync(buffer.AsMemory(0, n), ct);
                }
                checksum = "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
            }
            if (size == 0)
            {
                return Problem.Validation([new FieldError("file", "empty", "the upload is empty")]);
            }
            if (declaredLength is { } expected && expected != size)
            {
                return new Problem("upload_truncated", 400, "The upload is incomplete", $"received {size} of {expected} bytes");
            }
            var found = await inspector.InspectAsync(part, ct);
            if (found.Error is not null)
            {
                return new Problem(found.ErrorCode ?? "invalid_image", 400, "The image is not usable", found.Error);
            }
            var claimed = declaredFormat ?? Path.GetExtension(fileName ?? "").TrimStart('.').ToLowerInvariant() switch
            {
                "qcow2" => "qcow2",
                "raw" or "img" => "raw",
                _ => null,
            };
            if (claimed is not null && claimed != found.Format)
            {
                return new Problem("format_mismatch", 400, "The image is not what it claims to be",
                    $"the upload claims {claimed} ({(declaredFormat is null ? $"file name '{fileName}'" : "disk_format")}) but its content is {found.Format}");
            }
            var final = Path.Combine(directory, $"{id}.{found.Format}");
            File.Move(part, final);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(final, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead); // base images are read-only
            }
            var image = new Image(id, name!, found.Format!, ImageStatus.Active, size, checksum, final, owner is null || owner == Stratus.Core.Identity.Project.AdminId, time.GetUtcNow(), owner ?? Stratus.Core.Identity.Project.AdminId);
            if (!await store.CreateImageAsync(image, ct))
            {
                File.Delete(final);
                return Problem.Conflict("name_in_use", $"an image named '{name}' already exists");
            }
            return image;
        }
        finally
        {
            if (File.Exists(part))
            {
                File.Delete(part);
            }
        }
    }
}
