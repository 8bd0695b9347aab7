using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Client;
using Stratus.Compute.Simulated;
using Stratus.Controller.Consolidation;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// The controller's consolidation loop end to end: three remote agents (simulated driver) over gRPC, load skewed
/// with load.json so one host's servers are nearly idle; the loop (1 s interval) migrates them away, puts the empty
/// host in standby through the power driver, and the scheduler wakes it when a new server needs its room.
/// </summary>
public sealed class ConsolidationApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new()
    {
        Hosts = 0,
        WaitReady = false,
        Configure = o => o.Consolidation = o.Consolidation with
        {
            Enabled = true,
            Interval = TimeSpan.FromSeconds(1),
            MetricsWindow = TimeSpan.FromSeconds(2),
            Lower = 0.1, // only hosts under 10 % CPU are evacuated: the light one, never the busy ones
            StandbyGrace = TimeSpan.FromSeconds(1),
            WakeSettle = TimeSpan.FromSeconds(2),
            PlanTimeout = TimeSpan.FromSeconds(30),
            PowerDriver = "simulated",
        },
    };

    private readonly List<(AgentRuntime Agent, GrpcControllerClient Client, SimulatedDriver Driver)> _agents = [];

    private StratusClient C => _cloud.Client;

    public async Task InitializeAsync()
    {
        await _cloud.InitializeAsync();
        await C.PauseConsolidationAsync(); // empty hosts must not go to standby before the servers exist
        foreach (var name in new[] { "c-1", "c-2", "c-3" })
        {
            var token = (await C.IssueAgentTokenAsync(name)).Token;
            var dir = Path.Combine(_cloud.DataDir, "agents", name);
            var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "sim"), DelayScale = 0.02, Cores = 4, MemoryMib = 4096 });
            var client = new GrpcControllerClient(_cloud.AgentUrl, token, NullLogger.Instance);
            var agent = new AgentRuntime(new AgentOptions
            {
                HostName = name,
                StateDirectory = dir,
                HeartbeatInterval = TimeSpan.FromMilliseconds(200),
                MetricsInterval = TimeSpan.FromMilliseconds(200),
            }, driver, client, NullLogger.Instance);
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

    private async Task WriteLoadAsync(IReadOnlyDictionary<string, double> load)
    {
        foreach (var (_, _, driver) in _agents)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(driver.LoadFile)!);
            await File.WriteAllTextAsync(driver.LoadFile, JsonSerializer.Serialize(load));
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, int timeoutMs = 30000)
        where T : class
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            if (await probe() is { } done)
            {
                return done;
            }
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Loop_SkewedLoad_EvacuatesLightHost_StandbyThenWokenForNewServer()
    {
        var names = Enumerable.Range(0, 6).Select(i => $"cons-{i}").ToList();
        await WriteLoadAsync(names.ToDictionary(n => n, _ => 80.0));
        var servers = new List<ServerDto>();
        foreach (var n in names)
        {
            var s = await C.CreateServerAsync(new CreateServerRequest(n, "tiny", "tiny", null, null, null, null));
            servers.Add(await _cloud.WaitAsync(s.Id, "active"));
        }
        var byHost = servers.GroupBy(s => s.HostId!).ToList();
        Assert.Equal(3, byHost.Count); // spread placement: two per host
        var light = byHost.OrderBy(g => g.Key, StringComparer.Ordinal).First();
        var lightName = (await C.GetHostAsync(light.Key)).Name;
        await WriteLoadAsync(names.ToDictionary(n => n, n => light.Any(s => s.Name == n) ? 2.0 : 80.0));
        await Task.Delay(2500); // one metrics window of the new load
        await C.ResumeConsolidationAsync();

        // 1. The light host's servers move away and it goes to standby through the power driver.
        var standby = await EventuallyAsync(async () => (await C.GetHostAsync(light.Key)) is { State: "standby" } h ? h : null, "the light host in standby");
        Assert.Equal(0, standby.Servers);
        var power = (SimulatedPowerDriver)_cloud.Services.GetRequiredService<IPowerDriver>();
        // The host is marked standby first (nothing lands on it meanwhile), then powered off: the call follows shortly.
        await EventuallyAsync(async () => await Task.FromResult(power.Calls.FirstOrDefault(c => c.Host == lightName && c.Action == "off")), "the power-off call", 5000);
        foreach (var s in servers)
        {
            var now = await C.GetServerAsync(s.Id);
            Assert.Equal("active", now.VmState);
            Assert.NotEqual(light.Key, now.HostId);
            if (light.Any(l => l.Id == s.Id))
            {
                Assert.Equal("success", (await C.ListActionsAsync(s.Id)).Last(a => a.Action == "live-migrate").Result);
            }
            else
            {
                Assert.Equal(s.HostId, now.HostId); // busy servers stayed where they were
            }
        }
        Assert.All((await C.ListHostsAsync()).Where(h => h.Id != light.Key), h => Assert.Equal("up", h.State));
        var status = await C.ConsolidationAsync();
        Assert.True(status.Enabled);
        Assert.Equal([lightName], status.Standby);
        Assert.Contains(status.Passes, p => p.Trigger == "interval" && p.Finished == 2 && p.Failed == 0);
        Assert.Contains(status.Passes, p => p.HostsToStandby.Contains(lightName));

        // 2. A server that fits only on an empty host wakes the standby host and lands there.
        var hosts = await C.ListHostsAsync();
        var ram = hosts.Where(h => h.State == "up").Max(h => h.Capacity.RamMib - h.Used.RamMib) + 128; // fits no up host
        Assert.True(ram <= hosts.Single(h => h.Id == light.Key).Capacity.RamMib);
        await C.CreateFlavorAsync(new CreateFlavorRequest("cons-big", 1, ram, 1, null));
        var big = await C.CreateServerAsync(new CreateServerRequest("cons-big-1", "cons-big", "tiny", null, null, null, null));
        var placed = await _cloud.WaitAsync(big.Id, "active", 30000);
        Assert.Equal(light.Key, placed.HostId);
        Assert.Equal("up", (await C.GetHostAsync(light.Key)).State);
        Assert.Contains(power.Calls, c => c.Host == lightName && c.Action == "on");
        Assert.True(power.Calls.ToList().FindLastIndex(c => c.Action == "on") > power.Calls.ToList().FindIndex(c => c.Action == "off"));
        status = await C.ConsolidationAsync();
        Assert.Contains(status.Passes, p => p.Trigger == "capacity" && p.HostsWoken.Contains(lightName));
        Assert.Empty(status.Standby);

        // 3. The day's energy report sees the standby time.
        var energy = await C.EnergyReportAsync();
        var row = Assert.Single(energy.Hosts, h => h.Name == lightName);
        Assert.True(row.StandbyHours > 0);
        Assert.True(energy.TotalKwh > 0);
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
