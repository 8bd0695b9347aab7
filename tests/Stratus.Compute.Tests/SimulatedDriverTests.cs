using Stratus.Compute.Simulated;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Tests;

public sealed class SimulatedDriverTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-sim-").FullName;

    private SimulatedDriver New(double scale = 0) => new(new SimulatedDriverOptions { StateDirectory = _dir, DelayScale = scale });

    private static VmSpec Spec(InstanceId id) => new(id, "vm", 1, 256, 1, null, null, null, null, null, null, [], [new PortForward(0, 80)], 1, 256);

    [Fact]
    public async Task Lifecycle_EveryOperation_ChangesPower()
    {
        await using var d = New();
        var id = InstanceId.New();
        Assert.Equal(PowerState.Running, (await d.CreateAsync(Spec(id), default)).Power);
        Assert.Equal(PowerState.Paused, (await d.PauseAsync(id, default)).Power);
        Assert.Equal(PowerState.Running, (await d.ResumeAsync(id, default)).Power);
        Assert.Equal(PowerState.Shutdown, (await d.StopAsync(id, TimeSpan.FromSeconds(1), default)).Power);
        Assert.Equal(PowerState.Running, (await d.StartAsync(id, default)).Power);
        Assert.Equal(PowerState.Running, (await d.RebootAsync(id, hard: true, default)).Power);
        await d.DestroyAsync(id, default);
        Assert.Null(await d.GetStatusAsync(id, default));
        await d.DestroyAsync(id, default); // idempotent
        var e = await Assert.ThrowsAsync<ComputeException>(() => d.StartAsync(id, default));
        Assert.Equal("not_found", e.Code);
    }

    [Fact]
    public async Task Create_Twice_SameVmAndChosenPortKept()
    {
        await using var d = New();
        var id = InstanceId.New();
        var a = await d.CreateAsync(Spec(id), default);
        var b = await d.CreateAsync(Spec(id), default);
        Assert.Single(await d.ListAsync(default));
        Assert.NotEqual(0, a.Forwards[0].HostPort);
        Assert.Equal(a.Forwards, b.Forwards);
    }

    [Fact]
    public async Task Restart_DriverState_SurvivesAndShutdownAllStopsEverything()
    {
        var id = InstanceId.New();
        await using (var d = New())
        {
            await d.CreateAsync(Spec(id), default);
        }
        await using (var again = New())
        {
            Assert.Equal(PowerState.Running, (await again.GetStatusAsync(id, default))!.Power);
            await again.ShutdownAllAsync(TimeSpan.Zero, default);
        }
        await using var third = New();
        Assert.Equal(PowerState.Shutdown, (await third.GetStatusAsync(id, default))!.Power);
    }

    [Fact]
    public async Task Delays_Realistic_AtMostTwoSecondsPerOperation()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var d = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = _dir, DelayScale = 1 }, time);
        var create = d.CreateAsync(Spec(InstanceId.New()), default);
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(create.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1001));
        Assert.Equal(PowerState.Running, (await create).Power);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
