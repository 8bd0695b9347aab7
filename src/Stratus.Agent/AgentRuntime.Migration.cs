using System.Collections.Concurrent;
using Stratus.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Agent;

/// <summary>
/// The agent's half of migration: it hands each phase to the driver and keeps its own reconcile loop
/// away from a VM while it moves (a VM paused after switchover must never be "resumed" here, and the
/// source copy of a shared disk must never be destroyed as if the server were deleted).
/// </summary>
public sealed partial class AgentRuntime
{
    private readonly ConcurrentDictionary<InstanceId, byte> _migrating = new();
    private readonly ConcurrentDictionary<InstanceId, byte> _migratedOut = new();

    private ILiveMigrationDriver Migrator => _driver as ILiveMigrationDriver
        ?? throw new AgentRequestException("migration_unsupported", $"the {_driver.Name} driver cannot migrate VMs");

    public async Task<IncomingMigrationInfo> PrepareIncomingAsync(DesiredVm vm, CancellationToken cancellationToken)
    {
        _migrating[vm.Id] = 0;
        try
        {
            var incoming = await Migrator.PrepareIncomingAsync(ToSpec(vm), cancellationToken);
            return new IncomingMigrationInfo(incoming.Id, incoming.Uri, incoming.DiskTarget,
                [.. incoming.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))])
            {
                PostCopyUnavailable = incoming.PostCopyUnavailable,
            };
        }
        catch (ComputeException e)
        {
            _migrating.TryRemove(vm.Id, out _);
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    public async Task<MigrationStatus> MigrateOutAsync(InstanceId id, IncomingMigrationInfo target, MigrationSettings settings,
        IProgress<MigrationStatus>? progress, CancellationToken cancellationToken)
    {
        _migrating[id] = 0;
        try
        {
            var options = new MigrationOptions(
                settings.MaxDowntimeMs is { } d ? TimeSpan.FromMilliseconds(d) : null, settings.AutoConverge, settings.PostCopy, settings.BandwidthBytesPerSecond);
            var incoming = new IncomingMigration(target.Id, target.Uri, target.DiskTarget,
                [.. target.Forwards.Select(f => new PortForward(f.HostPort, f.GuestPort))])
            {
                PostCopyUnavailable = target.PostCopyUnavailable,
            };
            var relay = progress is null ? null : new SyncProgress(p => progress.Report(ToStatus(p)));
            var final = await Migrator.MigrateOutAsync(id, incoming, options, relay, cancellationToken);
            _migratedOut[id] = 0;
            return ToStatus(final);
        }
        catch (ComputeException e)
        {
            _migrating.TryRemove(id, out _);
            Kick(id);
            throw new AgentRequestException(e.Code, e.Message);
        }
        catch (OperationCanceledException)
        {
            _migrating.TryRemove(id, out _);
            Kick(id);
            throw;
        }
    }

    public async Task<ActualVm> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            var s = await Migrator.CompleteIncomingAsync(id, cancellationToken);
            // From now on it is an ordinary VM of this host: adopted as running, reboots counted from here.
            _lastActedOn[id] = DesiredPower.Running;
            return new ActualVm(id, s.Power, s.Pid, [.. s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))], AppliedReboot(id), null, true) { HotPlugged = s.HotPlugged };
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
        finally
        {
            _migrating.TryRemove(id, out _);
            Kick(id); // act on whatever was asked meanwhile (the server may have been stopped or deleted after the commit)
        }
    }

    public async Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            await Migrator.CompleteOutgoingAsync(id, cancellationToken);
            _desired.TryRemove(id, out _);
            _lastActedOn.TryRemove(id, out _);
            _errors.TryRemove(id, out _);
            ForgetReboot(id);
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
        finally
        {
            _migratedOut.TryRemove(id, out _);
            _migrating.TryRemove(id, out _);
        }
    }

    public async Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            await Migrator.AbortIncomingAsync(id, cancellationToken);
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
        finally
        {
            _migrating.TryRemove(id, out _);
        }
    }

    public async Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            return await Migrator.ExportDiskAsync(id, cancellationToken);
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    public async Task<ActualVm> ImportStoppedAsync(DesiredVm vm, string? sourceDisk, CancellationToken cancellationToken)
    {
        try
        {
            var s = await Migrator.ImportStoppedAsync(ToSpec(vm), sourceDisk, cancellationToken);
            _lastActedOn[vm.Id] = DesiredPower.Stopped;
            SetAppliedReboot(vm.Id, vm.RebootSeq);
            return new ActualVm(vm.Id, s.Power, s.Pid, [.. s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))], vm.RebootSeq, null, true) { HotPlugged = s.HotPlugged };
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    /// <summary>True while a VM is being migrated in or out: the reconcile loop leaves it alone.</summary>
    private bool IsMigrating(InstanceId id) => _migrating.ContainsKey(id) || _migratedOut.ContainsKey(id);

    private static MigrationStatus ToStatus(MigrationProgress p) =>
        new(p.Status, p.TotalBytes, p.TransferredBytes, p.RemainingBytes, p.DirtyRateBytesPerSecond, p.ExpectedDowntimeMs,
            p.DowntimeMs, p.TotalTimeMs, p.DiskTotalBytes, p.DiskTransferredBytes, p.Error);

    /// <summary>Reports progress on the caller's thread (no synchronization context hop, unlike Progress&lt;T&gt;).</summary>
    private sealed class SyncProgress(Action<MigrationProgress> report) : IProgress<MigrationProgress>
    {
        public void Report(MigrationProgress value) => report(value);
    }
}
