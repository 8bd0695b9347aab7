using System.Collections.Concurrent;
using Stratus.Compute;
using Stratus.Core.Backups;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Agent;

/// <summary>
/// The agent's half of snapshots and backups: each request goes to the driver. A revert keeps the reconcile loop away
/// from the VM while it runs (a disk-only revert powers the VM off and boots it again, which the loop must not
/// "correct" halfway).
/// </summary>
public sealed partial class AgentRuntime
{
    private readonly ConcurrentDictionary<InstanceId, byte> _reverting = new();

    private ISnapshotDriver Snapshots => _driver as ISnapshotDriver
        ?? throw new AgentRequestException("snapshots_unsupported", $"the {_driver.Name} driver cannot snapshot VMs");

    private IBackupDriver Backups => _driver as IBackupDriver
        ?? throw new AgentRequestException("backups_unsupported", $"the {_driver.Name} driver cannot back up VMs");

    private static VmSnapshot ToSnapshot(VmSnapshotInfo s) => new(s.Name, s.WithMemory, s.VmStateBytes, s.CreatedAt);

    public async Task<VmSnapshot> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken)
    {
        try
        {
            return ToSnapshot(await Snapshots.CreateSnapshotAsync(id, name, withMemory, cancellationToken));
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    public async Task<IReadOnlyList<VmSnapshot>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            return [.. (await Snapshots.ListSnapshotsAsync(id, cancellationToken)).Select(ToSnapshot)];
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    public async Task<ActualVm> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken)
    {
        _reverting[id] = 0;
        try
        {
            var s = await Snapshots.RevertSnapshotAsync(id, name, cancellationToken);
            return new ActualVm(id, s.Power, s.Pid, [.. s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))], AppliedReboot(id), null, true) { HotPlugged = s.HotPlugged };
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
        finally
        {
            _reverting.TryRemove(id, out _);
            Kick(id);
        }
    }

    public async Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken)
    {
        try
        {
            await Snapshots.DeleteSnapshotAsync(id, name, cancellationToken);
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    public async Task<BackupResult> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken)
    {
        try
        {
            var m = await Backups.BackupAsync(id, targetDirectory, incrementalFrom, cancellationToken);
            return new BackupResult(m.Kind, m.Files.Sum(f => f.SizeBytes), m.VirtualSizeBytes, m.Files.Count, m.FullReason);
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }
}
