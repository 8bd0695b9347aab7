using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Client;
using Stratus.Compute.Simulated;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// The migration workflow end to end over the real gRPC stream, with three remote agents running
/// the simulated driver: live and cold moves, the ledger, refusals that change nothing, abort,
/// and maintenance. (Real VMs: Stratus.FunctionalTests.MigrationScenarioTests.)
/// </summary>
public sealed class MigrationApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 0, WaitReady = false };
    private readonly List<(AgentRuntime Agent, GrpcControllerClient Client, SimulatedDriver Driver)> _agents = [];

    private StratusClient C => _cloud.Client;

    public async Task InitializeAsync()
    {
        await _cloud.InitializeAsync();
        foreach (var name in new[] { "m-1", "m-2", "m-3" })
        {
            var token = (await C.IssueAgentTokenAsync(name)).Token;
            var dir = Path.Combine(_cloud.DataDir, "agents", name);
            var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "sim"), DelayScale = 0.02, Cores = 4, MemoryMib = 4096 });
            var client = new GrpcControllerClient(_cloud.AgentUrl, token, NullLogger.Instance);
            var agent = new AgentRuntime(new AgentOptions { HostName = name, StateDirectory = dir, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
                driver, client, NullLogger.Instance);
            client.Bind(agent);
            _agents.Add((agent, client, driver));
            await agent.StartAsync(CancellationToken.None);
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await C.HealthAsync()).HostsConnected < 3)
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(20);
        }
    }

    private async Task<ServerDto> ActiveAsync(string name)
    {
        var s = await C.CreateServerAsync(new CreateServerRequest(name, "tiny", "tiny", null, null, null, null));
        return await _cloud.WaitAsync(s.Id, "active");
    }

    private async Task<ServerDto> SettledAsync(string id, int timeoutMs = 20000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            var s = await C.GetServerAsync(id);
            if (s.Task is null)
            {
                return s;
            }
            Assert.True(DateTime.UtcNow < deadline, $"server {s.Name} still {s.Task}");
            await Task.Delay(20);
        }
    }

    /// <summary>Every host's used resources equal the sum of its servers' allocations plus migration claims held on it.</summary>
    private async Task AssertLedgerAsync()
    {
        var allocations = await _cloud.Store.ListAllocationsAsync(CancellationToken.None);
        var migrations = await _cloud.Store.ListMigrationsAsync(CancellationToken.None);
        foreach (var h in await _cloud.Store.ListHostsAsync(CancellationToken.None))
        {
            var mem = allocations.Where(a => a.HostId == h.Id).Sum(a => a.Resources.MemoryMib) + migrations.Where(m => m.Destination == h.Id).Sum(m => m.Resources.MemoryMib);
            Assert.Equal(mem, h.Used.MemoryMib);
        }
    }

    [Fact]
    public async Task LiveMigration_MovesServer_LedgerFollows_ActionLogged()
    {
        var s = await ActiveAsync("mv-live");
        var src = s.HostId!;
        var started = await C.MigrateServerAsync(s.Id, new MigrateRequest(null, true, 300, null, null, null));
        Assert.Equal("migrating", started.Task);
        Assert.Equal(src, started.HostId); // the host changes only once the VM runs on the destination
        Assert.NotNull(started.Migration);
        var moved = await SettledAsync(s.Id);
        Assert.NotEqual(src, moved.HostId);
        Assert.Equal("active", moved.VmState);
        Assert.Equal("running", moved.PowerState);
        var log = await C.ListActionsAsync(s.Id);
        Assert.Equal("success", log.Last(a => a.Action == "live-migrate").Result);
        await AssertLedgerAsync();
        // The VM exists on the destination's driver only.
        var holders = new List<string>();
        foreach (var (agent, _, driver) in _agents)
        {
            if ((await driver.ListAsync(CancellationToken.None)).Any(v => v.Id.ToString() == s.Id))
            {
                holders.Add(agent.HostId.ToString());
            }
        }
        Assert.Equal([moved.HostId!], holders);
    }

    [Fact]
    public async Task StoragePool_Refusals_And_LocalPoolServerMigrates()
    {
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(new CreateServerRequest("mv-pool-x", "tiny", "tiny", null, null, null, null) { StoragePool = "nfs" }));
        Assert.Equal(400, e.Status);
        // This test cloud has no shared pool: asking for it is refused, not silently changed.
        e = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(new CreateServerRequest("mv-pool-y", "tiny", "tiny", null, null, null, null) { StoragePool = "shared" }));
        Assert.Equal(400, e.Status);
        Assert.Contains("storage_pool", e.Message, StringComparison.Ordinal);
        var s = await C.CreateServerAsync(new CreateServerRequest("mv-pool-local", "tiny", "tiny", null, null, null, null) { StoragePool = "local" });
        s = await _cloud.WaitAsync(s.Id, "active");
        Assert.Equal("local", s.StoragePool);
        await C.MigrateServerAsync(s.Id, new MigrateRequest(null, true, null, null, null, null));
        var moved = await SettledAsync(s.Id);
        Assert.NotEqual(s.HostId, moved.HostId);
        Assert.Equal("local", moved.StoragePool);
    }

    [Fact]
    public async Task ColdMigration_StoppedServer_MovesAndStaysStopped()
    {
        var s = await ActiveAsync("mv-cold");
        await C.ActAsync(s.Id, "stop");
        await _cloud.WaitAsync(s.Id, "stopped");
        var dest = (await C.ListHostsAsync()).First(h => h.Id != s.HostId);
        await C.MigrateServerAsync(s.Id, new MigrateRequest(dest.Name, null, null, null, null, null));
        var moved = await SettledAsync(s.Id);
        Assert.Equal(dest.Id, moved.HostId);
        Assert.Equal("stopped", moved.VmState);
        await C.ActAsync(s.Id, "start");
        var started = await _cloud.WaitAsync(s.Id, "active");
        Assert.Equal(dest.Id, started.HostId);
        await AssertLedgerAsync();
    }

    [Fact]
    public async Task BadMigrations_Refused_StoreUnchanged()
    {
        var s = await ActiveAsync("mv-bad");
        var dump = await _cloud.Store.DumpAsync(CancellationToken.None);
        async Task Refused(int status, string code, Func<Task> call)
        {
            var e = await Assert.ThrowsAsync<StratusApiException>(call);
            Assert.Equal(status, e.Status);
            Assert.Equal(code, e.Code);
            Assert.Equal(dump, await _cloud.Store.DumpAsync(CancellationToken.None));
        }
        await Refused(404, "not_found", () => C.MigrateServerAsync("no-such-server", new MigrateRequest(null, null, null, null, null, null)));
        await Refused(404, "not_found", () => C.MigrateServerAsync(s.Id, new MigrateRequest("no-such-host", null, null, null, null, null)));
        await Refused(409, "same_host", () => C.MigrateServerAsync(s.Id, new MigrateRequest(s.HostId, null, null, null, null, null)));
        await Refused(409, "invalid_state", () => C.MigrateServerAsync(s.Id, new MigrateRequest(null, false, null, null, null, null)));
        await Refused(400, "validation_failed", () => C.MigrateServerAsync(s.Id, new MigrateRequest(null, null, 0, null, null, -5)));
        await Refused(409, "not_migrating", () => C.AbortMigrationAsync(s.Id));
        var full = (await C.ListHostsAsync()).First(h => h.Id != s.HostId);
        // A destination without room explains why.
        var big = await C.CreateFlavorAsync(new CreateFlavorRequest("mv-huge", 4, 3500, 1, null));
        var huge = await C.CreateServerAsync(new CreateServerRequest("mv-huge-1", big.Name, "tiny", null, null, null, null));
        var placed = await _cloud.WaitAsync(huge.Id, "active");
        var others = (await C.ListHostsAsync()).Where(h => h.Id != placed.HostId).ToList();
        dump = await _cloud.Store.DumpAsync(CancellationToken.None);
        foreach (var h in others.Where(h => h.Capacity.RamMib - h.Used.RamMib < 3500))
        {
            await Refused(409, "no_valid_host", () => C.MigrateServerAsync(huge.Id, new MigrateRequest(h.Name, null, null, null, null, null)));
        }
        Assert.NotNull(full);
    }

    [Fact]
    public async Task Abort_RollsBack_ServerStaysOnSource()
    {
        var s = await ActiveAsync("mv-abort");
        // 1 MiB/s for a 256 MiB guest: the simulated migration cannot finish before the abort.
        await C.MigrateServerAsync(s.Id, new MigrateRequest(null, true, null, null, null, 1));
        await Task.Delay(100);
        await C.AbortMigrationAsync(s.Id);
        var after = await SettledAsync(s.Id);
        Assert.Equal(s.HostId, after.HostId);
        Assert.Equal("active", after.VmState);
        var last = (await C.ListActionsAsync(s.Id)).Last(a => a.Action == "live-migrate");
        Assert.Equal("error", last.Result);
        Assert.Contains("aborted", last.Message, StringComparison.Ordinal);
        await AssertLedgerAsync();
    }

    [Fact]
    public async Task Maintenance_EvacuatesEveryServer_NothingNewLandsThere_EnableReturnsIt()
    {
        var servers = new List<ServerDto>();
        for (var i = 0; i < 6; i++)
        {
            servers.Add(await ActiveAsync($"mv-maint-{i}"));
        }
        var target = servers.GroupBy(s => s.HostId).OrderByDescending(g => g.Count()).First().Key!;
        var h = await C.MaintenanceAsync(target);
        Assert.Equal("maintenance", h.State);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await C.GetHostAsync(target)).Servers > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the host was not evacuated");
            await Task.Delay(50);
        }
        foreach (var s in servers)
        {
            var now = await SettledAsync(s.Id);
            Assert.NotEqual(target, now.HostId);
            Assert.Equal("active", now.VmState);
        }
        var late = await ActiveAsync("mv-maint-late");
        Assert.NotEqual(target, late.HostId);
        Assert.Equal("up", (await C.EnableHostAsync(target)).State);
        await AssertLedgerAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var (agent, client, driver) in _agents)
        {
            await client.DisposeAsync();
            await agent.DisposeAsync();
            await driver.DisposeAsync();
        }
        await _cloud.DisposeAsync();
    }
}
