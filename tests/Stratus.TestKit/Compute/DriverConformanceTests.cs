using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.TestKit.Compute;

/// <summary>
/// The lifecycle contract every <see cref="IComputeDriver"/> must keep. Subclass it once per driver (simulated, QEMU)
/// and supply the driver and a spec; the tests are inherited. Each test gets a fresh driver and destroys the VMs it
/// created. After every operation the suite awaits the resulting state (polling, bounded by <see cref="StateTimeout"/>),
/// so a driver with realistic delays passes. Error codes the suite pins: <c>not_found</c> for any operation on a VM the
/// host does not have (Destroy excepted: idempotent), <c>invalid_state</c> for pause/resume of a stopped VM.
/// </summary>
public abstract class DriverConformanceTests : IAsyncLifetime
{
    private readonly List<InstanceId> _created = [];
    private IComputeDriver? _driver;

    /// <summary>The driver under test (created in <see cref="InitializeAsync"/>).</summary>
    protected IComputeDriver Driver => _driver ?? throw new InvalidOperationException("driver not created yet");

    /// <summary>Creates the driver for one test.</summary>
    protected abstract Task<IComputeDriver> CreateDriverAsync();

    /// <summary>A spec for a small VM with the given id (no forwards needed).</summary>
    protected abstract VmSpec CreateSpec(InstanceId id);

    /// <summary>How long any state change may take.</summary>
    protected virtual TimeSpan StateTimeout => TimeSpan.FromSeconds(30);

    /// <summary>The graceful time the suite passes to StopAsync.</summary>
    protected virtual TimeSpan GracefulStop => TimeSpan.FromSeconds(1);

    /// <summary>Releases what the driver left after the test's VMs were destroyed (temp directories).</summary>
    protected virtual Task CleanupAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => _driver = await CreateDriverAsync();

    public async Task DisposeAsync()
    {
        if (_driver is not null)
        {
            using var cts = new CancellationTokenSource(StateTimeout);
            foreach (var id in _created)
            {
                await _driver.DestroyAsync(id, cts.Token);
            }

            await _driver.DisposeAsync();
        }

        await CleanupAsync();
    }

    private static CancellationToken Ct => CancellationToken.None;

    private async Task<VmStatus> CreateRunningAsync()
    {
        var spec = CreateSpec(InstanceId.New());
        _created.Add(spec.Id);
        await Driver.CreateAsync(spec, Ct);
        return await WaitForAsync(spec.Id, PowerState.Running);
    }

    /// <summary>Polls until the VM reports <paramref name="expected"/>; fails with the last state seen.</summary>
    protected async Task<VmStatus> WaitForAsync(InstanceId id, PowerState expected)
    {
        var deadline = DateTime.UtcNow + StateTimeout;
        VmStatus? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await Driver.GetStatusAsync(id, Ct);
            if (last?.Power == expected)
            {
                return last;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"VM {id} did not reach {expected} within {StateTimeout.TotalSeconds} s; last seen: {last?.Power.ToString() ?? "missing"}");
        return last!;
    }

    [Fact]
    public async Task DetectInventory_ThisHost_ReportsCapacity()
    {
        var inventory = await Driver.DetectInventoryAsync(Ct);
        Assert.True(inventory.Cores > 0);
        Assert.True(inventory.MemoryMib > 0);
        Assert.False(string.IsNullOrWhiteSpace(inventory.Accelerator));
    }

    [Fact]
    public async Task Create_NewVm_RunsAndIsListed()
    {
        var status = await CreateRunningAsync();
        var list = await Driver.ListAsync(Ct);
        Assert.Contains(list, s => s.Id == status.Id && s.Power == PowerState.Running);
    }

    [Fact]
    public async Task Create_SameSpecTwice_IsIdempotent()
    {
        var first = await CreateRunningAsync();
        var again = await Driver.CreateAsync(CreateSpec(first.Id), Ct);
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(first.Pid, again.Pid);
        Assert.Single(await Driver.ListAsync(Ct), s => s.Id == first.Id);
        Assert.Equal(PowerState.Running, (await WaitForAsync(first.Id, PowerState.Running)).Power);
    }

    [Fact]
    public async Task StopStart_RunningVm_ShutsDownThenRunsAgain()
    {
        var vm = await CreateRunningAsync();
        await Driver.StopAsync(vm.Id, GracefulStop, Ct);
        var stopped = await WaitForAsync(vm.Id, PowerState.Shutdown);
        Assert.Null(stopped.Pid);

        var again = await Driver.StopAsync(vm.Id, GracefulStop, Ct);
        Assert.Equal(PowerState.Shutdown, again.Power);

        await Driver.StartAsync(vm.Id, Ct);
        await WaitForAsync(vm.Id, PowerState.Running);
        var started = await Driver.StartAsync(vm.Id, Ct);
        Assert.Equal(PowerState.Running, started.Power);
    }

