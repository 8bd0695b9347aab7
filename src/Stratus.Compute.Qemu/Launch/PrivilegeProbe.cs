using System.Collections.Concurrent;
using System.Globalization;
using Stratus.Compute.Qemu.Qmp;

namespace Stratus.Compute.Qemu.Launch;

/// <summary>
/// Decides who QEMU runs as on this host: the configured unprivileged user (created with <c>useradd --system</c> when
/// missing and allowed) if a trial QEMU launched exactly as VMs are — through <c>setpriv</c>, sandboxed, with the QMP
/// socket and a block device handed over as descriptors, with the host's accelerator — comes up under that uid and
/// answers QMP; else root, with the reason. An agent that is not root runs QEMU as itself (nothing to drop).
/// The answer is cached per binary, user, setpriv and accelerator for the life of the process.
/// </summary>
internal static class PrivilegeProbe
{
    private static readonly ConcurrentDictionary<string, Task<QemuIdentity>> Cache = new(StringComparer.Ordinal);

    public static Task<QemuIdentity> DetectAsync(QemuDriverOptions options, string accelerator) =>
        Cache.GetOrAdd(
            string.Join('\n', options.QemuBinary, options.QemuUser ?? "", options.CreateQemuUser, options.SetprivBinary, accelerator),
            _ => Task.Run(() => ProbeAsync(options, accelerator)));

    private static async Task<QemuIdentity> ProbeAsync(QemuDriverOptions options, string accelerator)
    {
        var euid = (int)Native.GetEffectiveUid();
        if (euid != 0)
        {
            return new QemuIdentity(Environment.UserName, euid, (int)Native.GetEffectiveGid(), [], false, null);
        }

        if (options.QemuUser is not { } user)
        {
            return Root(null);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            var account = await LookUpAsync(user, timeout.Token);
            if (account is null && options.CreateQemuUser)
            {
                var (code, _, stderr) = await ToolProcess.RunAsync(ToolProcess.Resolve("useradd"),
                    ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Stratus QEMU", user],
                    "apt-get install passwd", timeout.Token);
                // Another agent may have created it meanwhile (useradd then fails with "already exists").
                account = await LookUpAsync(user, timeout.Token);
                if (account is null)
                {
                    return Root($"user {user} does not exist and useradd failed ({code}): {stderr.Trim()}");
                }
            }

            if (account is not { } a)
            {
                return Root($"user {user} does not exist (CreateQemuUser is off)");
            }

            if (a.Uid == 0 || a.Gid == 0)
            {
                return Root($"user {user} has uid or gid 0");
            }

            var groups = accelerator == "kvm" && await KvmGroupAsync(timeout.Token) is { } kvm ? new[] { kvm } : [];
            var identity = new QemuIdentity(user, a.Uid, a.Gid, groups, true, null);
            var failure = await TrialLaunchAsync(options, identity, accelerator, timeout.Token);
            return failure is null ? identity : Root(failure);
        }
        catch (Exception e) when (e is IOException or ComputeException or OperationCanceledException or TimeoutException or QmpException or UnauthorizedAccessException)
        {
            return Root(e is OperationCanceledException ? "the trial launch timed out" : e.Message);
        }
    }

    private static QemuIdentity Root(string? reason) => new("root", 0, 0, [], false, reason);

    private static async Task<(int Uid, int Gid)?> LookUpAsync(string user, CancellationToken cancellationToken)
    {
        var (code, stdout, _) = await ToolProcess.RunAsync(ToolProcess.Resolve("getent"), ["passwd", user], "apt-get install libc-bin", cancellationToken);
        var fields = stdout.Trim().Split(':');
        return code == 0 && fields.Length >= 4
            && int.TryParse(fields[2], CultureInfo.InvariantCulture, out var uid) && int.TryParse(fields[3], CultureInfo.InvariantCulture, out var gid)
            ? (uid, gid)
            : null;
    }

