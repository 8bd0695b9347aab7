using System.Collections.Concurrent;
using Stratus.Compute.Simulated;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Tests;

/// <summary>Live and cold migration between two simulated hosts (two instances, two state directories).</summary>
public sealed class SimulatedMigrationTests : IAsyncDisposable
{
    private readonly string _dirA = Directory.CreateTempSubdirectory("stratus-sim-a-").FullName;
    private readonly string _dirB = Directory.CreateTempSubdirectory("stratus-sim-b-").FullName;
    private readonly SimulatedDriver _a;
    private readonly SimulatedDriver _b;

    public SimulatedMigrationTests()
    {
        _a = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = _dirA, DelayScale = 0.05 });
        _b = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = _dirB, DelayScale = 0.05 });
    }

    private static VmSpec Spec(InstanceId id, long memoryMib = 1024) =>
        new(id, "vm", 1, memoryMib, 1, null, null, null, null, null, null, [], [new PortForward(0, 80)], 1, memoryMib);

    private sealed class ProgressLog : IProgress<MigrationProgress>
    {
        public ConcurrentQueue<MigrationProgress> Reports { get; } = new();

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Report(MigrationProgress value)
        {
            Reports.Enqueue(value);
            if (value.TransferredBytes > 0)
            {
                Started.TrySetResult();
            }
        }
    }

    [Fact]
    public async Task LiveMigrate_HappyPath_VmMovesAndSourceIsRemoved()
    {
        var id = InstanceId.New();
        var source = await _a.CreateAsync(Spec(id), default);
        var incoming = await _b.PrepareIncomingAsync(Spec(id), default);
        Assert.StartsWith("sim:", incoming.Uri, StringComparison.Ordinal);
        Assert.NotEqual(source.Forwards[0].HostPort, incoming.Forwards[0].HostPort);
        Assert.Empty(await _b.ListAsync(default)); // incoming: not an ordinary VM yet
        Assert.Null(await _b.GetStatusAsync(id, default));

        var log = new ProgressLog();
        var final = await _a.MigrateOutAsync(id, incoming, new MigrationOptions(), log, default);
        Assert.Equal("completed", final.Status);
        Assert.Equal(1024L << 20, final.TotalBytes);
        Assert.Equal(final.TotalBytes, final.TransferredBytes);
        Assert.NotNull(final.DowntimeMs);
        Assert.True(log.Reports.Count >= 10);
        // Proportional to memory: 1 GiB takes (200 + 1024) ms × 0.05 ≈ 61 ms.
        Assert.True(final.TotalTimeMs >= 55, $"took {final.TotalTimeMs} ms");

        var arrived = await _b.CompleteIncomingAsync(id, default);
        Assert.Equal(PowerState.Running, arrived.Power);
        Assert.Equal(incoming.Forwards, arrived.Forwards);
        await _a.CompleteOutgoingAsync(id, default);
        Assert.Null(await _a.GetStatusAsync(id, default));
        Assert.Equal(id, Assert.Single(await _b.ListAsync(default)).Id);

        // The destination's state survives its restart, as any VM's.
        await using var again = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = _dirB, DelayScale = 0 });
        Assert.Equal(PowerState.Running, (await again.GetStatusAsync(id, default))!.Power);
    }

    [Fact]
    public async Task LiveMigrate_Cancelled_SourceKeepsRunningAndDestinationCanBeAborted()
    {
        var id = InstanceId.New();
        await _a.CreateAsync(Spec(id), default);
        var incoming = await _b.PrepareIncomingAsync(Spec(id), default);
        var log = new ProgressLog();
        using var cts = new CancellationTokenSource();
        // 1 MB/s for 1 GiB: ~18 minutes, ×0.05 ≈ 54 s — the cancel comes first.
        var migration = _a.MigrateOutAsync(id, incoming, new MigrationOptions(BandwidthBytesPerSecond: 1_000_000), log, cts.Token);
        await log.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => migration);

        Assert.Equal(PowerState.Running, (await _a.GetStatusAsync(id, default))!.Power);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => _b.CompleteIncomingAsync(id, default))).Code);
        await _b.AbortIncomingAsync(id, default);
        await _b.AbortIncomingAsync(id, default); // idempotent
        Assert.Empty(await _b.ListAsync(default));
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => _a.CompleteOutgoingAsync(id, default))).Code);
    }

    [Fact]
    public async Task LiveMigrate_DestinationAborted_FailsAndSourceKeepsRunning()
    {
        var id = InstanceId.New();
        await _a.CreateAsync(Spec(id), default);
        var incoming = await _b.PrepareIncomingAsync(Spec(id), default);
        await _b.AbortIncomingAsync(id, default);
        var e = await Assert.ThrowsAsync<ComputeException>(() => _a.MigrateOutAsync(id, incoming, new MigrationOptions(), null, default));
        Assert.Equal("migration_failed", e.Code);
        Assert.Equal(PowerState.Running, (await _a.GetStatusAsync(id, default))!.Power);

        // Aborted mid-way: the source notices at its next step.
        var again = await _b.PrepareIncomingAsync(Spec(id), default);
        var log = new ProgressLog();
        var migration = _a.MigrateOutAsync(id, again, new MigrationOptions(BandwidthBytesPerSecond: 1_000_000), log, default);
        await log.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await _b.AbortIncomingAsync(id, default);
        Assert.Equal("migration_failed", (await Assert.ThrowsAsync<ComputeException>(() => migration)).Code);
        Assert.Equal(PowerState.Running, (await _a.GetStatusAsync(id, default))!.Power);
    }

    [Fact]
    public async Task ColdMigrate_StoppedVm_ImportedStoppedAndStartsOnDestination()
    {
        var id = InstanceId.New();
        await _a.CreateAsync(Spec(id), default);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => _a.ExportDiskAsync(id, default))).Code);
        await _a.StopAsync(id, TimeSpan.Zero, default);
        var disk = await _a.ExportDiskAsync(id, default);
        Assert.True(File.Exists(disk));
        var imported = await _b.ImportStoppedAsync(Spec(id), disk, default);
        Assert.Equal(PowerState.Shutdown, imported.Power);
        await _a.CompleteOutgoingAsync(id, default);
        Assert.Null(await _a.GetStatusAsync(id, default));
        Assert.Equal(PowerState.Running, (await _b.StartAsync(id, default)).Power);

        var other = InstanceId.New();
        Assert.Equal("not_found", (await Assert.ThrowsAsync<ComputeException>(() => _b.ImportStoppedAsync(Spec(other), disk, default))).Code);
    }

    [Fact]
    public async Task Migration_BadInput_ClearCodes()
    {
        var id = InstanceId.New();
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => _b.PrepareIncomingAsync(Spec(id) with { StoragePool = "nfs" }, default))).Code);
        await _a.CreateAsync(Spec(id), default);
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => _a.MigrateOutAsync(id, new IncomingMigration(id, "tcp:127.0.0.1:1", null, []), new MigrationOptions(), null, default))).Code);
        var missing = InstanceId.New();
        Assert.Equal("not_found", (await Assert.ThrowsAsync<ComputeException>(() => _a.MigrateOutAsync(missing, new IncomingMigration(missing, "sim:/nowhere", null, []), new MigrationOptions(), null, default))).Code);
        Assert.Equal("not_found", (await Assert.ThrowsAsync<ComputeException>(() => _b.CompleteIncomingAsync(missing, default))).Code);
    }

    public async ValueTask DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        Directory.Delete(_dirA, true);
        Directory.Delete(_dirB, true);
    }
}
