using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Backups;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Full and incremental backups with QEMU's block layer, the same way for running and stopped VMs.
/// <para>Every backup is a <c>blockdev-backup</c> job from the VM's disk node (<c>root-fmt</c>, the overlay with its base
/// image below it) into a new <c>disk.qcow2</c> in the backup directory: <c>sync=full</c> for a full backup (a standalone
/// qcow2), <c>sync=bitmap</c> for an incremental (a qcow2 whose backing file is the parent backup's disk,
/// <c>../PARENT/disk.qcow2</c>, and which holds only the clusters the guest wrote since the parent). The job is
/// point-in-time (copy-before-write: the guest keeps running and writing) and starts in one QMP <c>transaction</c> with
/// <c>block-dirty-bitmap-add</c> of a persistent bitmap named after the new backup (<c>stratus-backup-ID</c>), so that
/// bitmap records exactly the writes after the instant the backup shows. A running VM's job runs in its own QEMU; a stopped
/// VM's in a <c>qemu-storage-daemon</c> started on its disk for the job and quit cleanly afterwards (so the bitmaps are
/// written back into the qcow2).</para>
/// <para>The parent's bitmap is used with <c>bitmap-mode=never</c> (left as it is): if the job fails, nothing is lost.
/// After success the bitmaps of the new backup and of its parent stay and older ones are removed — keeping the parent's
/// lets the next incremental still build on the parent when the controller did not record the new backup.</para>
/// <para>An incremental is only written when the disk has a consistent bitmap named after the requested parent. Otherwise
/// a full backup is written and <see cref="BackupManifest.FullReason"/> says why: no bitmap (a disk new on this host:
/// live migration, restore; or bitmaps removed by a snapshot revert — QEMU refuses <c>loadvm</c> and
/// <c>qemu-img snapshot -a</c> on a disk with bitmaps, and a reverted disk no longer matches any bitmap), an inconsistent
/// bitmap (QEMU did not close the disk cleanly), or bitmaps of other backups only.</para>
/// </summary>
public sealed partial class QemuDriver : IBackupDriver
{
    /// <summary>Prefix of the persistent dirty bitmaps the driver keeps in a VM's disk, one per recent backup.</summary>
    public const string BitmapPrefix = "stratus-backup-";

    private const string BackupJob = "stratus-backup";
    private const string BackupTargetNode = "stratus-backup-target";

    /// <summary>Written next to the disk when something breaks the chain on purpose (a snapshot revert): the reason the
    /// next backup gives for being full. Removed by the next backup.</summary>
    private const string ChainReasonFile = "backup-chain.reason";

    private sealed record BitmapInfo(string Name, bool Inconsistent);

