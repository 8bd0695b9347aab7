using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Client;
using Stratus.Compute.Simulated;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// Snapshots, backups, retention and restore over the real gRPC stream with one remote simulated agent (its backups
/// are stand-in files with real manifests and checksums). Real VMs: Stratus.FunctionalTests.DataProtectionScenarioTests.
/// </summary>
public sealed class DataProtectionApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 0, WaitReady = false };
    private AgentRuntime _agent = null!;
    private GrpcControllerClient _client = null!;

    private StratusClient C => _cloud.Client;

    public async Task InitializeAsync()
    {
        await _cloud.InitializeAsync();
        var token = (await C.IssueAgentTokenAsync("dp-1")).Token;
        var dir = Path.Combine(_cloud.DataDir, "agents", "dp-1");
        var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "sim"), DelayScale = 0.02, Cores = 4, MemoryMib = 4096 });
        _client = new GrpcControllerClient(_cloud.AgentUrl, token, NullLogger.Instance);
        _agent = new AgentRuntime(new AgentOptions { HostName = "dp-1", StateDirectory = dir, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
            driver, _client, NullLogger.Instance);
        _client.Bind(_agent);
        await _agent.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await C.HealthAsync()).HostsConnected < 1)
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(20);
        }
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _agent.DisposeAsync();
        await _cloud.DisposeAsync();
    }

    private async Task<ServerDto> ActiveAsync(string name) =>
        await _cloud.WaitAsync((await C.CreateServerAsync(new CreateServerRequest(name, "tiny", "tiny", null, null, null, [new ForwardDto(0, 80)]))).Id, "active");

    [Fact]
    public async Task Snapshots_CreateListRevertDelete_LoggedInActions()
    {
        var s = await ActiveAsync("snap-1");
        var created = await C.CreateSnapshotAsync(s.Id, new CreateSnapshotRequest("before", true));
        Assert.Equal("available", created.Status);
        Assert.True(created.WithMemory);
        var dup = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateSnapshotAsync(s.Id, new CreateSnapshotRequest("before", false)));
        Assert.Equal("snapshot_exists", dup.Code);
        var bad = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateSnapshotAsync(s.Id, new CreateSnapshotRequest("no spaces", false)));
        Assert.Equal(("validation_failed", 400), (bad.Code, bad.Status));
        Assert.Equal(["before"], (await C.ListSnapshotsAsync(s.Id)).Select(x => x.Name));
        await C.RevertSnapshotAsync(s.Id, "before");
        var missing = await Assert.ThrowsAsync<StratusApiException>(() => C.RevertSnapshotAsync(s.Id, "nope"));
        Assert.Equal(404, missing.Status);
        await C.DeleteSnapshotAsync(s.Id, "before");
        Assert.Empty(await C.ListSnapshotsAsync(s.Id));
        var actions = (await C.ListActionsAsync(s.Id)).Select(a => (a.Action, a.Result)).ToList();
        Assert.Contains(("snapshot", "success"), actions);
        Assert.Contains(("revert-snapshot", "success"), actions);
        Assert.Contains(("delete-snapshot", "success"), actions);
    }

    [Fact]
    public async Task Backup_Retention_Restore_CorruptRefusedAndStoreUnchanged()
    {
        var s = await ActiveAsync("bk-1");
        var first = await C.BackupServerAsync(s.Id, new CreateBackupRequest(2));
        Assert.Equal("available", first.Status);
        Assert.Equal("full", first.Kind);
        await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        var third = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        var backups = await C.ListBackupsAsync();
        Assert.Equal(2, backups.Count); // keep 2: the oldest was removed with its directory
        Assert.DoesNotContain(backups, b => b.Id == first.Id);
        Assert.False(Directory.Exists(Path.Combine(_cloud.DataDir, "backups", s.Id, first.Id)));

        var restored = await C.RestoreBackupAsync(third.Id, new RestoreBackupRequest("bk-restored", null, null));
        restored = await _cloud.WaitAsync(restored.Id, "active");
        Assert.Equal(s.FlavorId, restored.FlavorId);
        Assert.Contains(restored.Forwards, f => f.GuestPort == 80);
        Assert.Contains(await C.ListActionsAsync(restored.Id), a => a.Action == "restore" && a.Result == "success");

        var disk = Path.Combine(_cloud.DataDir, "backups", s.Id, third.Id, "disk.sim");
        var bytes = await File.ReadAllBytesAsync(disk);
        bytes[3] ^= 0x20;
        await File.WriteAllBytesAsync(disk, bytes);
        var before = await _cloud.Store.DumpAsync(CancellationToken.None);
        var corrupt = await Assert.ThrowsAsync<StratusApiException>(() => C.RestoreBackupAsync(third.Id, new RestoreBackupRequest("bk-bad", null, null)));
        Assert.Equal("backup_corrupt", corrupt.Code);
        Assert.Equal(before, await _cloud.Store.DumpAsync(CancellationToken.None));

        var unknown = await Assert.ThrowsAsync<StratusApiException>(() => C.RestoreBackupAsync(Guid.NewGuid().ToString(), new RestoreBackupRequest("x", null, null)));
        Assert.Equal(404, unknown.Status);
        var badKeep = await Assert.ThrowsAsync<StratusApiException>(() => C.BackupServerAsync(s.Id, new CreateBackupRequest(0)));
        Assert.Equal(("validation_failed", 400), (badKeep.Code, badKeep.Status));
    }
}
