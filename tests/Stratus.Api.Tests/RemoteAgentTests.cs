using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Compute.Simulated;
using Stratus.Core.Wire;
using Stratus.Protocol;

namespace Stratus.Api.Tests;

/// <summary>Agents over the real gRPC stream (TCP and unix socket) against an in-process controller with no embedded hosts.</summary>
public sealed class RemoteAgentTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 0, WaitReady = false };
    private readonly List<(AgentRuntime Agent, GrpcControllerClient Client, SimulatedDriver Driver)> _agents = [];

    public Task InitializeAsync() => _cloud.InitializeAsync();

    private async Task<(AgentRuntime Agent, GrpcControllerClient Client, SimulatedDriver Driver)> StartAgentAsync(string name, string? token = null, string? controller = null)
    {
        token ??= (await _cloud.Client.IssueAgentTokenAsync(name)).Token;
        var dir = Path.Combine(_cloud.DataDir, "agents", name);
        var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "sim"), DelayScale = 0.02 });
        var client = new GrpcControllerClient(controller ?? _cloud.AgentUrl, token, NullLogger.Instance);
        var agent = new AgentRuntime(new AgentOptions { HostName = name, StateDirectory = dir, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
            driver, client, NullLogger.Instance);
        client.Bind(agent);
        var entry = (agent, client, driver);
        _agents.Add(entry);
        await agent.StartAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        return entry;
    }

    private async Task<HealthDto> WaitConnectedAsync(int n)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var h = await _cloud.Client.HealthAsync();
            if (h.HostsConnected == n)
            {
                return h;
            }
            Assert.True(DateTime.UtcNow < deadline, $"expected {n} connected agents, have {h.HostsConnected}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task TwoRemoteAgents_OverTcpAndUnixSocket_RegisterAndRunServers()
    {
        var health = await _cloud.Client.HealthAsync();
        Assert.Equal(_cloud.AgentUrl, health.AgentEndpoint);
        Assert.NotNull(health.AgentSocket);
        await StartAgentAsync("remote-a");
        await StartAgentAsync("remote-b", controller: "unix:" + health.AgentSocket);
        await WaitConnectedAsync(2);

        var hosts = await _cloud.Client.ListHostsAsync();
        Assert.Equal(["remote-a", "remote-b"], hosts.Select(h => h.Name).Order().ToArray());
        Assert.All(hosts, h => Assert.Equal(Environment.ProcessId, h.AgentPid));
        Assert.All(hosts, h => Assert.Equal("sim", h.Accelerator));
        Assert.All(hosts, h => Assert.True(h.Total.Vcpus > 0));

        var s = await _cloud.Client.CreateServerAsync(new CreateServerRequest("over-grpc", "tiny", "tiny", null, null, null, null));
        var active = await _cloud.WaitAsync(s.Id, "active");
        Assert.Contains(active.HostId, hosts.Select(h => h.Id));
        // Request/reply over the stream: the console comes from the remote agent's driver.
        var console = await _cloud.Client.ConsoleAsync(s.Id);
        Assert.Equal(s.Id, console.ServerId);

        await _cloud.Client.ActAsync(s.Id, "stop");
        await _cloud.WaitAsync(s.Id, "stopped");
        await _cloud.Client.ActAsync(s.Id, "start");
        await _cloud.WaitAsync(s.Id, "active");
    }

    [Fact]
    public async Task BadToken_IsRefused_AndRegistersNothing()
    {
        await _cloud.Client.IssueAgentTokenAsync("honest");
        var e = await Assert.ThrowsAsync<AgentRequestException>(() => StartAgentAsync("honest", token: "sat_not-the-token"));
        Assert.Equal("agent_refused", e.Code);
        // A valid token of another host does not let an agent register this one.
        var other = (await _cloud.Client.IssueAgentTokenAsync("other")).Token;
        await Assert.ThrowsAsync<AgentRequestException>(() => StartAgentAsync("honest", token: other));
        Assert.Empty(await _cloud.Client.ListHostsAsync());
    }

    [Fact]
    public async Task DroppedStream_Reconnects_AndVmsKeepRunning()
    {
        var (_, client, driver) = await StartAgentAsync("flaky");
        await WaitConnectedAsync(1);
        var s = await _cloud.Client.CreateServerAsync(new CreateServerRequest("survivor", "tiny", "tiny", null, null, null, null));
        await _cloud.WaitAsync(s.Id, "active");
        var before = Assert.Single(await driver.ListAsync(CancellationToken.None));

        client.DropConnection();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (client.Connections < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the agent did not reconnect");
            await Task.Delay(20);
        }
        await WaitConnectedAsync(1);
        await Task.Delay(600); // a few heartbeats after the reconnect
        var after = Assert.Single(await driver.ListAsync(CancellationToken.None));
        Assert.Equal(before.Pid, after.Pid);
        Assert.Equal("running", after.Power.ToString().ToLowerInvariant());
        var server = await _cloud.Client.GetServerAsync(s.Id);
        Assert.Equal("active", server.VmState);
        Assert.Null(server.Task);
        var actions = await _cloud.Client.ListActionsAsync(s.Id);
        Assert.Single(actions); // nothing was restarted or re-created
    }

    [Fact]
    public async Task HollowHosts_OneChannel_AllRegisterAndKeepHeartbeating()
    {
        const int n = 100; // bench/hollow-fleet.sh runs 500 in a real process and measures the controller's CPU
        using var channel = GrpcControllerClient.CreateChannel(_cloud.AgentUrl);
        var hollow = new List<(AgentRuntime Agent, GrpcControllerClient Client, SimulatedDriver Driver)>();
        try
        {
            for (var i = 1; i <= n; i++)
            {
                var name = $"hollow-{i}";
                var token = (await _cloud.Client.IssueAgentTokenAsync(name)).Token;
                var dir = Path.Combine(_cloud.DataDir, "hollow", name);
                var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = dir, DelayScale = 0 });
                var client = new GrpcControllerClient(channel, token, NullLogger.Instance);
                var agent = new AgentRuntime(new AgentOptions { HostName = name, StateDirectory = dir, HeartbeatInterval = TimeSpan.FromMilliseconds(500) },
                    driver, client, NullLogger.Instance);
                client.Bind(agent);
                hollow.Add((agent, client, driver));
            }
            await Task.WhenAll(hollow.Select(h => h.Agent.StartAsync(CancellationToken.None))).WaitAsync(TimeSpan.FromSeconds(30));
            await WaitConnectedAsync(n);
            var started = DateTimeOffset.UtcNow;
            await Task.Delay(1500);
            var hosts = await _cloud.Client.ListHostsAsync();
            Assert.Equal(n, hosts.Count);
            // Every host heartbeated after the measurement started: they stay up, not just register.
            Assert.All(hosts, h => Assert.True(h.LastHeartbeat > started, $"{h.Name} last heartbeat {h.LastHeartbeat} before {started}"));
            Assert.All(hollow, h => Assert.Equal(1, h.Client.Connections));
        }
        finally
        {
            foreach (var (agent, client, driver) in hollow)
            {
                await client.DisposeAsync();
                await agent.DisposeAsync();
                await driver.DisposeAsync();
            }
        }
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