    /// <inheritdoc />
    public async Task<BackupManifest> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken)
    {
        BackupManifest? manifest = null;
        if (Directory.Exists(targetDirectory) && Directory.EnumerateFileSystemEntries(targetDirectory).Any())
        {
            throw new ComputeException("invalid_spec", $"backup directory {targetDirectory} is not empty");
        }

        targetDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetDirectory));
        Directory.CreateDirectory(targetDirectory);
        try
        {
            await WithVmAsync(id, async vm =>
            {
                RequireDisk(vm);
                if (Running(vm))
                {
                    manifest = await BackupWithAsync(vm, vm.Qmp!, passTarget: true, targetDirectory, incrementalFrom, cancellationToken);
                }
                else
                {
                    await using var daemon = await StorageDaemon.StartAsync(_options.QemuStorageDaemonBinary, vm.DiskPath, vm.Spec.ImagePath, vm.Spec.ImageFormat, HelperSocketPath(vm), _options.QmpCommandTimeout, cancellationToken);
                    manifest = await BackupWithAsync(vm, daemon.Qmp, passTarget: false, targetDirectory, incrementalFrom, cancellationToken); // the daemon runs as the agent
                }
            }, cancellationToken);
        }
        catch
        {
            try
            {
                Directory.Delete(targetDirectory, recursive: true);
            }
            catch (IOException)
            {
            }

            throw;
        }

        return manifest!;
    }

    private string HelperSocketPath(QemuVm vm)
    {
        var inDir = Path.Combine(vm.Directory, "backup-qmp.sock");
        return System.Text.Encoding.UTF8.GetByteCount(inDir) <= 107 ? inDir : Path.Combine(Path.GetDirectoryName(vm.QmpPath)!, vm.Id + ".bk.sock");
    }

    private async Task<BackupManifest> BackupWithAsync(QemuVm vm, QmpClient qmp, bool passTarget, string target, string? incrementalFrom, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(target);
        var newBitmap = BitmapPrefix + name;
        var bitmaps = await ListBitmapsAsync(qmp, cancellationToken);
        foreach (var stale in bitmaps.Where(b => b.Inconsistent))
        {
            await qmp.ExecuteAsync("block-dirty-bitmap-remove", new { node = RootNode, name = stale.Name }, cancellationToken);
        }

        var (parent, reason) = ChooseParent(vm, bitmaps, incrementalFrom);
        var info = await _qemuImg.InfoAsync(vm.DiskPath, mayBeInUse: true, cancellationToken);
        var disk = Path.Combine(target, "disk.qcow2");
        await _qemuImg.CreateWithBackingAsync(disk, parent is null ? null : $"../{parent}/disk.qcow2", info.VirtualSizeBytes, cancellationToken);

        var sw = Stopwatch.StartNew();
        // The target is handed to QEMU open (it may run unprivileged and cannot reach the backup store by path), and its
        // backing is not opened at all: the job only writes the changed clusters.
        long? fdset = passTarget ? await AddFdAsync(qmp, disk, cancellationToken) : null;
        try
        {
            await qmp.ExecuteAsync("blockdev-add", new Dictionary<string, object?>
            {
                ["driver"] = "qcow2",
                ["node-name"] = BackupTargetNode,
                ["file"] = new { driver = "file", filename = fdset is { } set ? $"/dev/fdset/{set}" : disk },
                ["backing"] = null,
            }, cancellationToken);
        }
        catch
        {
            if (fdset is { } set)
            {
                await TryAsync(() => qmp.ExecuteAsync("remove-fd", new Dictionary<string, object> { ["fdset-id"] = set }, CancellationToken.None));
            }
            throw;
        }
        try
        {
            var backup = new Dictionary<string, object>
            {
                ["job-id"] = BackupJob,
                ["device"] = RootNode,
                ["target"] = BackupTargetNode,
                ["sync"] = parent is null ? "full" : "bitmap",
                ["auto-dismiss"] = false,
            };
            if (parent is not null)
            {
                backup["bitmap"] = BitmapPrefix + parent;
                backup["bitmap-mode"] = "never";
            }

            await qmp.ExecuteAsync("transaction", new
            {
                actions = new object[]
                {
                    new { type = "block-dirty-bitmap-add", data = new { node = RootNode, name = newBitmap, persistent = true } },
                    new { type = "blockdev-backup", data = backup },
                },
            }, cancellationToken);
            try
            {
                await WaitForJobAsync(qmp, cancellationToken);
            }
            catch
            {
                await TryAsync(() => qmp.ExecuteAsync("block-dirty-bitmap-remove", new { node = RootNode, name = newBitmap }, CancellationToken.None));
                throw;
            }
        }
        finally
        {
            await TryAsync(() => qmp.ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = BackupTargetNode }, CancellationToken.None));
            if (fdset is { } set)
            {
                await TryAsync(() => qmp.ExecuteAsync("remove-fd", new Dictionary<string, object> { ["fdset-id"] = set }, CancellationToken.None));
            }
        }

        foreach (var old in bitmaps.Where(b => !b.Inconsistent && b.Name != newBitmap && b.Name != BitmapPrefix + parent))
        {
            await qmp.ExecuteAsync("block-dirty-bitmap-remove", new { node = RootNode, name = old.Name }, cancellationToken);
        }

        File.Delete(Path.Combine(vm.DiskDirectory, ChainReasonFile));
        LogBackupWritten(_logger, vm.Id.ToString(), parent is null ? BackupKinds.Full : BackupKinds.Incremental, new FileInfo(disk).Length, sw.ElapsedMilliseconds);
        if (reason is not null)
        {
            LogChainRestarted(_logger, vm.Id.ToString(), reason);
        }

        var files = new List<BackupFileEntry> { await BackupFiles.EntryAsync(target, "disk.qcow2", "disk", cancellationToken) };
        var parentDir = parent is null ? null : Path.Combine(Path.GetDirectoryName(target)!, parent);
        var spec = vm.Spec;
        if (spec.KernelPath is not null)
        {
            await AddBootFileAsync(files, target, parentDir, "vmlinuz", "kernel", spec.KernelPath, null, cancellationToken);
            if (spec.InitrdPath is not null)
            {
                await AddBootFileAsync(files, target, parentDir, "initrd.img", "initrd", spec.InitrdPath, null, cancellationToken);
            }

            await AddBootFileAsync(files, target, parentDir, "cmdline", "cmdline", null, spec.KernelCmdline ?? "", cancellationToken);
        }

        var manifest = new BackupManifest(BackupFiles.ManifestVersion, vm.Id, Name, parent is null ? BackupKinds.Full : BackupKinds.Incremental, parent,
            DateTimeOffset.UtcNow, info.VirtualSizeBytes, files, reason);
        await BackupFiles.WriteManifestAsync(target, manifest, cancellationToken);
        return manifest;
    }

    /// <summary>Copies a boot file into the backup unless the chain already holds the same bytes (an incremental inherits it).</summary>
    private static async Task AddBootFileAsync(List<BackupFileEntry> files, string target, string? parentDir, string name, string role,
        string? source, string? content, CancellationToken cancellationToken)
    {
        var path = Path.Combine(target, name);
        if (source is not null)
        {
            File.Copy(source, path);
        }
        else
        {
            await File.WriteAllTextAsync(path, content, cancellationToken);
        }

        var entry = await BackupFiles.EntryAsync(target, name, role, cancellationToken);
        if (parentDir is not null && BackupFiles.Effective(parentDir, role) is { } inherited
            && string.Equals(inherited.Entry.Sha256, entry.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            File.Delete(path);
            return;
        }

        files.Add(entry);
    }

    /// <summary>The parent an incremental can build on (null: write a full backup), and why not when one was asked for.</summary>
    private (string? Parent, string? Reason) ChooseParent(QemuVm vm, IReadOnlyList<BitmapInfo> bitmaps, string? incrementalFrom)
    {
        if (incrementalFrom is null)
        {
            return (null, null);
        }

        var parentDir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(incrementalFrom));
        var parent = Path.GetFileName(parentDir);
        var parentManifest = BackupFiles.ReadManifest(parentDir);
        if (parentManifest is null || !File.Exists(Path.Combine(parentDir, "disk.qcow2")) || parentManifest.InstanceId != vm.Id)
        {
            return (null, $"the parent backup {parent} is not a readable backup of this VM");
        }

        var wanted = bitmaps.FirstOrDefault(b => b.Name == BitmapPrefix + parent);
        if (wanted is { Inconsistent: false })
        {
            return (parent, null);
        }

        if (wanted is { Inconsistent: true })
        {
            return (null, $"the change-tracking bitmap since backup {parent} is inconsistent (QEMU did not close the disk cleanly)");
        }

        var reasonFile = Path.Combine(vm.DiskDirectory, ChainReasonFile);
        if (File.Exists(reasonFile))
        {
            return (null, File.ReadAllText(reasonFile).Trim());
        }

        var others = bitmaps.Where(b => !b.Inconsistent).Select(b => b.Name[BitmapPrefix.Length..]).ToList();
        return others.Count > 0
            ? (null, $"the disk tracks changes since backup {string.Join(", ", others)}, not since {parent}")
            : (null, $"the disk has no change-tracking bitmap since backup {parent} (a disk new on this host after a live migration, or bitmaps lost)");
    }

    private static async Task<IReadOnlyList<BitmapInfo>> ListBitmapsAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new { flat = true }, cancellationToken);
        var result = new List<BitmapInfo>();
        foreach (var node in nodes.EnumerateArray())
        {
            if (node.GetProperty("node-name").GetString() != RootNode || !node.TryGetProperty("dirty-bitmaps", out var list))
            {
                continue;
            }

            foreach (var b in list.EnumerateArray())
            {
                var name = b.GetProperty("name").GetString() ?? "";
                if (name.StartsWith(BitmapPrefix, StringComparison.Ordinal))
                {
                    result.Add(new BitmapInfo(name, b.TryGetProperty("inconsistent", out var i) && i.GetBoolean()));
                }
            }
        }

        return result;
    }

    /// <summary>Waits for the backup job to conclude; a failed or cancelled job throws (the job is dismissed either way).</summary>
    private static async Task WaitForJobAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var cancelled = false;
        while (true)
        {
            JsonElement? job = null;
            foreach (var j in (await qmp.ExecuteAsync("query-jobs", null, CancellationToken.None)).EnumerateArray())
            {
                if (j.GetProperty("id").GetString() == BackupJob)
                {
                    job = j;
                }
            }

            if (job is not { } current)
            {
                throw new ComputeException("hypervisor_error", "the backup job disappeared");
            }

            if (current.GetProperty("status").GetString() == "concluded")
            {
                var error = current.TryGetProperty("error", out var e) ? e.GetString() : null;
                await qmp.ExecuteAsync("job-dismiss", new { id = BackupJob }, CancellationToken.None);
                cancellationToken.ThrowIfCancellationRequested();
                if (error is not null)
                {
                    throw new ComputeException("hypervisor_error", $"backup job failed: {error}");
                }

                return;
            }

            if (cancellationToken.IsCancellationRequested && !cancelled)
            {
                cancelled = true;
                await qmp.ExecuteAsync("job-cancel", new { id = BackupJob }, CancellationToken.None);
            }

            await Task.Delay(50, CancellationToken.None);
        }
    }

    private static async Task TryAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException)
        {
        }
    }

    /// <summary>
    /// Before a snapshot revert: QEMU refuses <c>loadvm</c> and <c>qemu-img snapshot -a</c> on a disk with bitmaps, and a
    /// reverted disk matches none of them anyway. Removes them and leaves the reason for the next backup's manifest.
    /// </summary>
    private async Task BreakBackupChainAsync(QemuVm vm, string reason, CancellationToken cancellationToken)
    {
        if (Running(vm))
        {
            foreach (var b in await ListAllBitmapsAsync(vm.Qmp!, cancellationToken))
            {
                await vm.Qmp!.ExecuteAsync("block-dirty-bitmap-remove", new { node = RootNode, name = b }, cancellationToken);
            }
        }
        else
        {
            foreach (var (name, _) in await _qemuImg.ListBitmapsAsync(vm.DiskPath, cancellationToken))
            {
                await _qemuImg.RemoveBitmapAsync(vm.DiskPath, name, cancellationToken);
            }
        }

        await File.WriteAllTextAsync(Path.Combine(vm.DiskDirectory, ChainReasonFile), reason, cancellationToken);
    }

    private static async Task<IReadOnlyList<string>> ListAllBitmapsAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var nodes = await qmp.ExecuteAsync("query-named-block-nodes", new { flat = true }, cancellationToken);
        return [.. nodes.EnumerateArray()
            .Where(n => n.GetProperty("node-name").GetString() == RootNode && n.TryGetProperty("dirty-bitmaps", out _))
            .SelectMany(n => n.GetProperty("dirty-bitmaps").EnumerateArray())
            .Select(b => b.GetProperty("name").GetString() ?? "")];
    }

    [LoggerMessage(EventId = 4030, Level = LogLevel.Information, Message = "VM {InstanceId}: {Kind} backup written, {Bytes} bytes in {ElapsedMs} ms")]
    private static partial void LogBackupWritten(ILogger logger, string instanceId, string kind, long bytes, long elapsedMs);

    [LoggerMessage(EventId = 4031, Level = LogLevel.Information, Message = "VM {InstanceId}: a full backup instead of an incremental: {Reason}")]
    private static partial void LogChainRestarted(ILogger logger, string instanceId, string reason);

    /// <summary>Opens <paramref name="path"/> read-write here (as the agent) and passes it to QEMU with <c>add-fd</c>; returns the fd set id (<c>/dev/fdset/N</c>).</summary>
    private static async Task<long> AddFdAsync(QmpClient qmp, string path, CancellationToken cancellationToken)
    {
        var fd = Launch.Native.Open(path, Launch.Native.OReadWrite | Launch.Native.OCloseOnExec, 0);
        if (fd < 0)
        {
            throw new ComputeException("hypervisor_error", $"cannot open {Path.GetFileName(path)} for QEMU (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
        }
        try
        {
            var r = await qmp.ExecuteWithFdAsync("add-fd", new { opaque = "backup-target" }, fd, cancellationToken);
            return r.GetProperty("fdset-id").GetInt64();
        }
        finally
        {
            Launch.Native.Close(fd); // QEMU holds its own copy
        }
    }

    /// <summary>A <c>qemu-storage-daemon</c> holding one stopped VM's disk open for a backup job.</summary>
    private sealed class StorageDaemon : IAsyncDisposable
    {
        private readonly Process _process;

        private readonly string _socket;

        private StorageDaemon(Process process, QmpClient qmp, string socket)
        {
            _process = process;
            Qmp = qmp;
            _socket = socket;
        }

        public QmpClient Qmp { get; }

        /// <remarks>
        /// The base image is named explicitly (read-only), never taken from the overlay's header: the VM's QEMU holds the
        /// overlay read-write, so a QEMU taken over by its guest could point that header at any host file, and this daemon
        /// runs as root (see <see cref="QemuImg.Chain"/>).
        /// </remarks>
        public static async Task<StorageDaemon> StartAsync(string binary, string disk, string? basePath, string? baseFormat, string socket, TimeSpan commandTimeout,
            CancellationToken cancellationToken)
        {
            File.Delete(socket);
            var psi = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true };
            var baseNodes = basePath is null ? [] : new[]
            {
                "--blockdev", JsonSerializer.Serialize(new Dictionary<string, object> { ["driver"] = "file", ["filename"] = basePath, ["node-name"] = "base-file", ["read-only"] = true }),
                "--blockdev", JsonSerializer.Serialize(new Dictionary<string, object> { ["driver"] = baseFormat ?? "qcow2", ["file"] = "base-file", ["node-name"] = "base-fmt", ["read-only"] = true }),
            };
            foreach (var a in baseNodes.Concat(new[]
            {
                "--blockdev", JsonSerializer.Serialize(new Dictionary<string, object> { ["driver"] = "file", ["filename"] = disk, ["node-name"] = "root-file" }),
                "--blockdev", JsonSerializer.Serialize(new Dictionary<string, object?> { ["driver"] = "qcow2", ["file"] = "root-file", ["node-name"] = RootNode, ["backing"] = basePath is null ? null : "base-fmt" }),
                "--chardev", $"socket,path={socket},server=on,wait=off,id=qmp",
                "--monitor", "chardev=qmp",
            }))
            {
                psi.ArgumentList.Add(a);
            }

            Process process;
            try
            {
                process = Process.Start(psi) ?? throw new ComputeException("hypervisor_error", $"could not start {binary}");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new ComputeException("hypervisor_error", $"could not start {binary}: {e.Message} (is qemu-system-common installed?)");
            }

            process.StandardInput.Close();
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            _ = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            try
            {
                var connect = QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(10), commandTimeout, cancellationToken);
                var exited = process.WaitForExitAsync(cancellationToken);
                if (await Task.WhenAny(connect, exited) == exited)
                {
                    throw new ComputeException("hypervisor_error", $"qemu-storage-daemon exited: {(await stderr).Trim()}");
                }

                return new StorageDaemon(process, await connect, socket);
            }
            catch
            {
                Kill(process);
                process.Dispose();
                File.Delete(socket);
                throw;
            }
        }

        private static void Kill(Process p)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }
            }
            catch (InvalidOperationException)
            {
            }
        }

        /// <summary>Quits cleanly — QEMU writes the persistent bitmaps back into the disk on close — and kills the daemon
        /// only when it does not exit (its bitmaps are then left marked in-use, so the next backup is a full one).</summary>
        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                try
                {
                    await Qmp.ExecuteAsync("quit", null, CancellationToken.None, TimeSpan.FromSeconds(5));
                }
                catch (Exception e) when (e is IOException or TimeoutException or QmpException)
                {
                }

                try
                {
                    await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
                }
                catch (TimeoutException)
                {
                    Kill(_process);
                    await _process.WaitForExitAsync(CancellationToken.None);
                }
            }

            await Qmp.DisposeAsync();
            _process.Dispose();
            File.Delete(_socket);
        }
    }
}
