using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Compute;

/// <summary>A named server size. Immutable once created (OpenStack semantics); delete and re-create to change.</summary>
public sealed record Flavor(FlavorId Id, string Name, int Vcpus, long RamMib, long DiskGib, bool IsPublic, DateTimeOffset CreatedAt)
{
    /// <summary>What one server of this flavor claims on its host.</summary>
    public ResourceVector Resources => ResourceVector.Of(Vcpus, RamMib, DiskGib);
}

/// <summary>Lifecycle of an image record.</summary>
public enum ImageStatus { Queued, Saving, Active, Deleted, Error }

/// <summary>A bootable disk image (qcow2 or raw) in the image store.</summary>
public sealed record Image(
    ImageId Id,
    string Name,
    string DiskFormat,
    ImageStatus Status,
    long SizeBytes,
    string? Checksum,
    string? Path,
    bool IsPublic,
    DateTimeOffset CreatedAt,
    Guid? ProjectId = null);
