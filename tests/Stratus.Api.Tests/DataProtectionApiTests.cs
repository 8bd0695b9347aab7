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

    private string BackupDir(ServerDto s, BackupDto b) => Path.Combine(_cloud.DataDir, "backups", s.Id, b.Id);

    private async Task<Dictionary<string, BackupDto>> BackupsAsync(ServerDto s) => (await C.ListBackupsAsync(s.Id)).ToDictionary(b => b.Id);

    [Fact]
    public async Task Backup_FullThenIncrementals_FullEveryStartsNewChain_RetentionKeepsParentsUntilDependantsGo_RestoreFromIncremental()
    {
        var s = await ActiveAsync("bk-1");
        var policy = await C.GetBackupPolicyAsync(s.Id);
        Assert.Equal((7, null, true), (policy.Keep, policy.FullEvery, policy.IsDefault));

        var b1 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(2)); // keep 2 → full every 2
        Assert.Equal(("full", null, null, 1, "ok"), (b1.Kind, b1.ParentId, b1.FullReason, b1.ChainLength, b1.Verified));
        var b2 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal(("incremental", b1.Id, 2), (b2.Kind, b2.ParentId, b2.ChainLength));
        Assert.True(b2.SizeBytes * 10 < b1.SizeBytes, $"incremental {b2.SizeBytes} bytes, full {b1.SizeBytes}");
        var b3 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal(("full", null), (b3.Kind, b3.ParentId));
        Assert.Contains("a full backup at least every 2", b3.FullReason, StringComparison.Ordinal);

        // Keep 2 (b2, b3): b1 is beyond it, but b2 builds on it: expired, files kept, not restorable.
        var list = await BackupsAsync(s);
        Assert.Equal(["available", "available", "expired"], new[] { list[b2.Id].Status, list[b3.Id].Status, list[b1.Id].Status });
        Assert.Contains("keep count (2)", list[b1.Id].ExpiredReason, StringComparison.Ordinal);
        Assert.True(Directory.Exists(BackupDir(s, b1)));
        var expired = await Assert.ThrowsAsync<StratusApiException>(() => C.RestoreBackupAsync(b1.Id, new RestoreBackupRequest("bk-x", null, null)));
        Assert.Equal(("backup_expired", 409), (expired.Code, expired.Status));

        // b4 builds on b3; keep 2 (b3, b4): b2 expires and, needed by nothing, goes — and then so does b1.
        var b4 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal(("incremental", b3.Id), (b4.Kind, b4.ParentId));
        list = await BackupsAsync(s);
        Assert.Equal(new[] { b3.Id, b4.Id }.Order(), list.Keys.Order());
        Assert.False(Directory.Exists(BackupDir(s, b1)));
        Assert.False(Directory.Exists(BackupDir(s, b2)));

        // The incremental restores: both links verified and copied, each in a directory of its own.
        var restored = await _cloud.WaitAsync((await C.RestoreBackupAsync(b4.Id, new RestoreBackupRequest("bk-restored", null, null))).Id, "active");
        Assert.Equal(s.FlavorId, restored.FlavorId);
        Assert.Contains(restored.Forwards, f => f.GuestPort == 80);
        Assert.Contains(await C.ListActionsAsync(restored.Id), a => a.Action == "restore" && a.Result == "success" && a.Message!.Contains("2 link(s)", StringComparison.Ordinal));
        var image = Directory.GetDirectories(Path.Combine(_cloud.DataDir, "images"), "restored-*").Single();
        Assert.Equal(new[] { b3.Id, b4.Id }.Order(), Directory.GetDirectories(image).Select(Path.GetFileName).Order());

        // --full starts a chain whatever the policy; "incremental" builds on the newest whatever the chain length.
        var b5 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null, "full"));
        Assert.Equal(("full", null), (b5.Kind, b5.FullReason));
        var b6 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null, "incremental"));
        var b7 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null, "incremental"));
        Assert.Equal(("incremental", b6.Id, 3), (b7.Kind, b7.ParentId, b7.ChainLength));

        // The policy endpoint applies retention at once: keep 1 leaves b7 and the links it needs.
        var set = await C.SetBackupPolicyAsync(s.Id, new BackupPolicyDto(1, 5));
        Assert.Equal((1, 5, false), (set.Keep, set.FullEvery, set.IsDefault));
        list = await BackupsAsync(s);
        Assert.Equal(3, list.Count);
        Assert.Equal(["expired", "expired", "available"], new[] { list[b5.Id].Status, list[b6.Id].Status, list[b7.Id].Status });
        var actions = await C.ListActionsAsync(s.Id);
        Assert.Contains(actions, a => a.Action == "backup-policy" && a.Message!.Contains("keep 1, full every 5", StringComparison.Ordinal));
        Assert.Contains(actions, a => a.Action == "backup" && a.Message!.Contains("incremental backup", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Validation_EveryErrorAtOnce_AndNothingChanges()
    {
        var s = await ActiveAsync("bk-v");
        var before = await _cloud.Store.DumpAsync(CancellationToken.None);
        var bad = await Assert.ThrowsAsync<StratusApiException>(() => C.BackupServerAsync(s.Id, new CreateBackupRequest(0, "sometimes")));
        Assert.Equal(("validation_failed", 400), (bad.Code, bad.Status));
        Assert.Equal(["keep", "mode"], bad.Problem!.Errors!.Select(e => e.Field).Order());
        var badPolicy = await Assert.ThrowsAsync<StratusApiException>(() => C.SetBackupPolicyAsync(s.Id, new BackupPolicyDto(1001, -1)));
        Assert.Equal(["full_every", "keep"], badPolicy.Problem!.Errors!.Select(e => e.Field).Order());
        var empty = await Assert.ThrowsAsync<StratusApiException>(() => C.SetBackupPolicyAsync(s.Id, new BackupPolicyDto(null, null)));
        Assert.Equal(400, empty.Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<StratusApiException>(() => C.RestoreBackupAsync(Guid.NewGuid().ToString(), new RestoreBackupRequest("x", null, null)))).Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<StratusApiException>(() => C.DeleteBackupAsync(Guid.NewGuid().ToString()))).Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<StratusApiException>(() => C.VerifyBackupAsync("not-a-guid"))).Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<StratusApiException>(() => C.ListBackupsAsync("no-such-server"))).Status);
        Assert.Equal(before, await _cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Delete_RevertAndCorruption_ChainRules()
    {
        var s = await ActiveAsync("bk-2");
        await C.SetBackupPolicyAsync(s.Id, new BackupPolicyDto(10, null));
        var b1 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        var b2 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        var b3 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal((b1.Id, b2.Id), (b2.ParentId, b3.ParentId));

        // Deleting a backup an incremental builds on expires it; the newer incremental still restores through it.
        var kept = await C.DeleteBackupAsync(b2.Id);
        Assert.Equal("expired", kept!.Status);
        Assert.Contains("deleted by request", kept.ExpiredReason, StringComparison.Ordinal);
        Assert.Equal(("backup_expired", 409), await CodeAsync(() => C.RestoreBackupAsync(b2.Id, new RestoreBackupRequest("bk-x", null, null))));
        var verified = await C.VerifyBackupAsync(b3.Id);
        Assert.True(verified.Ok, string.Join("; ", verified.Problems));
        Assert.Equal([b1.Id, b2.Id, b3.Id], verified.Chain);

        // One flipped byte in the full backup: the incremental's restore is refused, naming that link; nothing changes.
        var disk = Path.Combine(BackupDir(s, b1), "disk.sim");
        var bytes = await File.ReadAllBytesAsync(disk);
        bytes[3] ^= 0x20;
        await File.WriteAllBytesAsync(disk, bytes);
        var before = await _cloud.Store.DumpAsync(CancellationToken.None);
        var corrupt = await Assert.ThrowsAsync<StratusApiException>(() => C.RestoreBackupAsync(b3.Id, new RestoreBackupRequest("bk-bad", null, null)));
        Assert.Equal(("backup_corrupt", 422), (corrupt.Code, corrupt.Status));
        Assert.Contains($"link 1 of 3 (backup {b1.Id}, full", corrupt.Message, StringComparison.Ordinal);
        Assert.Contains("disk.sim has SHA-256", corrupt.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(b3.Id + ",", corrupt.Message, StringComparison.Ordinal); // the intact links are not blamed
        Assert.Equal(before, await _cloud.Store.DumpAsync(CancellationToken.None));
        Assert.Empty(Directory.Exists(Path.Combine(_cloud.DataDir, "images")) ? Directory.GetDirectories(Path.Combine(_cloud.DataDir, "images"), "restored-*") : []);

        // verify records the outcome on every link; list shows it.
        var check = await C.VerifyBackupAsync(b3.Id);
        Assert.False(check.Ok);
        Assert.Contains(b1.Id, Assert.Single(check.Problems), StringComparison.Ordinal);
        var list = await BackupsAsync(s);
        Assert.Equal(["corrupt", "ok", "ok"], new[] { list[b1.Id].Verified, list[b2.Id].Verified, list[b3.Id].Verified });
        Assert.Contains("disk.sim", list[b1.Id].VerifyError, StringComparison.Ordinal);

        // Deleting the newest removes it, and with it the expired b2 nothing needs any more; b1 stays.
        Assert.Null(await C.DeleteBackupAsync(b3.Id));
        list = await BackupsAsync(s);
        Assert.Equal([b1.Id], list.Keys);
        Assert.False(Directory.Exists(BackupDir(s, b2)));

        // A snapshot revert breaks the chain: the next backup is full and says why.
        await C.DeleteBackupAsync(b1.Id);
        var c1 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal(("full", null), (c1.Kind, c1.FullReason)); // the first of a server: full, nothing to explain
        await C.CreateSnapshotAsync(s.Id, new CreateSnapshotRequest("s1", false));
        await C.RevertSnapshotAsync(s.Id, "s1");
        var c2 = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null));
        Assert.Equal("full", c2.Kind);
        Assert.Contains("reverted to snapshot 's1'", c2.FullReason, StringComparison.Ordinal);
        Assert.Contains(await C.ListActionsAsync(s.Id), a => a.Action == "backup" && a.Message!.Contains("not incremental: the disk was reverted", StringComparison.Ordinal));
        var explicitInc = await C.BackupServerAsync(s.Id, new CreateBackupRequest(null, "incremental"));
        Assert.Equal(("incremental", c2.Id), (explicitInc.Kind, explicitInc.ParentId));
    }

    private static async Task<(string Code, int Status)> CodeAsync(Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<StratusApiException>(call);
        return (e.Code, e.Status);
    }
}
