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

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
