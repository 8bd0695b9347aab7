using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Lifecycle;
using Stratus.Core.Resources;

namespace Stratus.Controller.Resize;

/// <summary>How the caller wants a resize done.</summary>
public enum ResizeMode { Auto, Live, Cold }

/// <summary>Everything a resize plan is decided from: a snapshot, read before planning; the planner reads nothing else.</summary>
/// <param name="Host">The server's host (its free resources decide whether it must move first).</param>
/// <param name="QuotaUse">The owning project's current use; null skips the quota check (the store checks it again anyway).</param>
public sealed record ResizePlanInput(Instance Server, Flavor From, Flavor To, ResizeMode Mode, Host? Host, Quotas? Quotas, ProjectUsageSnapshot? QuotaUse);

/// <summary>A project's live use, for the quota part of a plan.</summary>
public sealed record ProjectUsageSnapshot(long MilliVcpus, long RamMib, long DiskGib);

/// <summary>The planner's verdict. <see cref="NeedsMove"/>: the host lacks room; the caller looks for another host.</summary>
/// <param name="Refusal">Stable code when it cannot be done.</param>
public sealed record ResizeDecision(bool Live, IReadOnlyList<string> Steps, string? Refusal, string? RefusalReason, bool NeedsMove, string? ShortOf);

/// <summary>
/// Decides how a resize is done, and says why, from a snapshot (pure: no I/O). Rules: vCPUs grow live up to the ceiling the
/// server was started with, never shrink live; memory grows live by hot-plug up to its ceiling and shrinks live through the
/// balloon; the disk only grows (online when live). A stopped server is resized cold. Growth must fit the host (else the
/// server moves first) and the project's quota.
/// </summary>
public static class ResizePlanner
{
    public static ResizeDecision Decide(ResizePlanInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var s = input.Server;
        var (from, to) = (input.From, input.To);
        var steps = new List<string>();
        var notLive = new List<string>();
        int cpuCeiling = s.VcpuCeiling;
        long memCeiling = s.MemoryCeilingMib;

        if (to.DiskGib < from.DiskGib)
        {
            return Refuse(steps, "disk_shrink_refused", $"disk shrink ({from.DiskGib}→{to.DiskGib} GiB) is refused: a file system cannot be shrunk under its guest safely");
        }
        if (s.VmState is not (VmState.Active or VmState.Stopped))
        {
            return Refuse(steps, "invalid_state", $"server '{s.Name}' is {Names.Of(s.VmState)}; resize needs it active or stopped");
        }
        var running = s.VmState == VmState.Active;
        if (!running)
        {
            notLive.Add("the server is stopped");
        }

        if (to.Vcpus > from.Vcpus)
        {
            if (to.Vcpus <= cpuCeiling)
            {
                steps.Add($"vCPUs {from.Vcpus}→{to.Vcpus} within max {cpuCeiling}: hot-add");
            }
            else
            {
                notLive.Add($"vCPUs {from.Vcpus}→{to.Vcpus} pass the ceiling of {cpuCeiling} set at create");
            }
        }
        else if (to.Vcpus < from.Vcpus)
        {
            notLive.Add($"vCPU removal ({from.Vcpus}→{to.Vcpus}) is always cold");
        }

        if (to.RamMib > from.RamMib)
        {
            if (to.RamMib <= memCeiling)
            {
                steps.Add($"memory {from.RamMib}→{to.RamMib} MiB within max {memCeiling}: DIMM hot-plug");
            }
            else
            {
                notLive.Add($"memory {from.RamMib}→{to.RamMib} MiB passes the ceiling of {memCeiling} MiB set at create");
            }
        }
        else if (to.RamMib < from.RamMib)
        {
            steps.Add($"memory {from.RamMib}→{to.RamMib} MiB through the balloon");
        }

        if (to.DiskGib > from.DiskGib)
        {
            steps.Add($"disk {from.DiskGib}→{to.DiskGib} GiB grows online (block_resize; the guest sees the new capacity)");
        }

        bool live;
        switch (input.Mode)
        {
            case ResizeMode.Live when notLive.Count > 0:
                return Refuse(steps, "live_impossible", "cannot resize live: " + string.Join("; ", notLive));
            case ResizeMode.Live:
                live = true;
                break;
            case ResizeMode.Cold:
                live = false;
                break;
            default:
                live = notLive.Count == 0;
                break;
        }
        if (!live)
        {
            // Cold: the steps above describe a live change; say what a cold one does instead.
            steps.Clear();
            steps.Add(notLive.Count > 0 ? $"cold: {string.Join("; ", notLive)}" : "cold, as asked");
            steps.Add(running
                ? $"stop, {from.Vcpus}→{to.Vcpus} vCPUs, {from.RamMib}→{to.RamMib} MiB, {from.DiskGib}→{to.DiskGib} GiB, start; then verify_resize until confirm or revert"
                : $"{from.Vcpus}→{to.Vcpus} vCPUs, {from.RamMib}→{to.RamMib} MiB, {from.DiskGib}→{to.DiskGib} GiB while stopped; then verify_resize until confirm or revert");
            if (to.Vcpus > cpuCeiling || to.RamMib > memCeiling)
            {
                steps.Add($"the live ceilings rise to {Math.Max(cpuCeiling, to.Vcpus)} vCPUs / {Math.Max(memCeiling, to.RamMib)} MiB");
            }
        }

        var delta = to.Resources - from.Resources;
        if (input.Quotas is { } q && input.QuotaUse is { } use)
        {
            var over = new List<string>();
            if (delta.MilliVcpus > 0 && use.MilliVcpus + delta.MilliVcpus > (long)q.Vcpus * 1000) over.Add($"vcpus {use.MilliVcpus / 1000} + {delta.MilliVcpus / 1000} > {q.Vcpus}");
            if (delta.MemoryMib > 0 && use.RamMib + delta.MemoryMib > q.RamMib) over.Add($"ram_mib {use.RamMib} + {delta.MemoryMib} > {q.RamMib}");
            if (delta.DiskGib > 0 && use.DiskGib + delta.DiskGib > q.DiskGib) over.Add($"disk_gib {use.DiskGib} + {delta.DiskGib} > {q.DiskGib}");
            if (over.Count > 0)
            {
                return Refuse(steps, "quota_exceeded", $"the project's quota would be exceeded: {string.Join(", ", over)}");
            }
        }

        string? shortOf = null;
        if (input.Host is { } h)
        {
            var free = h.Free;
            var missing = new List<string>();
            if (delta.MilliVcpus > 0 && delta.MilliVcpus > free.MilliVcpus) missing.Add($"{Vcpus(delta.MilliVcpus - free.MilliVcpus)} more vCPUs");
            if (delta.MemoryMib > 0 && delta.MemoryMib > free.MemoryMib) missing.Add($"{delta.MemoryMib - free.MemoryMib} MiB more memory");
            if (delta.DiskGib > 0 && delta.DiskGib > free.DiskGib) missing.Add($"{delta.DiskGib - free.DiskGib} GiB more disk");
            if (missing.Count > 0)
            {
                shortOf = $"needs {string.Join(", ", missing)} than {h.Name} has free";
            }
        }
        return new ResizeDecision(live, steps, null, null, shortOf is not null, shortOf);
    }

    private static string Vcpus(long milli) => milli % 1000 == 0 ? (milli / 1000).ToString(System.Globalization.CultureInfo.InvariantCulture) : (milli / 1000.0).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    private static ResizeDecision Refuse(List<string> steps, string code, string reason) => new(false, [.. steps, reason], code, reason, false, null);
}
