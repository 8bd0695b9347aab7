using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Controller.Consolidation;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Consolidation;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests.Consolidation;

/// <summary>The executor's limits, standby and wake against a real store; migrations by a fake that writes the store as the migrator does.</summary>
public sealed class ConsolidationTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-cons-").FullName;
    private SqliteStateStore _store = null!;
    private AgentHub _hub = null!;
    private Reconciler _rec = null!;
    private CloudService _cloud = null!;
    private readonly ReconcileSignal _signal = new();
    private readonly List<HostId> _hosts = [];

    private sealed class NullSession(HostId id) : IAgentSession
    {
        public HostId HostId => id;

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");
    }

    /// <summary>Begins and finishes migrations in the store like the migrator, after a short delay; records concurrency.</summary>
    private sealed class FakeMigrations(IStateStore store) : IMigrationStarter
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<InstanceId, Task> _tasks = [];
        private readonly Dictionary<HostId, int> _perHost = [];
        private int _running;

        public int Peak { get; private set; }

        public int PeakPerHost { get; private set; }

        public async Task<Outcome<Instance>> StartAsync(InstanceId server, HostId to, CancellationToken cancellationToken)
        {
            var inst = (await store.GetInstanceAsync(server, cancellationToken))!;
            var now = DateTimeOffset.UtcNow;
            var rec = new MigrationRecord(server, inst.HostId!.Value, to, "live", inst.Resources, now);
            // As Migrator does: a claim that lost a race on the destination's generation re-reads it and retries.
            var o = CasOutcome.Conflict;
            for (var attempt = 0; attempt < 20 && o == CasOutcome.Conflict; attempt++)
            {
                var dest = (await store.GetHostAsync(to, cancellationToken))!;
                o = await store.BeginMigrationAsync(inst with { Task = InstanceTask.Migrating }, rec, dest.Generation,
                    new InstanceAction(0, server, "live-migrate", "test", now, null, "pending", null), cancellationToken);
            }
            if (o != CasOutcome.Ok)
            {
                return Problem.Conflict("conflict", o.ToString());
            }
            lock (_lock)
            {
                Peak = Math.Max(Peak, ++_running);
                foreach (var h in new[] { rec.Source, rec.Destination })
                {
                    _perHost[h] = _perHost.GetValueOrDefault(h) + 1;
                    PeakPerHost = Math.Max(PeakPerHost, _perHost[h]);
                }
                _tasks[server] = Task.Run(async () =>
                {
                    await Task.Delay(50);
                    var fresh = (await store.GetInstanceAsync(server, default))!;
                    lock (_lock)
                    {
                        _running--;
                        _perHost[rec.Source]--;
                        _perHost[rec.Destination]--;
                    }
                    await store.FinishMigrationAsync(fresh with { HostId = to, Task = null }, true, new ActionFinish("success", "moved", DateTimeOffset.UtcNow), default);
                }, CancellationToken.None);
            }
            return (await store.GetInstanceAsync(server, cancellationToken))!;
        }

        public Task WhenDoneAsync(InstanceId server)
        {
            lock (_lock)
            {
                return _tasks.GetValueOrDefault(server) ?? Task.CompletedTask;
            }
        }
    }

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var options = new ControllerOptions();
        _hub = new AgentHub(_store, TimeProvider.System, _signal, NullLogger<AgentHub>.Instance);
        _rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, _signal, TimeProvider.System, NullLogger<Reconciler>.Instance);
        _cloud = new CloudService(_store, options, TimeProvider.System, _signal);
        await _cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), default);
        await _cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default);
        await AddHostAsync("h1");
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    private async Task<HostId> AddHostAsync(string name)
    {
        var (id, _) = await _hub.RegisterAsync(new HostRegistration(name, 4, 4096, 100, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _hub.Attach(new NullSession(id));
        _hosts.Add(id);
        return id;
    }

    /// <summary>Creates servers, places them (all on the hosts registered so far) and reports them running.</summary>
    private async Task<List<Instance>> ActiveAsync(int n)
    {
        var ids = new List<InstanceId>();
        for (var i = 0; i < n; i++)
        {
            var o = await _cloud.CreateServerAsync(new CreateServerRequest($"s{ids.Count}-{Guid.NewGuid():N}"[..12], "tiny", "tiny", null, null, null, null), null, "test", default);
            ids.Add(o.Value.Server.Id);
        }
        await _rec.RunOnceAsync(default);
        foreach (var g in (await Task.WhenAll(ids.Select(id => _store.GetInstanceAsync(id, default)))).GroupBy(i => i!.HostId!.Value))
        {
            await _hub.ReportAsync(new HostReport(g.Key, 1, [.. g.Select(i => new ActualVm(i!.Id, PowerState.Running, 1, [], 0, null, true))], false), default);
        }
        return [.. (await Task.WhenAll(ids.Select(id => _store.GetInstanceAsync(id, default)))).Select(i => i!)];
    }

    private PlanExecutor Executor(IMigrationStarter m, int perHost, int cluster) =>
        new(_store, m, new ControllerOptions { MaxMigrationsPerHost = perHost }, new ConsolidationOptions { MaxConcurrentMigrations = cluster }, TimeProvider.System,
            NullLogger<PlanExecutor>.Instance) { PollInterval = TimeSpan.FromMilliseconds(10) };

    private PowerManager Power(SimulatedPowerDriver driver, ConsolidationOptions? o = null) =>
        new(_store, driver, o ?? new ConsolidationOptions(), _signal, TimeProvider.System, NullLogger<PowerManager>.Instance);

    [Theory]
    [InlineData(1, 4, 1, 1)]
    [InlineData(2, 1, 1, 1)]
    [InlineData(2, 4, 2, 2)]
    public async Task Execute_Limits_NeverExceeded_EveryMoveFinishes(int perHost, int cluster, int expectedPeak, int expectedPeakPerHost)
    {
        var servers = await ActiveAsync(4);
        var h2 = await AddHostAsync("h2");
        var fake = new FakeMigrations(_store);
        var moves = servers.Select(s => new PlannedMove(s.Id, s.Name, _hosts[0], h2, "test")).ToList();
        var r = await Executor(fake, perHost, cluster).ExecuteAsync(moves, default);
        Assert.Equal((4, 4, 0, 0), (r.Started, r.Finished, r.Failed, r.Skipped));
        Assert.Equal(expectedPeak, fake.Peak);
        Assert.Equal(expectedPeakPerHost, fake.PeakPerHost);
        Assert.All(servers, s => Assert.Equal(h2, _store.GetInstanceAsync(s.Id, default).Result!.HostId));
    }

    [Fact]
    public async Task Execute_BusyServerOrHostNotUp_SkippedWithReason()
    {
        var servers = await ActiveAsync(2);
        var h2 = await AddHostAsync("h2");
        var h3 = await AddHostAsync("h3");
        var busy = servers[0] with { Task = InstanceTask.Rebooting };
        Assert.Equal(CasOutcome.Ok, await _store.UpdateInstanceAsync(busy, null, null, default));
        var h3row = (await _store.GetHostAsync(h3, default))!;
        Assert.Equal(CasOutcome.Ok, await _store.SetHostStateAsync(h3, HostState.Maintenance, h3row.Generation, default));
        var fake = new FakeMigrations(_store);
        var r = await Executor(fake, 2, 4).ExecuteAsync(
            [new PlannedMove(servers[0].Id, servers[0].Name, _hosts[0], h2, "t"), new PlannedMove(servers[1].Id, servers[1].Name, _hosts[0], h3, "t")], default);
        Assert.Equal((0, 0, 0, 2), (r.Started, r.Finished, r.Failed, r.Skipped));
        Assert.Contains(r.Decisions, d => d.Reason.Contains("busy", StringComparison.Ordinal));
        Assert.Contains(r.Decisions, d => d.Reason.Contains("maintenance", StringComparison.Ordinal));
        Assert.Equal(0, fake.Peak);
    }

    [Fact]
    public async Task Standby_HostWithServers_Refused_EmptyHost_StandbyAndUnclaimable()
    {
        await ActiveAsync(1);
        var h2 = await AddHostAsync("h2");
        var driver = new SimulatedPowerDriver(TimeProvider.System);
        var power = Power(driver);
        Assert.Equal("host has servers", await power.StandbyAsync(_hosts[0], "t", default));
        Assert.Null(await power.StandbyAsync(h2, "empty", default));
        var h = (await _store.GetHostAsync(h2, default))!;
        Assert.Equal(HostState.Standby, h.State);
        Assert.Equal([("h2", "off")], driver.Calls.Select(c => (c.Host, c.Action)));
        // Nothing is placed on a standby host: a new server goes to h1 even though h2 is emptier.
        var placed = await ActiveAsync(1);
        Assert.Equal(_hosts[0], placed[0].HostId);
        Assert.Null(await power.WakeAsync(h2, "needed", default));
        Assert.Equal(HostState.Up, (await _store.GetHostAsync(h2, default))!.State);
        Assert.Equal([true, false], power.History.Select(t => t.Standby));
    }

    [Fact]
    public async Task Standby_PowerOffFails_HostStaysUp()
    {
        var h2 = await AddHostAsync("h2");
        var driver = new SimulatedPowerDriver(TimeProvider.System);
        driver.Failing["h2"] = true;
        var why = await Power(driver).StandbyAsync(h2, "t", default);
        Assert.StartsWith("power-off failed", why, StringComparison.Ordinal);
        Assert.Equal(HostState.Up, (await _store.GetHostAsync(h2, default))!.State);
    }

    [Fact]
    public async Task Reconciler_NoRoom_WakesStandbyHost_ThenPlacesServer()
    {
        var h2 = await AddHostAsync("h2");
        var driver = new SimulatedPowerDriver(TimeProvider.System);
        var power = Power(driver, new ConsolidationOptions { WakeSettle = TimeSpan.Zero });
        Assert.Null(await power.StandbyAsync(h2, "t", default));
        var rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), new ControllerOptions(), _signal, TimeProvider.System, NullLogger<Reconciler>.Instance, power);
        await _cloud.CreateFlavorAsync(new CreateFlavorRequest("big", 1, 3000, 1, true), default);
        var first = (await _cloud.CreateServerAsync(new CreateServerRequest("big-1", "big", "tiny", null, null, null, null), null, "test", default)).Value.Server;
        var second = (await _cloud.CreateServerAsync(new CreateServerRequest("big-2", "big", "tiny", null, null, null, null), null, "test", default)).Value.Server;
        async Task<List<Instance>> Both() => [(await _store.GetInstanceAsync(first.Id, default))!, (await _store.GetInstanceAsync(second.Id, default))!];
        await rec.RunOnceAsync(default); // one lands on h1; the other finds no room and wakes h2
        var after = await Both();
        Assert.Single(after, i => i.Task == InstanceTask.Scheduling && i.HostId is null);
        Assert.Single(after, i => i.HostId == _hosts[0]);
        await power.WhenWokenAsync();
        Assert.Equal(HostState.Up, (await _store.GetHostAsync(h2, default))!.State);
        await rec.RunOnceAsync(default);
        Assert.Equal(new HashSet<HostId> { _hosts[0], h2 }, (await Both()).Select(i => i.HostId!.Value).ToHashSet());
        Assert.Equal(["off", "on"], driver.Calls.Select(c => c.Action));
    }

    [Fact]
    public async Task Reconciler_NoRoom_NoStandbyHost_FailsAsBefore()
    {
        var power = Power(new SimulatedPowerDriver(TimeProvider.System), new ConsolidationOptions { WakeSettle = TimeSpan.Zero });
        var rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), new ControllerOptions(), _signal, TimeProvider.System, NullLogger<Reconciler>.Instance, power);
        await _cloud.CreateFlavorAsync(new CreateFlavorRequest("huge", 1, 100_000, 1, true), default);
        var s = (await _cloud.CreateServerAsync(new CreateServerRequest("huge-1", "huge", "tiny", null, null, null, null), null, "test", default)).Value.Server;
        await rec.RunOnceAsync(default);
        Assert.Equal(VmState.Error, (await _store.GetInstanceAsync(s.Id, default))!.VmState);
    }

    [Fact]
    public void Integrate_MeteredAndStandbyMinutes_ExpectedEnergy()
    {
        var from = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var until = from.AddHours(3);
        // Hour 1: 100 % CPU (one raw sample a minute); hour 2: standby (samples there are ignored); hour 3: nothing.
        var points = Enumerable.Range(0, 120).Select(m => new MetricPoint(from.AddMinutes(m), 100, 100, 0, 0, 0, 0, 0, 0, 0, 1)).ToList();
        var e = EnergyReporter.Integrate(new MetricSeries(MetricResolution.Raw, points), from, until, [new StandbySpan(from.AddHours(1), from.AddHours(2))],
            new LinearPowerModel(100, 200), 5);
        Assert.Equal(0.205, e.Kwh, 9); // 200 Wh + 5 Wh
        Assert.Equal((1.0, 1.0, 1.0), (Math.Round(e.MeteredHours, 9), Math.Round(e.StandbyHours, 9), Math.Round(e.UnmeteredHours, 9)));
        Assert.Equal(100, e.AverageCpuPercent, 9);
    }

    [Fact]
    public void StandbySpans_FromTransitions_AndCurrentState()
    {
        var from = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var h = new Host(HostId.New(), "h", HostState.Up, default, default, default, default, 0, 0, "z", "tcg", "simulated", null, null, from);
        var history = new List<PowerTransition> { new(h.Id, from.AddHours(1), true, "t"), new(h.Id, from.AddHours(2), false, "t"), new(h.Id, from.AddHours(20), true, "t") };
        var spans = EnergyReporter.StandbySpans(h with { State = HostState.Standby }, history, from, from.AddDays(1));
        Assert.Equal([new StandbySpan(from.AddHours(1), from.AddHours(2)), new StandbySpan(from.AddHours(20), from.AddDays(1))], spans);
        Assert.Equal([new StandbySpan(from, from.AddDays(1))], EnergyReporter.StandbySpans(h with { State = HostState.Standby }, [], from, from.AddDays(1)));
    }

    [Theory]
    [InlineData("stratus", typeof(StratusConsolidationPlanner))]
    [InlineData("lr-mmt", typeof(PowerAwareConsolidationPlanner))]
    [InlineData("THR-MMT", typeof(PowerAwareConsolidationPlanner))]
    public void Policies_ByName_SamePlannersAsTheSimulator(string name, Type expected)
    {
        Assert.True(ConsolidationPolicies.IsKnown(name));
        Assert.IsType(expected, ConsolidationPolicies.Create(name));
        Assert.False(ConsolidationPolicies.IsKnown("best-fit"));
        Assert.Contains(new ConsolidationOptions { Policy = "nope" }.Validate(), e => e.Contains("nope", StringComparison.Ordinal));
    }
}
