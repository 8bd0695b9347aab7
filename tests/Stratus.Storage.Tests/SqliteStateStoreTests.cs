using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Storage;
using Stratus.Storage.Sqlite;
using Stratus.TestKit.Storage;

namespace Stratus.Storage.Tests;

/// <summary>The store conformance suite against the embedded SQLite store.</summary>
public sealed class SqliteStateStoreTests : StateStoreConformanceTests, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-sqlite-").FullName;

    protected override Task<IStateStore> CreateStoreAsync() =>
        Task.FromResult<IStateStore>(new SqliteStateStore(Path.Combine(_dir, "stratus.db")));

    [Fact]
    public async Task Migrate_NewFile_UsesWalJournal()
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_dir, "stratus.db")}");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task ReconcileUsage_InjectedDiscrepancies_FoundThenRepairedAtNow()
    {
        var store = Store;
        var t0 = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        var h = await store.RegisterHostAsync(new HostRegistrationRecord("h", ResourceVector.Of(8, 16384, 500), ResourceVector.Zero, AllocationRatios.Default, "default", "tcg", "simulated", 1), t0, default);
        var flavor = new Flavor(FlavorId.New(), "m1", 1, 512, 10, true, t0);
        await store.CreateFlavorAsync(flavor, default);
        var ids = new List<InstanceId>();
        foreach (var name in new[] { "lost", "wrong", "gone" })
        {
            var i = new Instance(InstanceId.New(), name, flavor.Id, ImageId.New(), null, VmState.Building, InstanceTask.Scheduling, PowerState.NoState,
                flavor.Resources, null, null, 0, 1, t0, t0, t0);
            await store.CreateInstanceAsync(i, new InstanceAction(0, i.Id, "create", "test", t0, null, "pending", null), default);
            var host = (await store.GetHostAsync(h.Id, default))!;
            Assert.Equal(CasOutcome.Ok, await store.ClaimAsync(i with { HostId = h.Id, Task = InstanceTask.Spawning }, h.Id, host.Generation, i.Resources, default));
            var placed = (await store.GetInstanceAsync(i.Id, default))!;
            Assert.Equal(CasOutcome.Ok, await store.UpdateInstanceAsync(placed with { VmState = VmState.Active, Task = null, UpdatedAt = t0.AddMinutes(1) }, null, default));
            ids.Add(i.Id);
        }
        var gone = (await store.GetInstanceAsync(ids[2], default))!;
        Assert.Equal(CasOutcome.Ok, await store.ReleaseAsync(gone with { VmState = VmState.Deleted, UpdatedAt = t0.AddMinutes(2) }, null, default));
        Assert.Empty(await store.ReconcileUsageAsync(t0.AddMinutes(3), false, default));

        // Damage the meter behind the store's back: lose one open interval, bill the wrong memory, re-open a deleted server's.
        await ExecAsync($"DELETE FROM usage_intervals WHERE instance_id='{ids[0]}'");
        await ExecAsync($"UPDATE usage_intervals SET mem_mib=4096 WHERE instance_id='{ids[1]}'");
        await ExecAsync($"UPDATE usage_intervals SET ended_at=NULL WHERE instance_id='{ids[2]}'");

        var before = await store.DumpAsync(default);
        var found = await store.ReconcileUsageAsync(t0.AddMinutes(10), false, default);
        Assert.Equal(new[] { (ids[0], UsageDiscrepancyKind.Missing), (ids[1], UsageDiscrepancyKind.Mismatch), (ids[2], UsageDiscrepancyKind.Orphan) }.OrderBy(x => x.Item1.Value),
            found.Select(d => (d.InstanceId, d.Kind)).OrderBy(x => x.Item1.Value));
        Assert.Equal(before, await store.DumpAsync(default)); // a check writes nothing

        Assert.Equal(3, (await store.ReconcileUsageAsync(t0.AddMinutes(10), true, default)).Count);
        Assert.Empty(await store.ReconcileUsageAsync(t0.AddMinutes(11), false, default));
        var repairedAt = t0.AddMinutes(10);
        Assert.Equal(repairedAt, (await store.ListServerUsageAsync(ids[0], default)).Single(u => u.End is null).Start);
        var wrong = await store.ListServerUsageAsync(ids[1], default);
        Assert.Equal(new[] { (4096L, (DateTimeOffset?)repairedAt), (512L, null) }, wrong.Select(u => (u.Resources.MemoryMib, u.End)));
        Assert.Equal(repairedAt, Assert.Single(await store.ListServerUsageAsync(ids[2], default)).End);
    }

    private async Task ExecAsync(string sql)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_dir, "stratus.db")}");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
