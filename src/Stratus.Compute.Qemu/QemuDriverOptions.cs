using System.Net;

namespace Stratus.Compute.Qemu;

/// <summary>Which hypervisor accelerator to use.</summary>
public enum AcceleratorMode
{
    /// <summary>Probe <c>/dev/kvm</c> with a bounded trial boot; TCG when it does not work.</summary>
    Auto,
    /// <summary>Always KVM (fails at start when it does not work).</summary>
    Kvm,
    /// <summary>Always TCG (software emulation).</summary>
    Tcg,
}

/// <summary>Which cgroup hierarchy the driver writes VM limits into.</summary>
public enum CgroupMode
{
    /// <summary>v2 when the unified hierarchy has the cpu and memory controllers, else v1 when mounted, else none.</summary>
    Auto,
    V1,
    V2,
    /// <summary>No cgroups (limits are not enforced; for unprivileged development only).</summary>
    None,
}

/// <summary>Start-up configuration of <see cref="QemuDriver"/>. Call <see cref="Validate"/> (the driver does).</summary>
public sealed class QemuDriverOptions
{
    /// <summary>Directory holding one sub-directory per VM (<c>vms/&lt;id&gt;/</c>: spec, disk, console, pid, QMP socket).
    /// Must be an absolute path. When it is long (QMP socket path over 107 bytes), sockets go to /tmp/stratus-qmp-&lt;hash&gt;/.</summary>
    public string DataDirectory { get; set; } = "/var/lib/stratus/compute";

    /// <summary>The storage pool every host reaches (an NFS mount, say), as an absolute path; null when this host has none.
    /// A VM with <see cref="VmSpec.StoragePool"/> "shared" keeps its disk overlay and config drive in
    /// <c>&lt;SharedPoolDirectory&gt;/&lt;id&gt;/</c>, so a live migration moves only memory.</summary>
    public string? SharedPoolDirectory { get; set; }

    /// <summary>Address an incoming migration (and its NBD disk export) listens on; the source connects to it.
    /// Loopback by default (one-machine tests); a real host sets its migration network address.</summary>
    public IPAddress MigrationListenAddress { get; set; } = IPAddress.Loopback;

    /// <summary>The QEMU system emulator to exec (absolute path or a name found on PATH).</summary>

    public string QemuBinary { get; set; } = "qemu-system-x86_64";

    /// <summary>The <c>qemu-img</c> tool.</summary>
    public string QemuImgBinary { get; set; } = "qemu-img";

    /// <summary>The <c>qemu-storage-daemon</c> tool (package qemu-system-common): runs backup jobs on a stopped VM's disk,
    /// where no QEMU of the VM is there to run them.</summary>
    public string QemuStorageDaemonBinary { get; set; } = "qemu-storage-daemon";

    /// <summary>Accelerator choice; <see cref="AcceleratorMode.Auto"/> probes KVM with a trial boot.</summary>
    public AcceleratorMode Accelerator { get; set; } = AcceleratorMode.Auto;

