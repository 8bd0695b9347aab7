using System.Text;
using System.Text.RegularExpressions;
using Stratus.Core.Backups;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Simulated;

/// <summary>
/// Snapshots are names kept in the VM's state (revert changes nothing but is checked like the real driver's: the
/// snapshot must exist; a memory snapshot needs a running VM). A backup writes one stand-in disk file
/// (<c>disk.sim</c>: the VM's id, name and size as text) plus the manifest, so checksums, corruption and restore can be
/// exercised without a hypervisor. Incrementals follow the QEMU driver's rules: the VM remembers the backups its
/// "bitmaps" are anchored at (the newest and its parent); an incremental is written only from one of those, else a full
/// backup with the reason; a revert forgets them. An incremental's stand-in disk is a few bytes, a full one 64 KiB, so
/// sizes differ as they would.
/// </summary>
public sealed partial class SimulatedDriver
{
    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex SnapshotName();

    private SimVm Existing(InstanceId id) =>
        _vms.TryGetValue(id, out var vm) && !vm.Incoming ? vm : throw new ComputeException("not_found", $"no VM {id} on this host");

    public async Task<VmSnapshotInfo> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(name) || !SnapshotName().IsMatch(name))
        {
            throw new ComputeException("invalid_spec", $"snapshot name '{name}' must be 1–64 letters, digits, '.', '_' or '-'");
        }
        var vm = Existing(id);
        if (vm.Snapshots?.Any(s => s.Name == name) == true)
        {
            throw new ComputeException("snapshot_exists", $"VM {id} already has a snapshot named '{name}'");
        }
        if (withMemory && vm.Power is not (PowerState.Running or PowerState.Paused))
        {
            throw new ComputeException("invalid_state", $"VM {id} is not running: a snapshot with memory needs a running VM");
        }
        var info = new VmSnapshotInfo(name, withMemory, withMemory ? vm.MemoryMib * 1024 * 1024 : 0, _time.GetUtcNow());
        _vms[id] = vm with { Snapshots = [.. vm.Snapshots ?? [], info] };
        await SaveAsync(cancellationToken);
        return info;
    }

    public Task<IReadOnlyList<VmSnapshotInfo>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<VmSnapshotInfo>>(Existing(id).Snapshots ?? []);

    public async Task<VmStatus> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (vm.Snapshots?.Any(s => s.Name == name) != true)
        {
            throw new ComputeException("snapshot_not_found", $"VM {id} has no snapshot named '{name}'");
        }
        _vms[id] = vm with { BackupAnchors = null, ChainBreak = $"the disk was reverted to snapshot '{name}'" };
        await SaveAsync(cancellationToken);
        return Status(_vms[id]);
    }

    public async Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (vm.Snapshots?.Any(s => s.Name == name) == true)
        {
            _vms[id] = vm with { Snapshots = [.. vm.Snapshots.Where(s => s.Name != name)] };
            await SaveAsync(cancellationToken);
        }
    }

    public async Task<BackupManifest> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (Directory.Exists(targetDirectory) && Directory.EnumerateFileSystemEntries(targetDirectory).Any())
        {
            throw new ComputeException("invalid_spec", $"backup directory {targetDirectory} is not empty");
        }
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(targetDirectory));
        string? parent = null;
        string? reason = null;
        if (incrementalFrom is not null)
        {
            var p = Path.GetFileName(Path.TrimEndingDirectorySeparator(incrementalFrom));
            if (BackupFiles.ReadManifest(incrementalFrom) is null)
            {
                reason = $"the parent backup {p} is not a readable backup of this VM";
            }
            else if (vm.BackupAnchors?.Contains(p) == true)
            {
                parent = p;
            }
            else
            {
                reason = vm.ChainBreak ?? (vm.BackupAnchors is { Count: > 0 } a
                    ? $"the disk tracks changes since backup {string.Join(", ", a)}, not since {p}"
                    : $"the disk has no change-tracking bitmap since backup {p}");
            }
        }
        Directory.CreateDirectory(targetDirectory);
        var content = parent is null
            ? $"id={vm.Id}\nname={vm.Name}\ndisk_gib={vm.DiskGib}\n{new string('.', 64 * 1024)}\n"
            : $"id={vm.Id}\nparent={parent}\n";
        await File.WriteAllTextAsync(Path.Combine(targetDirectory, "disk.sim"), content, Encoding.UTF8, cancellationToken);
        var manifest = new BackupManifest(BackupFiles.ManifestVersion, id, Name, parent is null ? BackupKinds.Full : BackupKinds.Incremental, parent,
            _time.GetUtcNow(), vm.DiskGib * 1024L * 1024 * 1024, [await BackupFiles.EntryAsync(targetDirectory, "disk.sim", "sim", cancellationToken)], reason);
        await BackupFiles.WriteManifestAsync(targetDirectory, manifest, cancellationToken);
        _vms[id] = Existing(id) with { BackupAnchors = parent is null ? [name] : [parent, name], ChainBreak = null };
        await SaveAsync(cancellationToken);
        return manifest;
    }
}
