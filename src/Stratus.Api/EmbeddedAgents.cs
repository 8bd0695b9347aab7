using Stratus.Agent;
using Stratus.Compute;
using Stratus.Compute.Qemu;
using Stratus.Compute.Simulated;
using Stratus.Controller;

namespace Stratus.Api;

/// <summary>
/// All-in-one mode: the hosts' agents run inside the controller process and speak the same
/// protocol interfaces in-process. Stopping them stops their VMs (as `stratus down` must) without
/// touching desired state, so the next start brings every server back as it was.
/// </summary>
public sealed class EmbeddedAgents(StratusdOptions options, AgentHub hub, ILoggerFactory loggers) : IHostedService
{
    private readonly List<(AgentRuntime Agent, IComputeDriver Driver)> _agents = [];

    public IReadOnlyList<AgentRuntime> Agents => _agents.Select(a => a.Agent).ToList();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        for (var i = 1; i <= options.Hosts; i++)
        {
            var name = $"host-{i}";
            var dir = Path.Combine(options.DataDir, "hosts", name);
            IComputeDriver driver = options.Driver switch
            {
                "simulated" => new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "simulated"), DelayScale = options.SimDelayScale, Seed = i }),
                "qemu" => new QemuDriver(new QemuDriverOptions { DataDirectory = Path.Combine(dir, "qemu"), SharedPoolDirectory = options.SharedPool, CgroupParent = options.Hosts > 1 ? "stratus-" + name : "stratus" }, loggers.CreateLogger<QemuDriver>()),
                _ => throw new InvalidOperationException($"driver '{options.Driver}' is not available in this build"),
            };
            var agent = new AgentRuntime(new AgentOptions { HostName = name, StateDirectory = dir, StoragePools = options.SharedPool is null ? ["local"] : ["local", "shared"], MetricsInterval = options.MetricsInterval }, driver, hub, loggers.CreateLogger($"Stratus.Agent.{name}"));
            await agent.StartAsync(cancellationToken);
            hub.Attach(agent);
            _agents.Add((agent, driver));
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Stop reporting first, so stopping the VMs is never mistaken for guests shutting down.
        foreach (var (agent, _) in _agents)
        {
            hub.Detach(agent.HostId);
            await agent.DisposeAsync();
        }
        await Task.WhenAll(_agents.Select(a => a.Driver.ShutdownAllAsync(TimeSpan.FromSeconds(10), cancellationToken)));
        foreach (var (_, driver) in _agents)
        {
            await driver.DisposeAsync();
        }
        _agents.Clear();
    }
}