    [Fact]
    public async Task Stop_ZeroGrace_ForcesOff()
    {
        var vm = await CreateRunningAsync();
        await Driver.StopAsync(vm.Id, TimeSpan.Zero, Ct);
        await WaitForAsync(vm.Id, PowerState.Shutdown);
    }

    [Fact]
    public async Task PauseResume_RunningVm_PausesThenRuns()
    {
        var vm = await CreateRunningAsync();
        await Driver.PauseAsync(vm.Id, Ct);
        await WaitForAsync(vm.Id, PowerState.Paused);
        Assert.Equal(PowerState.Paused, (await Driver.PauseAsync(vm.Id, Ct)).Power);

        await Driver.ResumeAsync(vm.Id, Ct);
        await WaitForAsync(vm.Id, PowerState.Running);
        Assert.Equal(PowerState.Running, (await Driver.ResumeAsync(vm.Id, Ct)).Power);
    }

    /// <summary>A stopped VM has no running machine to pause or resume: that is illegal, not idempotent.</summary>
    [Fact]
    public async Task PauseResume_StoppedVm_ThrowInvalidStateAndChangeNothing()
    {
        var vm = await CreateRunningAsync();
        await Driver.StopAsync(vm.Id, TimeSpan.Zero, Ct);
        await WaitForAsync(vm.Id, PowerState.Shutdown);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => Driver.PauseAsync(vm.Id, Ct))).Code);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => Driver.ResumeAsync(vm.Id, Ct))).Code);
        Assert.Equal(PowerState.Shutdown, (await Driver.GetStatusAsync(vm.Id, Ct))!.Power);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Reboot_RunningVm_RunsAfterwards(bool hard)
    {
        var vm = await CreateRunningAsync();
        await Driver.RebootAsync(vm.Id, hard, Ct);
        var after = await WaitForAsync(vm.Id, PowerState.Running);
        Assert.Equal(vm.Id, after.Id);
    }

    [Fact]
    public async Task Reboot_StoppedVm_StartsIt()
    {
        var vm = await CreateRunningAsync();
        await Driver.StopAsync(vm.Id, TimeSpan.Zero, Ct);
        await WaitForAsync(vm.Id, PowerState.Shutdown);
        await Driver.RebootAsync(vm.Id, hard: true, Ct);
        await WaitForAsync(vm.Id, PowerState.Running);
    }

    [Fact]
    public async Task Destroy_RunningVm_RemovesItAndIsIdempotent()
    {
        var vm = await CreateRunningAsync();
        await Driver.DestroyAsync(vm.Id, Ct);
        Assert.Null(await Driver.GetStatusAsync(vm.Id, Ct));
        Assert.DoesNotContain(await Driver.ListAsync(Ct), s => s.Id == vm.Id);
        await Driver.DestroyAsync(vm.Id, Ct);
        Assert.Null(await Driver.GetStatusAsync(vm.Id, Ct));
    }

    [Fact]
    public async Task Operations_MissingVm_ThrowNotFound()
    {
        var id = InstanceId.New();
        Assert.Null(await Driver.GetStatusAsync(id, Ct));
        var calls = new Func<Task>[]
        {
            () => Driver.StartAsync(id, Ct),
            () => Driver.StopAsync(id, TimeSpan.Zero, Ct),
            () => Driver.RebootAsync(id, false, Ct),
            () => Driver.RebootAsync(id, true, Ct),
            () => Driver.PauseAsync(id, Ct),
            () => Driver.ResumeAsync(id, Ct),
            () => Driver.ReadConsoleAsync(id, 100, Ct),
        };
        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<ComputeException>(call);
            Assert.Equal("not_found", e.Code);
        }

        await Driver.DestroyAsync(id, Ct);
        Assert.Null(await Driver.GetStatusAsync(id, Ct));
    }

    [Fact]
    public async Task ShutdownAll_RunningVms_StopsEveryOne()
    {
        var a = await CreateRunningAsync();
        var b = await CreateRunningAsync();
        await Driver.ShutdownAllAsync(GracefulStop, Ct);
        await WaitForAsync(a.Id, PowerState.Shutdown);
        await WaitForAsync(b.Id, PowerState.Shutdown);
    }
}
