namespace Stratus.Core.Wire;

/// <summary>POST /v1/servers/{id}/resize.</summary>
/// <param name="Flavor">The flavor to resize to (name or id).</param>
/// <param name="Mode">"auto" (default: live where it can, else cold), "live" (refused when it cannot be live) or "cold".</param>
public sealed record ResizeRequest(string? Flavor, string? Mode);

/// <summary>A server size in a resize plan.</summary>
public sealed record ResizeSizeDto(string Flavor, int Vcpus, long RamMib, long DiskGib);

/// <summary>What a resize will do, and why.</summary>
/// <param name="Mode">"live", "cold", or "none" when it cannot be done (<paramref name="Possible"/> false).</param>
/// <param name="MigrateTo">The host the server moves to first, when its own host lacks room (null otherwise).</param>
/// <param name="Steps">One line per decision, in order (e.g. "vCPUs 1→3 within max 4: hot-add").</param>
/// <param name="Refusal">Why it cannot be done (a stable code: <c>disk_shrink_refused</c>, <c>live_impossible</c>, <c>no_capacity</c>,
/// <c>quota_exceeded</c>, <c>invalid_state</c>), null when possible.</param>
/// <param name="MaxVcpus">The live vCPU ceiling the server was started with.</param>
/// <param name="MaxRamMib">The live memory ceiling, MiB.</param>
public sealed record ResizePlanDto(
    string Server,
    ResizeSizeDto From,
    ResizeSizeDto To,
    string Mode,
    bool Possible,
    string? MigrateTo,
    IReadOnlyList<string> Steps,
    string Summary,
    string? Refusal,
    int MaxVcpus,
    long MaxRamMib);

/// <summary>The answer to a resize, confirm or revert: the plan, what the host did, and the server after it.</summary>
/// <param name="State">"resized" (live, done), "verify_resize" (cold, waiting for confirm or revert), "confirmed", "reverted".</param>
/// <param name="GuestVerified">The guest's own report showed the new CPUs and memory (live only).</param>
/// <param name="GuestVisibleMs">Live: from the host receiving the request to the guest showing the change.</param>
/// <param name="TotalMs">From the controller receiving the request to the answer (migration included).</param>
public sealed record ResizeResultDto(
    ResizePlanDto? Plan,
    ServerDto Server,
    string State,
    bool GuestVerified,
    int? GuestCpus,
    long? GuestMemoryKib,
    long? GuestVisibleMs,
    long TotalMs,
    IReadOnlyList<string> Detail);
