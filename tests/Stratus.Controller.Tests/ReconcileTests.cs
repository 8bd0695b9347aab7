using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests;

/// <summary>The controller's workflow against a real store, with a recording agent session in place of an agent.</summary>
public sealed class ReconcileTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-ctl-").FullName;
    private SqliteStateStore _store = null!;
    private AgentHub _hub = null!;
    private Reconciler _rec = null!;
    private CloudService _cloud = null!;
    private readonly ReconcileSignal _signal = new();
    private readonly List<DesiredHostState> _pushes = [];
    private HostId _host;

    private sealed class RecordingSession(HostId id, List<DesiredHostState> pushes) : IAgentSession
    {
        public HostId HostId => id;

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken)
        {
            lock (pushes)
            {
                pushes.Add(desired);
            }
            return Task.CompletedTask;
        }

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");
    }

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var options = new ControllerOptions();
        _hub = new AgentHub(_store, TimeProvider.System, _signal, NullLogger<AgentHub>.Instance);
        _rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, _signal, TimeProvider.System, NullLogger<Reconciler>.Instance);
        _cloud = new CloudService(_store, options, TimeProvider.System, _signal);
        (_host, _) = await _hub.RegisterAsync(new HostRegistration("h1", 2, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _hub.Attach(new RecordingSession(_host, _pushes));
        await _cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), default);
        await _cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default);
    }

    private async Task<Instance> CreateAsync(string name)
    {
        var o = await _cloud.CreateServerAsync(new CreateServerRequest(name, "tiny", "tiny", null, null, null, null), null, "test", default);
        Assert.True(o.Ok, o.Problem?.Detail);
        return o.Value.Server;
    }

    private Task ReportAsync(bool complete, params ActualVm[] vms) => _hub.ReportAsync(new HostReport(_host, 1, vms, complete), default);

    private static ActualVm Running(InstanceId id, long reboot = 0) => new(id, PowerState.Running, 1, [], reboot, null, true);

    [Fact]
    public async Task Pass_SchedulingServer_ClaimedPushedAsRunning()
    {
        var i = await CreateAsync("a");
        await _rec.RunOnceAsync(default);
        var placed = (await _store.GetInstanceAsync(i.Id, default))!;
        Assert.Equal(_host, placed.HostId);
        Assert.Equal(InstanceTask.Spawning, placed.Task);
        var push = _pushes.Last();
        var vm = Assert.Single(push.Vms);
        Assert.Equal(DesiredPower.Running, vm.Power);
        Assert.Equal(256, vm.MemoryMib);
        await ReportAsync(false, Running(i.Id));
        var active = (await _store.GetInstanceAsync(i.Id, default))!;
        Assert.Equal(VmState.Active, active.VmState);
        Assert.Null(active.Task);
        Assert.Equal("success", (await _store.ListActionsAsync(i.Id, default)).Single().Result);
    }

    [Fact]
    public async Task Report_GuestShutDown_PowerSyncOnlyWhenComplete()
    {
        var i = await CreateAsync("b");
        await _rec.RunOnceAsync(default);
        await ReportAsync(false, Running(i.Id));
        var off = new ActualVm(i.Id, PowerState.Shutdown, null, [], 0, null, true);
        await ReportAsync(false, off);
        Assert.Equal(VmState.Active, (await _store.GetInstanceAsync(i.Id, default))!.VmState);
        await ReportAsync(true, off);
        Assert.Equal(VmState.Stopped, (await _store.GetInstanceAsync(i.Id, default))!.VmState);
        Assert.Contains(await _store.ListActionsAsync(i.Id, default), a => a.Action == "power-sync");
    }

    /// <summary>Regression: an HA VM its agent stopped by fencing itself was marked stopped when the agent reconnected
    /// (power-sync), so it was neither restarted there nor recovered elsewhere.</summary>
    [Fact]
    public async Task Report_FencedVmShutDown_ServerStaysActive()
    {
        var i = await CreateAsync("f");
        await _rec.RunOnceAsync(default);
        await ReportAsync(false, Running(i.Id));
        var fenced = new ActualVm(i.Id, PowerState.Shutdown, null, [], 0, null, true, Fenced: true);
        await ReportAsync(true, fenced);
        var s = (await _store.GetInstanceAsync(i.Id, default))!;
        Assert.Equal(VmState.Active, s.VmState);
        Assert.Equal(PowerState.Shutdown, s.PowerState);
        Assert.DoesNotContain(await _store.ListActionsAsync(i.Id, default), a => a.Action == "power-sync");
        Assert.Equal(DesiredPower.Running, Reconciler.Desired(s));
    }

    [Fact]
    public async Task Report_HypervisorCrashed_ErrorWithReasonAndHardRebootAllowed()
    {
        var i = await CreateAsync("crash");
        await _rec.RunOnceAsync(default);
        await ReportAsync(true, Running(i.Id));
        await ReportAsync(true, new ActualVm(i.Id, PowerState.Crashed, null, [], 0, null, true));
        var e = (await _store.GetInstanceAsync(i.Id, default))!;
        Assert.Equal(VmState.Error, e.VmState);
        Assert.Equal("the VM's hypervisor process exited unexpectedly", e.Fault);
        Assert.Equal(_host, e.HostId);
        Assert.True((await _cloud.ActAsync("crash", new ServerActionRequest("reboot", "hard"), "test", default)).Ok);
        Assert.False((await _cloud.ActAsync("crash", new ServerActionRequest("reboot", "soft"), "test", default)).Ok);
    }

    [Fact]
    public async Task Report_ErrorDuringSpawn_ErrorWithFault()
    {
        var i = await CreateAsync("c");
        await _rec.RunOnceAsync(default);
        await ReportAsync(true, new ActualVm(i.Id, PowerState.NoState, null, [], 0, "image_missing: no such file", false));
        var e = (await _store.GetInstanceAsync(i.Id, default))!;
        Assert.Equal(VmState.Error, e.VmState);
        Assert.Equal("image_missing: no such file", e.Fault);
        Assert.Equal("error", (await _store.ListActionsAsync(i.Id, default)).Single().Result);
    }

    [Fact]
    public async Task Delete_AgentReportsGone_DeletedAndReleased()
    {
        var i = await CreateAsync("d");
        await _rec.RunOnceAsync(default);
        await ReportAsync(true, Running(i.Id));
        Assert.True((await _cloud.DeleteServerAsync("d", "test", default)).Ok);
        await _rec.RunOnceAsync(default);
        Assert.Equal(DesiredPower.Absent, _pushes.Last().Vms.Single().Power);
        await ReportAsync(true, Running(i.Id)); // still there: nothing changes
        Assert.Equal(InstanceTask.Deleting, (await _store.GetInstanceAsync(i.Id, default))!.Task);
        await ReportAsync(true);
        Assert.Equal(VmState.Deleted, (await _store.GetInstanceAsync(i.Id, default))!.VmState);
        Assert.Empty(await _store.ListAllocationsAsync(default));
        Assert.Equal(Core.Resources.ResourceVector.Zero, (await _store.GetHostAsync(_host, default))!.Used);
    }

    [Fact]
    public async Task Reboot_NewSequence_ActiveOnlyAfterAgentDidIt()
    {
        var i = await CreateAsync("e");
        await _rec.RunOnceAsync(default);
        await ReportAsync(true, Running(i.Id));
        Assert.True((await _cloud.ActAsync("e", new ServerActionRequest("reboot", "hard"), "test", default)).Ok);
        await _rec.RunOnceAsync(default);
        var vm = _pushes.Last().Vms.Single();
        Assert.Equal(1, vm.RebootSeq);
        Assert.True(vm.RebootHard);
        await ReportAsync(true, Running(i.Id, reboot: 0));
        Assert.Equal(InstanceTask.RebootingHard, (await _store.GetInstanceAsync(i.Id, default))!.Task);
        await ReportAsync(true, Running(i.Id, reboot: 1));
        Assert.Null((await _store.GetInstanceAsync(i.Id, default))!.Task);
    }

    [Fact]
    public async Task Schedule_HostFull_ErrorWithReasonAndNoAllocation()
    {
        await _cloud.CreateFlavorAsync(new CreateFlavorRequest("fat", 1, 8192, 1, true), default);
        var o = await _cloud.CreateServerAsync(new CreateServerRequest("fat-1", "fat", "tiny", null, null, null, null), null, "test", default);
        await _rec.RunOnceAsync(default);
        var e = (await _store.GetInstanceAsync(o.Value.Server.Id, default))!;
        Assert.Equal(VmState.Error, e.VmState);
        Assert.Equal("no valid host: memory: largest free 4 GiB, asked 8 GiB", e.Fault);
        Assert.Empty(await _store.ListAllocationsAsync(default));
    }

    [Theory]
    [InlineData(VmState.Active, null, DesiredPower.Running)]
    [InlineData(VmState.Stopped, null, DesiredPower.Stopped)]
    [InlineData(VmState.Paused, null, DesiredPower.Paused)]
    [InlineData(VmState.Error, null, DesiredPower.Stopped)]
    [InlineData(VmState.Active, InstanceTask.Stopping, DesiredPower.Stopped)]
    [InlineData(VmState.Stopped, InstanceTask.Starting, DesiredPower.Running)]
    [InlineData(VmState.Active, InstanceTask.Deleting, DesiredPower.Absent)]
    [InlineData(VmState.Building, InstanceTask.Spawning, DesiredPower.Running)]
    [InlineData(VmState.Active, InstanceTask.Migrating, DesiredPower.Running)]
    [InlineData(VmState.Active, InstanceTask.Recovering, DesiredPower.Stopped)] // its failed host, back meanwhile, must not start it too
    public void Desired_StateAndTask_MapsToPower(VmState state, InstanceTask? task, DesiredPower expected)
    {
        var i = new Instance(InstanceId.New(), "x", FlavorId.New(), ImageId.New(), HostId.New(), state, task, PowerState.NoState,
            Core.Resources.ResourceVector.Zero, null, null, 0, 1, default, default, null);
        Assert.Equal(expected, Reconciler.Desired(i));
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, true);
    }
}
