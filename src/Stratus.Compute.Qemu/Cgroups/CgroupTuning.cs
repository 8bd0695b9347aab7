namespace Stratus.Compute.Qemu.Cgroups;

/// <summary>
/// The cgroup mount option <c>favordynmods</c> (Linux ≥ 6.0). Moving a process into a cgroup write-locks the kernel's global
/// threadgroup rwsem; by default that lock waits for an RCU grace period — measured here at 7–23 ms per QEMU start, during
/// which QEMU itself cannot create its threads. With <c>favordynmods</c> the move costs ≈ 0.1 ms, and forks and exits
/// pay a few atomic operations more — the kernel's own trade for hosts that move processes between cgroups at run time,
/// which a hypervisor host starting and receiving VMs does. The option is system-wide; on cgroup v2 (and the v2 mount of a
/// hybrid host) it is set by remounting, which keeps every other option; a pure v1 host needs the kernel parameter
/// <c>cgroup_favordynmods=true</c>.
/// </summary>
public static class CgroupTuning
{
    public const string Option = "favordynmods";

    /// <summary>What <see cref="EnsureFavorDynModsAsync"/> found or did.</summary>
    /// <param name="Enabled">The option is on now.</param>
    /// <param name="Changed">This call turned it on.</param>
    /// <param name="Detail">One line for the log.</param>
    public sealed record Outcome(bool Enabled, bool Changed, string Detail);

    /// <summary>The remount to run for the host's cgroup2 mount: its mount point and the full option list (the mount's own
    /// options, then the file system's, then <c>favordynmods</c>), or null when there is no cgroup2 mount or the option is
    /// already on (<paramref name="already"/> says which).</summary>
    public static (string MountPoint, string Options)? PlanRemount(IEnumerable<string> mountInfoLines, out bool already)
    {
        ArgumentNullException.ThrowIfNull(mountInfoLines);
        already = false;
        foreach (var line in mountInfoLines)
        {
            // id parent major:minor root mountpoint mount-options [optional...] - fstype source super-options
            var parts = line.Split(' ');
            var sep = Array.IndexOf(parts, "-");
            if (sep < 6 || parts.Length < sep + 4 || parts[sep + 1] != "cgroup2")
            {
                continue;
            }

            var super = parts[sep + 3].Split(',', StringSplitOptions.RemoveEmptyEntries);
            if (super.Contains(Option))
            {
                already = true;
                return null;
            }

            // mount(8) turns the per-mount words (nosuid, nodev, noexec, relatime…) into flags; leaving them out of a
            // remount would clear them. "rw" appears in both lists.
            var options = parts[5].Split(',', StringSplitOptions.RemoveEmptyEntries)
                .Concat(super.Where(o => o is not ("rw" or "ro")))
                .Append(Option)
                .Distinct(StringComparer.Ordinal);
            return (Unescape(parts[4]), string.Join(',', options));
        }

        return null;
    }

    /// <summary>Turns <c>favordynmods</c> on for the host's cgroup2 mount when it is off. Never throws: a kernel without the
    /// option, a host without a cgroup2 mount, or a failed remount leave things as they are and say so.</summary>
    public static async Task<Outcome> EnsureFavorDynModsAsync(string mountInfoPath, string mountBinary, CancellationToken cancellationToken)
    {
        string[] lines;
        try
        {
            lines = await File.ReadAllLinesAsync(mountInfoPath, cancellationToken);
        }
        catch (IOException e)
        {
            return new Outcome(false, false, $"cannot read {mountInfoPath}: {e.Message}");
        }

        if (PlanRemount(lines, out var already) is not { } plan)
        {
            return already
                ? new Outcome(true, false, "cgroup favordynmods already on")
                : new Outcome(false, false, "no cgroup2 mount: boot with cgroup_favordynmods=true to make moving QEMU into its cgroups cheap");
        }

        try
        {
            var (code, _, stderr) = await ToolProcess.RunAsync(ToolProcess.Resolve(mountBinary), ["-o", "remount," + plan.Options, "none", plan.MountPoint],
                "the mount utility (package mount)", cancellationToken);
            if (code != 0)
            {
                return new Outcome(false, false, $"remounting {plan.MountPoint} with {Option} failed (a kernel before 6.0 has no such option): {stderr.Trim()}");
            }
        }
        catch (ComputeException e)
        {
            return new Outcome(false, false, e.Message);
        }

        var on = PlanRemount(await File.ReadAllLinesAsync(mountInfoPath, cancellationToken), out var nowOn) is null && nowOn;
        return on
            ? new Outcome(true, true, $"cgroup {Option} turned on ({plan.MountPoint} remounted with {plan.Options}): moving a QEMU into its cgroups no longer waits for an RCU grace period")
            : new Outcome(false, false, $"remounted {plan.MountPoint}, but {Option} is still off");
    }

    /// <summary>mountinfo escapes space, tab, newline and backslash as octal (\040…).</summary>
    private static string Unescape(string field) => System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})",
        m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());
}