    /// <summary>The group that may open /dev/kvm (mode g+rw, not root's group), if any.</summary>
    private static async Task<int?> KvmGroupAsync(CancellationToken cancellationToken)
    {
        var (code, stdout, _) = await ToolProcess.RunAsync(ToolProcess.Resolve("stat"), ["-c", "%g %a", "/dev/kvm"], "apt-get install coreutils", cancellationToken);
        var parts = stdout.Trim().Split(' ');
        return code == 0 && parts.Length == 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out var gid) && gid != 0
            && parts[1].Length >= 2 && (Convert.ToInt32(parts[1], 8) & 0b_000_110_000) == 0b_000_110_000
            ? gid
            : null;
    }

    /// <summary>Starts a machine-less QEMU as <paramref name="identity"/> the way VMs start and checks it; null when it
    /// worked, else what went wrong (setpriv's or QEMU's own words).</summary>
    private static async Task<string?> TrialLaunchAsync(QemuDriverOptions options, QemuIdentity identity, string accelerator, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"stratus-privprobe-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        QemuDriver.CreatePrivateDirectory(dir);
        var socket = Path.Combine(dir, "qmp.sock");
        var log = Path.Combine(dir, "qemu.log");
        var probe = Path.Combine(dir, "probe.img");
        await File.WriteAllBytesAsync(probe, new byte[4096], cancellationToken);
        ChildProcess? child = null;
        try
        {
            var qemu = ToolProcess.Resolve(options.QemuBinary);
            var argv = identity.ExecPrefix(ToolProcess.Resolve(options.SetprivBinary), bindLowPorts: false).Concat(
            [
                qemu, "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
                "-sandbox", QemuDriver.Sandbox,
                "-accel", accelerator == "kvm" ? "kvm" : "tcg",
                "-chardev", "socket,id=qmp,fd=3,server=on,wait=off", "-mon", "chardev=qmp,mode=control",
                "-add-fd", "fd=4,set=4,opaque=probe",
                "-blockdev", "driver=file,filename=/dev/fdset/4,node-name=probe,read-only=on",
            ]).ToList();
            using (var fds = new DescriptorSet())
            {
                fds.OpenRead("/dev/null", 0);
                fds.OpenAppend(log, 1);
                fds.OpenAppend(log, 2);
                fds.ListenUnix(socket, 3);
                fds.OpenRead(probe, 4);
                child = ChildProcess.Start(argv[0], argv, fds.Map);
            }

            var connect = QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5), cancellationToken);
            await Task.WhenAny(connect, child.Exited);
            if (!connect.IsCompletedSuccessfully)
            {
                // The socket is bound before exec: a child that dies resets the connection, maybe before its exit is reaped.
                await Task.WhenAny(child.Exited, Task.Delay(TimeSpan.FromSeconds(2), cancellationToken));
                if (child.Exited.IsCompleted)
                {
                    return $"{Path.GetFileName(argv[0])} {ChildProcess.DescribeStatus(child.Exited.Result)}: {Tail(log)}";
                }

                await connect;
            }

            await using var qmp = await connect;
            var blocks = await qmp.ExecuteAsync("query-named-block-nodes", null, cancellationToken);
            var uids = File.ReadLines($"/proc/{child.Pid}/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal)) ?? "";
            var expected = "Uid:" + string.Concat(Enumerable.Repeat("\t" + identity.Uid.ToString(CultureInfo.InvariantCulture), 4));
            if (uids != expected)
            {
                return $"QEMU runs with {uids.Replace('\t', ' ')}, not uid {identity.Uid}";
            }

            if (blocks.GetArrayLength() != 1)
            {
                return "QEMU did not open the block device handed to it as a descriptor";
            }

            await qmp.ExecuteAsync("quit", null, cancellationToken);
            await child.Exited.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return null;
        }
        finally
        {
            if (child is not null && !child.Exited.IsCompleted)
            {
                child.Kill();
                await child.Exited.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Tail(string log)
    {
        var text = File.Exists(log) ? File.ReadAllText(log).Trim() : "";
        return text.Length == 0 ? "no output" : text.Length > 500 ? text[^500..] : text;
    }
}
