using Stratus.Core.Ids;

namespace Stratus.Core.Compute;

/// <summary>
/// A host aggregate: a named set of hosts with metadata (key=value) and optionally an availability
/// zone. A host's zone is the zone of the aggregate it belongs to; a host belongs to at most one zone.
/// </summary>
public sealed record Aggregate(Guid Id, string Name, string? Zone, IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<HostId> Hosts, DateTimeOffset CreatedAt);

/// <summary>Rules for traits (capabilities a host has and a server may require), e.g. CUSTOM_GPU, HW_CPU_X86_AVX2.</summary>
public static class TraitRules
{
    /// <summary>Null when acceptable: 1–255 characters of A–Z, 0–9 and '_' (as OpenStack placement's traits).</summary>
    public static string? Check(string? trait) =>
        string.IsNullOrEmpty(trait) ? "must not be empty"
        : trait.Length > 255 ? "must be at most 255 characters"
        : trait.All(c => c is >= 'A' and <= 'Z' or >= '0' and <= '9' or '_') ? null
        : $"'{trait}' may contain only A-Z, 0-9 and '_'";
}