    /// <summary>How long the KVM trial boot may take before KVM is declared unusable. 1–30 s.</summary>
    public TimeSpan KvmProbeTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>TCG translation-block cache per VM, in MiB (bounds QEMU's memory overhead under TCG). 8–1024.</summary>
    public int TcgTbSizeMib { get; set; } = 64;

    /// <summary>Default time a guest gets to power off on the ACPI button before it is forced off
    /// (used by soft reboot and <see cref="IComputeDriver.DestroyAsync"/> never waits for it). 0–10 min.</summary>
    public TimeSpan GracefulStopTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long QEMU may take to open its QMP socket after exec. 1–60 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Timeout of one QMP command. 1–120 s.</summary>
    public TimeSpan QmpCommandTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Address host-side port forwards bind to. Loopback by default.</summary>
    public IPAddress ForwardBindAddress { get; set; } = IPAddress.Loopback;

    /// <summary>Cgroup hierarchy to use.</summary>
    public CgroupMode Cgroups { get; set; } = CgroupMode.Auto;

    /// <summary>Root of the cgroup file systems (v1: its controller mounts live below it; v2: the unified mount).</summary>
    public string CgroupRoot { get; set; } = "/sys/fs/cgroup";

    /// <summary>Name of the parent cgroup all VM cgroups are created under.</summary>
    public string CgroupParent { get; set; } = "stratus";

    /// <summary>When the driver manages cgroups as root: turn the host's cgroup mount option <c>favordynmods</c> on at start
    /// (system-wide; see <see cref="Cgroups.CgroupTuning"/>), so moving each new QEMU into its cgroups takes ≈ 0.1 ms instead of
    /// an RCU grace period (7–23 ms measured, on the path of every VM start and every incoming migration).</summary>
    public bool FavorDynamicCgroups { get; set; } = true;

    /// <summary>Memory QEMU needs beyond the guest's RAM, in MiB; the cgroup limit is RAM plus this.
    /// Null: measured default (TCG: tb-size + 96 MiB; KVM: 64 MiB). 16–4096.</summary>
    public int? MemoryOverheadMib { get; set; }

    /// <summary>CFS period for CPU caps, in microseconds. 1000–1000000.</summary>
    public int CpuPeriodMicroseconds { get; set; } = 100_000;

    /// <summary>How long a live resize waits for the guest's report to show the new CPUs and memory before rolling back. 1–300 s.</summary>
    public TimeSpan ResizeGuestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest user-data accepted, in bytes (the config drive must hold it). 1 KiB–16 MiB.</summary>
    public int MaxUserDataBytes { get; set; } = 64 * 1024;

    /// <summary>The unprivileged account QEMU runs as when the agent is root: QEMU is exec'd through <see cref="SetprivBinary"/>
    /// with this user's uid and gid, no supplementary groups (but /dev/kvm's under KVM) and no capabilities, and gets its files
    /// as descriptors. When a trial launch as this user fails at start-up, QEMU runs as root and the driver logs a warning
    /// once. Null: QEMU keeps the agent's identity (root) by choice. A user name of letters, digits, '_' and '-', not root.</summary>
    public string? QemuUser { get; set; } = "stratus-qemu";

    /// <summary>Create <see cref="QemuUser"/> (<c>useradd --system</c>, no home, no shell) when it does not exist.</summary>
    public bool CreateQemuUser { get; set; } = true;

    /// <summary>util-linux <c>setpriv</c>, which drops privileges and execs QEMU (same pid).</summary>
    public string SetprivBinary { get; set; } = "setpriv";

    /// <summary>Throws <see cref="ArgumentException"/> listing every invalid option at once.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(DataDirectory) || !Path.IsPathFullyQualified(DataDirectory))
        {
            errors.Add("DataDirectory must be an absolute path");
        }

        if (SharedPoolDirectory is not null && (string.IsNullOrWhiteSpace(SharedPoolDirectory) || !Path.IsPathFullyQualified(SharedPoolDirectory)))
        {
            errors.Add("SharedPoolDirectory must be an absolute path (or null)");
        }

        if (MigrationListenAddress is null) errors.Add("MigrationListenAddress is required");
        if (string.IsNullOrWhiteSpace(QemuBinary)) errors.Add("QemuBinary is required");
        if (string.IsNullOrWhiteSpace(QemuImgBinary)) errors.Add("QemuImgBinary is required");
        if (string.IsNullOrWhiteSpace(QemuStorageDaemonBinary)) errors.Add("QemuStorageDaemonBinary is required");
        if (KvmProbeTimeout < TimeSpan.FromSeconds(1) || KvmProbeTimeout > TimeSpan.FromSeconds(30)) errors.Add("KvmProbeTimeout must be 1–30 s");
        if (TcgTbSizeMib is < 8 or > 1024) errors.Add("TcgTbSizeMib must be 8–1024");
        if (GracefulStopTimeout < TimeSpan.Zero || GracefulStopTimeout > TimeSpan.FromMinutes(10)) errors.Add("GracefulStopTimeout must be 0–10 min");
        if (StartTimeout < TimeSpan.FromSeconds(1) || StartTimeout > TimeSpan.FromSeconds(60)) errors.Add("StartTimeout must be 1–60 s");
        if (QmpCommandTimeout < TimeSpan.FromSeconds(1) || QmpCommandTimeout > TimeSpan.FromSeconds(120)) errors.Add("QmpCommandTimeout must be 1–120 s");
        if (ForwardBindAddress is null) errors.Add("ForwardBindAddress is required");
        if (string.IsNullOrWhiteSpace(CgroupRoot) || !Path.IsPathFullyQualified(CgroupRoot)) errors.Add("CgroupRoot must be an absolute path");
        if (string.IsNullOrWhiteSpace(CgroupParent) || CgroupParent.Contains('/', StringComparison.Ordinal) || CgroupParent.StartsWith('.')) errors.Add("CgroupParent must be a plain directory name");
        if (MemoryOverheadMib is { } m && m is < 16 or > 4096) errors.Add("MemoryOverheadMib must be 16–4096");
        if (CpuPeriodMicroseconds is < 1000 or > 1_000_000) errors.Add("CpuPeriodMicroseconds must be 1000–1000000");
        if (ResizeGuestTimeout < TimeSpan.FromSeconds(1) || ResizeGuestTimeout > TimeSpan.FromSeconds(300)) errors.Add("ResizeGuestTimeout must be 1–300 s");
        if (MaxUserDataBytes is < 1024 or > 16 * 1024 * 1024) errors.Add("MaxUserDataBytes must be 1 KiB–16 MiB");
        if (QemuUser is not null && (QemuUser.Length is 0 or > 32 || QemuUser == "root" || !QemuUser.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-') || QemuUser[0] == '-'))
        {
            errors.Add("QemuUser must be a user name of 1–32 letters, digits, '_' or '-' (not root), or null");
        }

        if (string.IsNullOrWhiteSpace(SetprivBinary)) errors.Add("SetprivBinary is required");
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid QemuDriverOptions: " + string.Join("; ", errors));
        }
    }
}
