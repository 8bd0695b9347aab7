using System.Text.Json;
using System.Text.RegularExpressions;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Backups;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Snapshots: qcow2 internal snapshots of the VM's overlay (<c>disk.qcow2</c>): with memory,
/// HMP <c>savevm</c>/<c>loadvm</c> (through QMP <c>human-monitor-command</c>; QMP's <c>snapshot-save</c> job would do
/// the same with more round trips); disk only on a running VM, QMP <c>blockdev-snapshot-internal-sync</c> on the
/// <c>root-fmt</c> node (no pause); on a stopped VM, <c>qemu-img snapshot</c>. A disk-only snapshot cannot be loaded into
/// a running QEMU (<c>loadvm</c> refuses one without vmstate), so its revert is: force off, <c>qemu-img snapshot -a</c>,
/// boot (same ports, new pid).
/// <para>A revert first removes the disk's backup bitmaps (QEMU refuses to load a snapshot into a disk that has dirty
/// bitmaps, and the reverted disk matches none of them): the next backup is a full one, its manifest says why. Backups:
/// QemuDriver.Backup.cs.</para>
/// </summary>
public sealed partial class QemuDriver : ISnapshotDriver
{
    private const string RootNode = "root-fmt";

    /// <summary>The temporary snapshot earlier versions took for a backup (still hidden from lists: an old disk may hold one).</summary>
    private const string BackupSnapshot = "stratus-backup-tmp";
    private static readonly TimeSpan SnapshotTimeout = TimeSpan.FromMinutes(5);

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex SnapshotName();

    private static void ValidateSnapshotName(string name)
    {
        if (string.IsNullOrEmpty(name) || !SnapshotName().IsMatch(name) || name == BackupSnapshot)
        {
            throw new ComputeException("invalid_spec", $"snapshot name '{name}' must be 1–64 letters, digits, '.', '_' or '-' (and not {BackupSnapshot})");
        }
    }

    private static void RequireDisk(QemuVm vm)
    {
        if (!File.Exists(vm.DiskPath))
        {
            throw new ComputeException("invalid_state", $"VM {vm.Id} has no disk to snapshot");
        }
    }

    private static bool Running(QemuVm vm) => vm.Pid is not null && vm.Qmp is not null;

    /// <summary>The VM's overlay with its base as the spec names it, for qemu-img: never the base its header names (see
    /// <see cref="QemuImg.Chain"/>).</summary>
    private static string Chain(QemuVm vm) => QemuImg.Chain(vm.DiskPath, vm.Spec.ImagePath, vm.Spec.ImageFormat);

    /// <summary>HMP through QMP: HMP reports errors as text, not as a QMP error.</summary>
    private static async Task HmpAsync(QmpClient qmp, string commandLine, CancellationToken cancellationToken)
    {
        var output = await qmp.ExecuteAsync("human-monitor-command", new Dictionary<string, object> { ["command-line"] = commandLine }, cancellationToken, SnapshotTimeout);
        var text = output.ValueKind == JsonValueKind.String ? output.GetString()?.Trim() : null;
        if (!string.IsNullOrEmpty(text))
        {
            throw new ComputeException("hypervisor_error", $"{commandLine.Split(' ')[0]} failed: {text}");
        }
    }

    /// <inheritdoc />
    public async Task<VmSnapshotInfo> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken)
    {
        ValidateSnapshotName(name);
        VmSnapshotInfo? created = null;
        await WithVmAsync(id, async vm =>
        {
            RequireDisk(vm);
            var existing = await _qemuImg.ListSnapshotsAsync(vm.DiskPath, cancellationToken);
            if (existing.Any(s => s.Name == name))
            {
                throw new ComputeException("snapshot_exists", $"VM {id} already has a snapshot named '{name}'");
            }

            if (Running(vm))
            {
                if (withMemory)
                {
                    await HmpAsync(vm.Qmp!, $"savevm {name}", cancellationToken);
                }
                else
                {
                    await vm.Qmp!.ExecuteAsync("blockdev-snapshot-internal-sync", new { device = RootNode, name }, cancellationToken, SnapshotTimeout);
                }
            }
            else if (withMemory)
            {
                throw new ComputeException("invalid_state", $"VM {id} is not running: a snapshot with memory needs a running VM");
            }
            else
            {
                await _qemuImg.SnapshotAsync("-c", Chain(vm), name, cancellationToken);
            }

            created = (await _qemuImg.ListSnapshotsAsync(vm.DiskPath, cancellationToken)).LastOrDefault(s => s.Name == name)
                ?? throw new ComputeException("hypervisor_error", $"snapshot '{name}' was not recorded in the disk");
        }, cancellationToken);
        return created!;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<VmSnapshotInfo>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        return File.Exists(vm.DiskPath)
            ? [.. (await _qemuImg.ListSnapshotsAsync(vm.DiskPath, cancellationToken)).Where(s => s.Name != BackupSnapshot)]
            : [];
    }

    /// <inheritdoc />
    public Task<VmStatus> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        WithVmAsync(id, async vm =>
        {
            RequireDisk(vm);
            var snapshot = (await _qemuImg.ListSnapshotsAsync(vm.DiskPath, cancellationToken)).FirstOrDefault(s => s.Name == name)
                ?? throw new ComputeException("snapshot_not_found", $"VM {id} has no snapshot named '{name}'");
            var chainReason = $"the disk was reverted to snapshot '{name}' at {DateTimeOffset.UtcNow:u}";
            if (Running(vm) && snapshot.WithMemory)
            {
                await BreakBackupChainAsync(vm, chainReason, cancellationToken);
                await HmpAsync(vm.Qmp!, $"loadvm {name}", cancellationToken);
                await RefreshPowerAsync(vm, cancellationToken);
                return;
            }

            var wasRunning = vm.Pid is not null;
            if (wasRunning)
            {
                await StopLockedAsync(vm, TimeSpan.Zero, cancellationToken);
            }

            await BreakBackupChainAsync(vm, chainReason, cancellationToken);
            await _qemuImg.SnapshotAsync("-a", Chain(vm), name, cancellationToken);
            if (wasRunning)
            {
                await StartStoppedAsync(vm, cancellationToken);
            }
        }, cancellationToken);

    /// <inheritdoc />
    public async Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        await WithVmAsync(id, async vm =>
        {
            if (!File.Exists(vm.DiskPath) || !(await _qemuImg.ListSnapshotsAsync(vm.DiskPath, cancellationToken)).Any(s => s.Name == name))
            {
                return;
            }

            await DeleteInternalSnapshotAsync(vm, name, cancellationToken);
        }, cancellationToken);

    private async Task DeleteInternalSnapshotAsync(QemuVm vm, string name, CancellationToken cancellationToken)
    {
        if (Running(vm))
        {
            await vm.Qmp!.ExecuteAsync("blockdev-snapshot-delete-internal-sync", new { device = RootNode, name }, cancellationToken, SnapshotTimeout);
        }
        else
        {
            await _qemuImg.SnapshotAsync("-d", Chain(vm), name, cancellationToken);
        }
    }
}
