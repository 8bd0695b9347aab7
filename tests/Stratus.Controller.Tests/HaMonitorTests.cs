using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests;

/// <summary>
/// HaMonitor across a controller restart, against a real store with fake agent sessions: a recovery the previous
/// process left in progress is settled by what its destination reports (adopted, or removed there and retried),
/// and silence the new process did not watch is not counted against a host.
/// </summary>
public sealed class HaMonitorTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-ha-").FullName;
    private readonly ReconcileSignal _signal = new();
    private SqliteStateStore _store = null!;
    private AgentHub _hub = null!;
    private Reconciler _rec = null!;
    private HostId _failed;
    private HostId _dst;
    private Instance _server = null!;
    private readonly FakeSession _dstSession = new();

    private string Shared => Path.Combine(_dir, "shared");

    /// <summary>A destination agent: records the recovery requests it gets and answers like a hypervisor would.</summary>
    private sealed class FakeSession : IAgentSession
    {
        public HostId HostId { get; set; }

        public List<string> Calls { get; } = [];

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");

        public Task<ActualVm> ImportStoppedAsync(DesiredVm vm, string? sourceDisk, CancellationToken cancellationToken)
        {
            Calls.Add("import");
            return Task.FromResult(new ActualVm(vm.Id, PowerState.Shutdown, null, [], 0, null, true));
        }

        public Task<ActualVm> StartVmAsync(InstanceId id, CancellationToken cancellationToken)
        {
            Calls.Add("start");
            return Task.FromResult(new ActualVm(id, PowerState.Running, 42, [new ForwardSpec(40001, 80)], 0, null, true));
        }

        public Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken)
        {
            Calls.Add("remove");
            return Task.CompletedTask;
        }
    }

    private sealed class NoLocks : IDiskLockProbe
    {
        public Task<bool?> IsLockedAsync(InstanceId id, CancellationToken ct) => Task.FromResult<bool?>(false);
    }

    private sealed class Quiet : IAgentSession
    {
        public HostId HostId { get; init; }

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");
    }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(Shared, ".ha"));
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var options = new ControllerOptions { HasSharedPool = true, DefaultStoragePool = "shared" };
        _hub = new AgentHub(_store, TimeProvider.System, _signal, NullLogger<AgentHub>.Instance);
        _rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, _signal, TimeProvider.System, NullLogger<Reconciler>.Instance);
        var cloud = new CloudService(_store, options, TimeProvider.System, _signal);
        await cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), default);
        await cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default);

        // The server runs on host "h1"; "h2" registers afterwards.
        (_failed, _) = await _hub.RegisterAsync(new HostRegistration("h1", 2, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _hub.Attach(new Quiet { HostId = _failed });
        var o = await cloud.CreateServerAsync(new CreateServerRequest("ha", "tiny", "tiny", null, null, null, null) { Ha = true }, null, "test", default);
        Assert.True(o.Ok, o.Problem?.Detail);
        await _rec.RunOnceAsync(default);
        await _hub.ReportAsync(new HostReport(_failed, 1, [new ActualVm(o.Value.Server.Id, PowerState.Running, 1, [], 0, null, true)], true), default);
        _server = (await _store.GetInstanceAsync(o.Value.Server.Id, default))!;
        Assert.Equal(VmState.Active, _server.VmState);
        (_dst, _) = await _hub.RegisterAsync(new HostRegistration("h2", 2, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _dstSession.HostId = _dst;
    }

    /// <summary>What a controller process killed during the recovery leaves: h1 failed (open incident), the server
    /// claimed on h2 in task recovering. Then h1's agent is gone and h2's is connected to the new process.</summary>
    private async Task InterruptedRecoveryAsync()
    {
        var h1 = (await _store.GetHostAsync(_failed, default))!;
        Assert.Equal(CasOutcome.Ok, await _store.DeclareHostFailedAsync(_failed, h1.Epoch, default));
        var now = DateTimeOffset.UtcNow;
        await _store.SaveIncidentAsync(new Incident(Guid.CreateVersion7(), _failed, "open", now, null,
            [new IncidentEvent(now, "detected", "test"), new IncidentEvent(now, "fenced", "test")]), default);
        var h2 = (await _store.GetHostAsync(_dst, default))!;
        Assert.Equal(CasOutcome.Ok, await _store.BeginMigrationAsync(_server with { Task = InstanceTask.Recovering, TaskRequestedAt = now, UpdatedAt = now },
            new MigrationRecord(_server.Id, _failed, _dst, "recovery", _server.Resources, now), h2.Generation,
            new InstanceAction(0, _server.Id, "recover", "ha", now, null, "pending", "test"), default));
        _hub.Detach(_failed);
        _hub.Attach(_dstSession);
    }

    private HaMonitor Monitor(TimeProvider? time = null, TimeSpan? interruptedWait = null) =>
        new(_store, _hub, _rec, _signal, new HaOptions { SharedPool = Shared, InterruptedWait = interruptedWait ?? TimeSpan.FromSeconds(15) }, new NoLocks(),
            time ?? TimeProvider.System, NullLogger<HaMonitor>.Instance);

    private async Task<Instance> WaitServerAsync(Func<Instance, bool> done, Func<Task>? each = null)
    {
        for (var i = 0; i < 250; i++)
        {
            if (each is not null)
            {
                await each();
            }
            var s = (await _store.GetInstanceAsync(_server.Id, default))!;
            if (done(s))
            {
                return s;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException("the server did not reach the expected state");
    }

    /// <summary>The incident's timeline once it has an event of this kind (events are recorded just after the store moves the server).</summary>
    private async Task<IReadOnlyList<IncidentEvent>> WaitEventAsync(string kind)
    {
        for (var i = 0; i < 250; i++)
        {
            if ((await _store.ListIncidentsAsync(default)).SingleOrDefault() is { } incident && incident.Timeline.Any(e => e.Kind == kind))
            {
                return incident.Timeline;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"no '{kind}' event in the incident");
    }

    private async Task<long> UsedRamAsync(HostId h) => (await _store.GetHostAsync(h, default))!.Used.MemoryMib;

    [Fact]
    public async Task Restart_DestinationRunsTheVm_AdoptedThereNothingStarted()
    {
        await InterruptedRecoveryAsync();
        var ha = Monitor();
        await ha.LoadAsync(default);
        await ha.CheckAsync(default);
        Assert.Equal(InstanceTask.Recovering, (await _store.GetInstanceAsync(_server.Id, default))!.Task); // waits for h2's report
        await _hub.ReportAsync(new HostReport(_dst, 1, [new ActualVm(_server.Id, PowerState.Running, 7, [new ForwardSpec(40002, 80)], 0, null, true)], true), default);
        var moved = await WaitServerAsync(s => s.Task is null, () => ha.CheckAsync(default));
        Assert.Equal(_dst, moved.HostId);
        Assert.Equal(VmState.Active, moved.VmState);
        Assert.Equal(40002, Assert.Single(moved.Forwards!).HostPort);
        Assert.Empty(_dstSession.Calls);
        Assert.Empty(await _store.ListMigrationsAsync(default));
        Assert.Equal(0, await UsedRamAsync(_failed));
        Assert.Equal(256, await UsedRamAsync(_dst));
        var timeline = await WaitEventAsync("restarted");
        Assert.Contains(timeline, e => e.Kind == "restarted" && e.ServerId == _server.Id.ToString() && e.Message.Contains("adopted", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Restart_DestinationHasItDefinedNotRunning_RemovedRolledBackThenRecoveredOnce()
    {
        await InterruptedRecoveryAsync();
        var ha = Monitor();
        await ha.LoadAsync(default);
        await _hub.ReportAsync(new HostReport(_dst, 1, [new ActualVm(_server.Id, PowerState.Shutdown, null, [], 0, null, true)], true), default);
        var moved = await WaitServerAsync(s => s.HostId == _dst && s.Task is null, () => ha.CheckAsync(default));
        Assert.Equal(VmState.Active, moved.VmState);
        Assert.Equal(["remove", "import", "start"], _dstSession.Calls); // the stopped copy removed before the retry defined it anew
        Assert.Equal(0, await UsedRamAsync(_failed));
        Assert.Equal(256, await UsedRamAsync(_dst));
        var timeline = await WaitEventAsync("restarted");
        Assert.Single(timeline, e => e.Kind == "retry");
        Assert.Single(timeline, e => e.Kind == "restarted");
    }

    [Fact]
    public async Task Restart_DestinationNeverReports_RolledBackAfterTheWait()
    {
        await InterruptedRecoveryAsync();
        _hub.Detach(_dst);
        var ha = Monitor(interruptedWait: TimeSpan.Zero);
        await ha.LoadAsync(default);
        await ha.CheckAsync(default);
        var back = await WaitServerAsync(s => s.Task is null);
        Assert.Equal(_failed, back.HostId);
        Assert.Empty(await _store.ListMigrationsAsync(default));
        Assert.Equal(0, await UsedRamAsync(_dst));
        Assert.Contains("did not report", (await WaitEventAsync("retry")).Single(e => e.Kind == "retry").Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restart_VmFoundRunningOnAnotherHost_AdoptedThere()
    {
        // Rolled back already (say, the destination came back after the wait): a pending server that a connected host
        // reports running is adopted where it runs, never started a second time.
        var h1 = (await _store.GetHostAsync(_failed, default))!;
        await _store.DeclareHostFailedAsync(_failed, h1.Epoch, default);
        await _store.SaveIncidentAsync(new Incident(Guid.CreateVersion7(), _failed, "open", DateTimeOffset.UtcNow, null,
            [new IncidentEvent(DateTimeOffset.UtcNow, "detected", "test")]), default);
        _hub.Detach(_failed);
        _hub.Attach(_dstSession);
        await _hub.ReportAsync(new HostReport(_dst, 1, [new ActualVm(_server.Id, PowerState.Running, 7, [], 0, null, true)], true), default);
        var ha = Monitor();
        await ha.LoadAsync(default);
        var moved = await WaitServerAsync(s => s.HostId == _dst && s.Task is null, () => ha.CheckAsync(default));
        Assert.Equal(VmState.Active, moved.VmState);
        Assert.Empty(_dstSession.Calls);
        Assert.Equal(256, await UsedRamAsync(_dst));
        Assert.Equal(0, await UsedRamAsync(_failed));
        Assert.Contains("found running", (await WaitEventAsync("restarted")).Single(e => e.Kind == "restarted").Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_SilenceBeforeTheControllerStarted_NotCounted()
    {
        // The host's last heartbeat is an hour old when this controller process starts (it was down meanwhile).
        _hub.Detach(_failed);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow + TimeSpan.FromHours(1));
        var ha = Monitor(time);
        await ha.LoadAsync(default);
        await ha.CheckAsync(default);
        time.Advance(TimeSpan.FromSeconds(4));
        await ha.CheckAsync(default);
        Assert.Empty(await _store.ListIncidentsAsync(default));
        time.Advance(TimeSpan.FromSeconds(1.5)); // 5.5 s of silence watched by this process: suspected
        await ha.CheckAsync(default);
        var incident = Assert.Single(await _store.ListIncidentsAsync(default));
        Assert.Equal(_failed, incident.HostId);
        Assert.Contains("no heartbeat for 5.5 s", incident.Timeline[0].Message, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, true);
    }
}
