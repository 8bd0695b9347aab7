using System.Globalization;
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
/// The out-of-band fence (stratusd --fence-command) in <see cref="HaMonitor"/>, with a real store, two hosts whose agents
/// are stand-in sessions, a small shell script as the fence, and virtual time for detection and the fence's timeout.
/// Host h1 runs one HA server; its agent goes silent with no storage heartbeat, so it is declared failed on that witness.
/// </summary>
public sealed class HaFenceTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-fence-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly ReconcileSignal _signal = new();
    private SqliteStateStore _store = null!;
    private AgentHub _hub = null!;
    private Reconciler _rec = null!;
    private HostId _h1;
    private HostId _h2;
    private InstanceId _server;

    private string Shared => Path.Combine(_dir, "shared");

    private string Calls => Path.Combine(_dir, "fence-calls");

    /// <summary>An agent that defines and starts whatever HA recovery asks of it.</summary>
    private sealed class StandInSession(HostId id) : IAgentSession
    {
        public HostId HostId => id;

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");

        public Task<ActualVm> ImportStoppedAsync(DesiredVm vm, string? sourceDisk, CancellationToken cancellationToken) =>
            Task.FromResult(new ActualVm(vm.Id, PowerState.Shutdown, null, [], 0, null, true));

        public Task<ActualVm> StartVmAsync(InstanceId id, CancellationToken cancellationToken) =>
            Task.FromResult(new ActualVm(id, PowerState.Running, 4242, [], 0, null, true));
    }

    private sealed class FreeDisks : IDiskLockProbe
    {
        public Task<bool?> IsLockedAsync(InstanceId id, CancellationToken ct) => Task.FromResult<bool?>(false);
    }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Shared);
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var options = new ControllerOptions { HasSharedPool = true, DefaultStoragePool = "shared" };
        _hub = new AgentHub(_store, _time, _signal, NullLogger<AgentHub>.Instance);
        _rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, _signal, _time, NullLogger<Reconciler>.Instance);
        var cloud = new CloudService(_store, options, _time, _signal);
        (_h1, _) = await _hub.RegisterAsync(Registration("h1"), default);
        _hub.Attach(new StandInSession(_h1));
        await cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), default);
        await cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default);
        var created = await cloud.CreateServerAsync(new CreateServerRequest("db", "tiny", "tiny", null, null, null, null) { Ha = true }, null, "test", default);
        Assert.True(created.Ok, created.Problem?.Detail);
        _server = created.Value.Server.Id;
        await _rec.RunOnceAsync(default); // the only host: placed on h1
        await _hub.ReportAsync(new HostReport(_h1, 1, [new ActualVm(_server, PowerState.Running, 1, [], 0, null, true)], true), default);
        Assert.Equal(VmState.Active, (await _store.GetInstanceAsync(_server, default))!.VmState);
        (_h2, _) = await _hub.RegisterAsync(Registration("h2"), default);
        _hub.Attach(new StandInSession(_h2));
    }

    private static HostRegistration Registration(string name) => new(name, 4, 8192, 100, "tcg", "simulated", "cpu", 2, 1, ProtocolVersion.Major)
    {
        StoragePools = ["local", "shared"],
    };

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    /// <summary>A fence command: a script that logs its arguments and environment to <see cref="Calls"/>, then runs <paramref name="body"/>.</summary>
    private string Script(string body)
    {
        var path = Path.Combine(_dir, "fence.sh");
        File.WriteAllText(path, $"echo \"$1 $2 $3 $STRATUS_HOST_NAME $STRATUS_HOST_ID $STRATUS_EPOCH\" >> '{Calls}'\n{body}\n");
        return $"sh '{path}'";
    }

    private HaMonitor Monitor(string? fenceCommand, TimeSpan? timeout = null)
    {
        var options = new HaOptions
        {
            SharedPool = Shared,
            FenceCommand = fenceCommand,
            FenceTimeout = timeout ?? TimeSpan.FromSeconds(30),
            FenceRetry = TimeSpan.FromSeconds(30),
        };
        return new HaMonitor(_store, _hub, _rec, _signal, options, new FreeDisks(), _time, NullLogger<HaMonitor>.Instance,
            fenceCommand is null ? null : new CommandFence(options, _time));
    }

    /// <summary>One check, with h2 heartbeating as a live agent does.</summary>
    private async Task PassAsync(HaMonitor monitor)
    {
        await _store.HeartbeatAsync(_h2, _time.GetUtcNow(), default);
        await monitor.CheckAsync(default);
    }

    /// <summary>h1's agent goes silent for longer than SuspectAfter: suspected and, with no storage heartbeat, declared failed.</summary>
    private async Task<Incident> FailH1Async(HaMonitor monitor)
    {
        await PassAsync(monitor);
        _hub.Detach(_h1);
        _time.Advance(TimeSpan.FromSeconds(6));
        await PassAsync(monitor);
        var incident = Assert.Single(await _store.ListIncidentsAsync(default));
        Assert.Equal(HostState.Failed, (await _store.GetHostAsync(_h1, default))!.State);
        return incident;
    }

    private async Task<Incident> IncidentAsync() => Assert.Single(await _store.ListIncidentsAsync(default));

    private async Task WaitFenceAsync(HaMonitor monitor, Guid incident)
    {
        if (monitor.FenceTask(incident) is { } running)
        {
            await running.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Checks until the server runs on h2 (recovery runs in the background), or fails after 20 s.</summary>
    private async Task WaitRecoveredAsync(HaMonitor monitor)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await _store.GetInstanceAsync(_server, default))!.HostId != _h2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the server was not restarted on h2");
            await PassAsync(monitor);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task FenceCommand_Succeeds_TimelineFencedThenRecovered_ArgumentsAndEnvironmentPassed()
    {
        var go = Path.Combine(_dir, "go");
        var monitor = Monitor(Script($"while [ ! -f '{go}' ]; do sleep 0.02; done; echo 'chassis power off'; exit 0"));
        var incident = await FailH1Async(monitor);
        for (var i = 0; i < 5; i++)
        {
            await PassAsync(monitor); // the fence is still running: nothing is restarted meanwhile
        }
        Assert.Equal(_h1, (await _store.GetInstanceAsync(_server, default))!.HostId);
        Assert.False(monitor.FenceTask(incident.Id)!.IsCompleted);
        File.WriteAllText(go, "");
        await WaitFenceAsync(monitor, incident.Id);
        await WaitRecoveredAsync(monitor);

        var h1 = (await _store.GetHostAsync(_h1, default))!;
        Assert.Equal($"h1 {_h1} {h1.Epoch} h1 {_h1} {h1.Epoch}", File.ReadAllText(Calls).Trim());
        var timeline = (await IncidentAsync()).Timeline;
        Assert.Equal(["detected", "fenced", "fence_ok", "restarted"], timeline.Select(e => e.Kind).ToArray());
        Assert.Contains("fencing it out of band before anything is restarted", timeline[1].Message, StringComparison.Ordinal);
        Assert.Contains($"fenced out of band at epoch {h1.Epoch}", timeline[2].Message, StringComparison.Ordinal);
        Assert.Contains("exited 0", timeline[2].Message, StringComparison.Ordinal);
        Assert.Contains("chassis power off", timeline[2].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FenceCommand_Fails_NothingRestarted_RetriedAfterTheWait_UntilTheHostsFenceRecord()
    {
        var monitor = Monitor(Script("echo 'bmc-h1: no route to host' >&2; exit 3"));
        var incident = await FailH1Async(monitor);
        await WaitFenceAsync(monitor, incident.Id);
        for (var i = 0; i < 3; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            await PassAsync(monitor);
            await WaitFenceAsync(monitor, incident.Id);
        }
        Assert.Equal(_h1, (await _store.GetInstanceAsync(_server, default))!.HostId); // a stopped storage heartbeat alone is not enough
        Assert.Single(File.ReadAllLines(Calls)); // not retried before FenceRetry
        var failed = Assert.Single((await IncidentAsync()).Timeline, e => e.Kind == "fence_failed");
        Assert.Contains("exited 3", failed.Message, StringComparison.Ordinal);
        Assert.Contains("bmc-h1: no route to host", failed.Message, StringComparison.Ordinal);
        Assert.Contains("nothing is restarted until a fence succeeds", failed.Message, StringComparison.Ordinal);

        _time.Advance(TimeSpan.FromSeconds(30));
        await PassAsync(monitor);
        await WaitFenceAsync(monitor, incident.Id);
        Assert.Equal(2, File.ReadAllLines(Calls).Length); // retried once, and failed again: recorded once only
        Assert.Single((await IncidentAsync()).Timeline, e => e.Kind == "fence_failed");
        Assert.Equal(_h1, (await _store.GetInstanceAsync(_server, default))!.HostId);

        // The host's own fence record (or an operator who checked the host is off writing it) releases recovery.
        Directory.CreateDirectory(Path.Combine(Shared, ".ha"));
        File.WriteAllText(Path.Combine(Shared, ".ha", "h1.fenced"), "2 by hand\n");
        await WaitRecoveredAsync(monitor);
        Assert.Equal(["detected", "fenced", "fence_failed", "fence_record", "restarted"], (await IncidentAsync()).Timeline.Select(e => e.Kind).ToArray());
    }

    [Fact]
    public async Task FenceCommand_TimesOut_KilledWithItsChildren_CountsAsFailed()
    {
        var pidFile = Path.Combine(_dir, "sleep.pid");
        var monitor = Monitor(Script($"sleep 300 & echo $! > '{pidFile}'; wait"), timeout: TimeSpan.FromSeconds(5));
        var incident = await FailH1Async(monitor);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (monitor.FenceTask(incident.Id) is { IsCompleted: false } running)
        {
            Assert.True(DateTime.UtcNow < deadline, "the fence did not time out");
            if (File.Exists(pidFile))
            {
                _time.Advance(TimeSpan.FromSeconds(1)); // virtual time: the command's timeout runs on the injected clock
            }
            await PassAsync(monitor);
            await Task.WhenAny(running, Task.Delay(50));
        }
        var failed = Assert.Single((await IncidentAsync()).Timeline, e => e.Kind == "fence_failed");
        Assert.Contains("timed out after 5 s and was killed", failed.Message, StringComparison.Ordinal);
        var sleeper = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
        while (IsRunning(sleeper))
        {
            Assert.True(DateTime.UtcNow < deadline, "the fence command's child survived the timeout");
            await Task.Delay(20);
        }
        Assert.Equal(_h1, (await _store.GetInstanceAsync(_server, default))!.HostId);
    }

    [Fact]
    public async Task HostFencedItself_NoFenceCommandRun_Recovered()
    {
        var monitor = Monitor(Script("exit 0"));
        Directory.CreateDirectory(Path.Combine(Shared, ".ha"));
        File.WriteAllText(Path.Combine(Shared, ".ha", "h1.fenced"), "1\n");
        var incident = await FailH1Async(monitor);
        await WaitFenceAsync(monitor, incident.Id);
        await WaitRecoveredAsync(monitor);
        Assert.False(File.Exists(Calls)); // the host is alive and stopped its HA VMs: no reason to power it off
        var timeline = (await IncidentAsync()).Timeline;
        Assert.Equal(["detected", "fenced", "restarted"], timeline.Select(e => e.Kind).ToArray());
        Assert.Contains("no out-of-band fence needed", timeline[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoFenceCommand_StoppedStorageHeartbeatAlone_Recovered()
    {
        var monitor = Monitor(null);
        await FailH1Async(monitor);
        await WaitRecoveredAsync(monitor);
        Assert.Equal(["detected", "fenced", "restarted"], (await IncidentAsync()).Timeline.Select(e => e.Kind).ToArray());
    }

    /// <summary>True while the process exists and is not a zombie.</summary>
    private static bool IsRunning(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        try
        {
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)..].FirstOrDefault() != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
