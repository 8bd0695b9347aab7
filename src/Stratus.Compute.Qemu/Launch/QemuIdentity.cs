using System.Globalization;

namespace Stratus.Compute.Qemu.Launch;

/// <summary>Who the driver's QEMU processes run as on this host, decided once by a trial launch (see docs/qemu-driver.md,
/// "Privileges").</summary>
/// <param name="User">Account name ("stratus-qemu"; "root" when QEMU keeps the agent's privileges).</param>
/// <param name="Uid">User id QEMU runs with.</param>
/// <param name="Gid">Group id QEMU runs with.</param>
/// <param name="Groups">Supplementary groups QEMU keeps: the group of <c>/dev/kvm</c> under KVM, else none.</param>
/// <param name="DropsPrivileges">True when QEMU is exec'd through <c>setpriv</c> to <paramref name="Uid"/>/<paramref name="Gid"/>
/// with no capabilities; false when it keeps the agent's identity.</param>
/// <param name="FallbackReason">Why QEMU runs as root although an unprivileged user is configured (the trial launch
/// failed); null otherwise.</param>
public sealed record QemuIdentity(string User, int Uid, int Gid, IReadOnlyList<int> Groups, bool DropsPrivileges, string? FallbackReason)
{
    /// <summary>"stratus-qemu", "root", or "root (fallback: reason)": what the host inventory reports.</summary>
    public override string ToString() => FallbackReason is null ? User : $"{User} (fallback: {FallbackReason})";

    /// <summary>The arguments that exec QEMU as this identity: <c>setpriv</c> changes real, effective and saved ids, sets the
    /// supplementary groups, empties the inheritable and bounding capability sets and sets no-new-privs, then execs the
    /// rest of the command line (same pid). Empty when QEMU keeps the agent's identity.</summary>
    /// <param name="bindLowPorts">Keep <c>CAP_NET_BIND_SERVICE</c> (ambient) for a host port forward below
    /// <c>ip_unprivileged_port_start</c>; nothing else.</param>
    internal IReadOnlyList<string> ExecPrefix(string setpriv, bool bindLowPorts)
    {
        if (!DropsPrivileges)
        {
            return [];
        }

        var keep = bindLowPorts ? ",+net_bind_service" : "";
        var prefix = new List<string>
        {
            setpriv,
            "--reuid=" + Uid.ToString(CultureInfo.InvariantCulture),
            "--regid=" + Gid.ToString(CultureInfo.InvariantCulture),
            Groups.Count > 0 ? "--groups=" + string.Join(',', Groups.Select(g => g.ToString(CultureInfo.InvariantCulture))) : "--clear-groups",
            "--inh-caps=-all" + keep,
            "--bounding-set=-all" + keep,
            "--no-new-privs",
        };
        if (bindLowPorts)
        {
            prefix.Add("--ambient-caps=+net_bind_service");
        }

        prefix.Add("--");
        return prefix;
    }
}
