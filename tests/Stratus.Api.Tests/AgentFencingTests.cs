using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Compute.Simulated;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Api.Tests;

/// <summary>
/// The agent's self-fencing against the controller's storage heartbeat (SHARED/.ha/controller.hb): a lease that lapses
/// while no controller runs fences nothing; one that lapses while the controller runs (or one lease period after it came
/// back) fences, and the fenced VM is reported as fenced — not as a guest that shut itself down — until it runs again.
/// A simulated driver and a controller endpoint that only records reports; short timings.
/// </summary>
public sealed class AgentFencingTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-fence-").FullName;
    private readonly Recorder _controller = new();
    private readonly InstanceId _vm = InstanceId.New();
    private SimulatedDriver _driver = null!;
    private AgentRuntime _agent = null!;
    private readonly CancellationTokenSource _stopBeat = new();
    private Task _beat = Task.CompletedTask;

    private string Shared => Path.Combine(_dir, "shared");

    private string ControllerBeat => Path.Combine(Shared, ".ha", "controller.hb");

    private sealed class Recorder : IControllerEndpoint
    {
        public HostId Host { get; } = HostId.New();

        public volatile HostReport? Last;

        public Task<(HostId HostId, long Epoch)> RegisterAsync(HostRegistration registration, CancellationToken cancellationToken) => Task.FromResult((Host, 1L));

        public Task ReportAsync(HostReport report, CancellationToken cancellationToken)
        {
            Last = report;
            return Task.CompletedTask;
        }

        public Task ReportMetricsAsync(HostMetricsReport report, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private DesiredHostState Desired => new(_controller.Host, 1,
        [new DesiredVm(_vm, "ha", 1, 128, 1, null, null, null, [], [], DesiredPower.Running, 0, false, "shared", Ha: true)]);

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(ControllerBeat)!);
        await File.WriteAllTextAsync(ControllerBeat, "0");
        _driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(_dir, "sim"), DelayScale = 0 });
        _agent = new AgentRuntime(new AgentOptions
        {
            HostName = "h1",
            StateDirectory = Path.Combine(_dir, "agent"),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
            SharedPoolDirectory = Shared,
            StoragePools = ["local", "shared"],
            ControllerAwayAfter = TimeSpan.FromMilliseconds(300),
        }, _driver, _controller, NullLogger.Instance);
        await _agent.StartAsync(default);
        await _agent.PushAsync(Desired, default);
        await WaitAsync(async () => await PowerAsync() == PowerState.Running, "the HA VM running");
    }

    private async Task<PowerState?> PowerAsync() => (await _driver.GetStatusAsync(_vm, default))?.Power;

    private static async Task WaitAsync(Func<Task<bool>> done, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!await done())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"{what} did not happen within 10 s");
            await Task.Delay(20);
        }
    }

    private ActualVm? Reported() => _controller.Last?.Vms.FirstOrDefault(v => v.Id == _vm);

    /// <summary>The controller runs: its heartbeat moves every 100 ms.</summary>
    private void ControllerRuns() => _beat = Task.Run(async () =>
    {
        for (var n = 1; !_stopBeat.IsCancellationRequested; n++)
        {
            await File.WriteAllTextAsync(ControllerBeat, n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await Task.Delay(100);
        }
    });

    [Fact]
    public async Task Lease_LapsesWhileControllerDown_NoFenceUntilALeasePeriodAfterItIsBack()
    {
        await _agent.RenewLeaseAsync(1, TimeSpan.FromMilliseconds(500), default);
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // the lease lapsed 1 s ago; the controller's heartbeat stood still throughout
        Assert.False(_agent.Fenced);
        Assert.Equal(PowerState.Running, await PowerAsync());
        Assert.False(File.Exists(Path.Combine(Shared, ".ha", "h1.fenced")));

        var back = Stopwatch.StartNew();
        ControllerRuns(); // the controller is back, but this agent does not reconnect
        await WaitAsync(() => Task.FromResult(_agent.Fenced), "fencing after the controller came back");
        Assert.True(back.Elapsed >= TimeSpan.FromMilliseconds(400), $"fenced {back.ElapsedMilliseconds} ms after the controller came back, within one lease period (500 ms)");
        // Fenced is set first; the VM is killed and the fence record written just after.
        await WaitAsync(async () => await PowerAsync() != PowerState.Running && File.Exists(Path.Combine(Shared, ".ha", "h1.fenced")),
            "the VM killed and the fence record written");
    }

    [Fact]
    public async Task Lease_LapsesWhileControllerRuns_FencesAndReportsTheVmFencedUntilItRunsAgain()
    {
        ControllerRuns();
        await _agent.RenewLeaseAsync(1, TimeSpan.FromMilliseconds(300), default);
        await WaitAsync(() => Task.FromResult(_agent.Fenced), "fencing");
        await WaitAsync(() => Task.FromResult(Reported() is { Exists: true, Fenced: true } r && r.Power != PowerState.Running), "a report of the VM as fenced");

        // Reconnected: the lease is renewed and the next desired state still lists the VM, which runs again here.
        await _agent.RenewLeaseAsync(1, TimeSpan.FromSeconds(30), default);
        await _agent.PushAsync(Desired, default);
        await WaitAsync(async () => await PowerAsync() == PowerState.Running, "the VM running again");
        await WaitAsync(() => Task.FromResult(Reported() is { Power: PowerState.Running, Fenced: false }), "a report of the VM running, not fenced");
    }

    public async Task DisposeAsync()
    {
        await _stopBeat.CancelAsync();
        await _beat;
        await _agent.DisposeAsync();
        await _driver.DisposeAsync();
        _stopBeat.Dispose();
        Directory.Delete(_dir, true);
    }
}
