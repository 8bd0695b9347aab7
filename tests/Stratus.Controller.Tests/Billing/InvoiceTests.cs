using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Stratus.Controller.Billing;
using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests.Billing;

/// <summary>
/// The whole metering path on virtual time: the controller's real workflow (create, reconciler claim, agent reports,
/// stop, start, delete) against a real store, a clock the test moves, and invoices computed from what that recorded.
/// </summary>
public sealed class InvoiceTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-bill-").FullName;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 2, 28, 22, 0, 0, TimeSpan.Zero));
    private readonly ReconcileSignal _signal = new();
    private readonly Dictionary<InstanceId, PowerState> _actual = [];
    private SqliteStateStore _store = null!;
    private AgentHub _hub = null!;
    private Reconciler _rec = null!;
    private CloudService _cloud = null!;
    private BillingService _billing = null!;
    private HostId _host;

    private sealed class NullSession(HostId id) : IAgentSession
    {
        public HostId HostId => id;

        public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult("");

        /// <summary>The host does every resize at once (what it does is the drivers' tests' business, not billing's).</summary>
        public Task<ResizeReport> ResizeAsync(ResizeOrder order, CancellationToken cancellationToken) =>
            Task.FromResult(new ResizeReport(order.Phase == ResizePhase.Live, order.Phase == ResizePhase.Live, order.Vcpus, order.MemoryMib * 1024, 0, [$"{order.Phase}"],
                new ActualVm(order.Id, PowerState.Running, 1, [], 0, null, true)));
    }

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        var options = new ControllerOptions();
        _hub = new AgentHub(_store, _clock, _signal, NullLogger<AgentHub>.Instance);
        _rec = new Reconciler(_store, _hub, new SpreadPlacementEngine(), options, _signal, _clock, NullLogger<Reconciler>.Instance);
        _billing = new BillingService(_store, _clock, new StoreProjectCatalog(_store));
        _cloud = new CloudService(_store, options, _clock, _signal, _billing);
        (_host, _) = await _hub.RegisterAsync(new HostRegistration("h1", 16, 65536, 1000, "tcg", "simulated", "cpu", 1, 1, ProtocolVersion.Major), default);
        _hub.Attach(new NullSession(_host));
        Assert.True((await _cloud.CreateFlavorAsync(new CreateFlavorRequest("small", 1, 1024, 10, true), default)).Ok);
        Assert.True((await _cloud.CreateFlavorAsync(new CreateFlavorRequest("medium", 2, 4096, 20, true), default)).Ok);
        Assert.True((await _cloud.RegisterImageAsync(new CreateImageRequest("tiny", "qcow2", null, true), default)).Ok);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    private static DateTimeOffset Utc(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);

    private void At(string iso)
    {
        var t = Utc(iso);
        Assert.True(t >= _clock.GetUtcNow(), $"the test's clock only moves forward ({iso})");
        _clock.SetUtcNow(t);
    }

    /// <summary>The agent's level-triggered report of every VM it runs, in the state the test last gave it.</summary>
    private Task ReportAsync() => _hub.ReportAsync(new HostReport(_host, 1,
        [.. _actual.Select(kv => new ActualVm(kv.Key, kv.Value, 1, [], 0, null, true))], true), default);

    private async Task<InstanceId> CreateRunningAsync(string name, string flavor, string requestedAt, string runningAt)
    {
        At(requestedAt);
        var o = await _cloud.CreateServerAsync(new CreateServerRequest(name, flavor, "tiny", null, null, null, null), null, "test", default);
        Assert.True(o.Ok, o.Problem?.Detail);
        await _rec.RunOnceAsync(default); // placed and claimed: building, not billed
        At(runningAt);
        _actual[o.Value.Server.Id] = PowerState.Running;
        await ReportAsync();
        Assert.Equal(VmState.Active, (await _store.GetInstanceAsync(o.Value.Server.Id, default))!.VmState);
        return o.Value.Server.Id;
    }

    private async Task ActAsync(InstanceId id, string action, string requestedAt, string doneAt, PowerState power, VmState expected)
    {
        At(requestedAt);
        Assert.True((await _cloud.ActAsync(id.ToString(), new ServerActionRequest(action, null), "test", default)).Ok);
        At(doneAt);
        _actual[id] = power;
        await ReportAsync();
        Assert.Equal(expected, (await _store.GetInstanceAsync(id, default))!.VmState);
    }

    private async Task DeleteAsync(InstanceId id, string requestedAt, string goneAt)
    {
        At(requestedAt);
        Assert.True((await _cloud.DeleteServerAsync(id.ToString(), "test", default)).Ok);
        At(goneAt);
        _actual.Remove(id);
        await ReportAsync();
        Assert.Equal(VmState.Deleted, (await _store.GetInstanceAsync(id, default))!.VmState);
    }

    private async Task SetPricesAsync() =>
        Assert.True((await _billing.SetPricesAsync(new PriceSheetRequest("USD", 0.0350m, 0.0045m, 0.00012m, [new FlavorPriceDto("medium", 0.0990m)], null), default)).Ok);

    [Fact]
    public async Task Invoice_ServersRanStoppedStartedAndDeletedAtKnownTimes_EqualsTheHandComputedAmountToTheCent()
    {
        // Prices from the start: 0.0350 per vCPU-hour, 0.0045 per GiB-hour of memory, 0.00012 per GiB-hour of disk,
        // and "medium" servers pay 0.0990 per flavor-hour for their compute instead.
        await SetPricesAsync();

        // web (small: 1 vCPU, 1 GiB, 10 GiB disk): billed from the moment the agent reports it running.
        var web = await CreateRunningAsync("web", "small", "2026-02-28T22:00:00Z", "2026-02-28T22:00:07Z");
        // db (medium: 2 vCPU, 4 GiB, 20 GiB disk).
        var db = await CreateRunningAsync("db", "medium", "2026-03-01T06:00:00Z", "2026-03-01T06:00:10Z");
        await ActAsync(web, "stop", "2026-03-01T10:15:00Z", "2026-03-01T10:15:04Z", PowerState.Shutdown, VmState.Stopped);
        await ActAsync(web, "start", "2026-03-02T08:00:00Z", "2026-03-02T08:00:03Z", PowerState.Running, VmState.Active);
        await ActAsync(db, "stop", "2026-03-02T18:00:00Z", "2026-03-02T18:00:05Z", PowerState.Shutdown, VmState.Stopped);
        await DeleteAsync(web, "2026-03-03T12:30:30Z", "2026-03-03T12:30:35Z"); // billing ends at the delete request
        await ActAsync(db, "start", "2026-03-05T09:00:00Z", "2026-03-05T09:00:02Z", PowerState.Running, VmState.Active);
        await DeleteAsync(db, "2026-04-02T00:00:00Z", "2026-04-02T00:00:01Z");                // after the period: clipped at its end
        At("2026-04-10T00:00:00Z");

        var march = await _billing.InvoiceAsync(Metering.AdminProjectId, Utc("2026-03-01T00:00:00Z"), Utc("2026-04-01T00:00:00Z"), default);

        // By hand, March [03-01 00:00, 04-01 00:00):
        // web running: [03-01 00:00:00, 03-01 10:15:04) 36,904 s + [03-02 08:00:03, 03-03 12:30:30) 102,627 s = 139,531 s
        //     stopped: [03-01 10:15:04, 03-02 08:00:03) 78,299 s; disk: 139,531 + 78,299 = 217,830 s
        //   vcpu   0.0350 × 1  × 139,531 / 3600 = 1.35655… → 1.36
        //   memory 0.0045 × 1  × 139,531 / 3600 = 0.17441… → 0.17
        //   disk   0.00012 × 10 × 217,830 / 3600 = 0.07261  → 0.07
        // db running: [03-01 06:00:10, 03-02 18:00:05) 129,595 s + [03-05 09:00:02, 04-01 00:00:00) 2,300,398 s = 2,429,993 s
        //    stopped: [03-02 18:00:05, 03-05 09:00:02) 226,797 s; disk: 2,656,790 s
        //   flavor 0.0990 × 2,429,993 / 3600 = 66.82480… → 66.82
        //   disk   0.00012 × 20 × 2,656,790 / 3600 = 1.77119… → 1.77
        // total 1.36 + 0.17 + 0.07 + 66.82 + 1.77 = 70.19
        Assert.Equal(
            new[]
            {
                ("db", BilledResource.Flavor, 2_429_993m, 66.82m),
                ("db", BilledResource.Disk, 2_656_790m, 1.77m),
                ("web", BilledResource.Vcpu, 139_531m, 1.36m),
                ("web", BilledResource.Memory, 139_531m, 0.17m),
                ("web", BilledResource.Disk, 217_830m, 0.07m),
            },
            march.Lines.Select(l => (l.ServerName, l.Resource, l.Seconds, l.Amount)));
        Assert.Equal(70.19m, march.Total);
        Assert.Equal("USD", march.Currency);
        Assert.True(march.Final);

        // February holds only web's first 7,193 s ([02-28 22:00:07, 03-01 00:00:00)): nothing is counted twice.
        // vcpu 0.035 × 7193 / 3600 = 0.0699… → 0.07; memory 0.0045 × 7193 / 3600 = 0.00899… → 0.01; disk 0.0024 → 0.00
        var february = await _billing.InvoiceAsync(Metering.AdminProjectId, Utc("2026-02-01T00:00:00Z"), Utc("2026-03-01T00:00:00Z"), default);
        Assert.Equal(new[] { 0.07m, 0.01m, 0.00m }, february.Lines.Select(l => l.Amount));
        Assert.Equal(0.08m, february.Total);

        // And the meter agrees with the ledger at the end.
        Assert.Empty((await _billing.ReconcileAsync(false, default)).Discrepancies);
    }

    [Fact]
    public async Task Invoice_ResizeWhileRunning_BillsEachSizeFromTheMomentItTookEffect()
    {
        await SetPricesAsync();
        var id = await CreateRunningAsync("grow", "small", "2026-03-10T00:00:00Z", "2026-03-10T00:00:00Z");
        At("2026-03-10T02:00:00Z");
        var cur = (await _store.GetInstanceAsync(id, default))!;
        Assert.Equal(CasOutcome.Ok, await _store.ResizeAsync(cur with { Resources = ResourceVector.Of(4, 8192, 10), UpdatedAt = _clock.GetUtcNow() }, null, null, default));
        At("2026-03-10T03:00:00Z");

        var inv = await _billing.InvoiceAsync(Metering.AdminProjectId, Utc("2026-03-10T00:00:00Z"), Utc("2026-03-11T00:00:00Z"), default);
        // vcpu: 1 vCPU × 2 h + 4 vCPU × 1 h = 6 vCPU-hours × 0.035 = 0.21; memory: 1 GiB × 2 h + 8 GiB × 1 h = 10 × 0.0045 = 0.045 → 0.05
        var vcpu = inv.Lines.Single(l => l.Resource == BilledResource.Vcpu);
        Assert.Equal((6m, 0.21m), (vcpu.Quantity, vcpu.Amount));
        var memory = inv.Lines.Single(l => l.Resource == BilledResource.Memory);
        Assert.Equal((10m, 0.05m), (memory.Quantity, memory.Amount));
        Assert.Equal(2, (await _store.ListServerUsageAsync(id, default)).Count);
    }

    [Fact]
    public async Task Invoice_ServerResizedTwice_LiveThenCold_EqualsTheHandComputedAmountToTheCent()
    {
        await SetPricesAsync();
        Assert.True((await _cloud.CreateFlavorAsync(new CreateFlavorRequest("large", 4, 8192, 40, true), default)).Ok);
        var resizer = new Resize.Resizer(_store, _hub, _rec, new Migrator(_store, _hub, _rec, _signal, new ControllerOptions(), _clock, NullLogger<Migrator>.Instance),
            _signal, _clock, NullLogger<Resize.Resizer>.Instance);
        var id = await CreateRunningAsync("elastic", "small", "2026-03-10T00:00:00Z", "2026-03-10T00:00:00Z");

        At("2026-03-10T02:00:00Z"); // small → medium, live (1→2 vCPUs, 1→4 GiB within the 4× ceilings)
        var live = await resizer.ResizeAsync("elastic", new ResizeRequest("medium", null), "test", null, default);
        Assert.True(live.Ok, live.Problem?.Detail);
        Assert.Equal("resized", live.Value!.State);
        At("2026-03-10T05:00:00Z"); // medium → large, cold (8 GiB passes the 4 GiB ceiling), confirmed half an hour later
        var cold = await resizer.ResizeAsync("elastic", new ResizeRequest("large", null), "test", null, default);
        Assert.True(cold.Ok, cold.Problem?.Detail);
        Assert.Equal("verify_resize", cold.Value!.State);
        At("2026-03-10T05:30:00Z");
        Assert.True((await resizer.ConfirmAsync("elastic", "test", default)).Ok);
        At("2026-03-10T06:00:00Z");

        var inv = await _billing.InvoiceAsync(Metering.AdminProjectId, Utc("2026-03-10T00:00:00Z"), Utc("2026-03-11T00:00:00Z"), default);
        // small [00:00, 02:00), medium [02:00, 05:00), large [05:00, 06:00):
        //   vcpu   (1 × 2 h + 4 × 1 h) = 6 vCPU-h × 0.0350 = 0.21
        //   memory (1 GiB × 2 h + 8 GiB × 1 h) = 10 GiB-h × 0.0045 = 0.045 → 0.05
        //   flavor medium 3 h × 0.0990 = 0.297 → 0.30 (replaces its vCPU and memory)
        //   disk   (10 × 2 + 20 × 3 + 40 × 1) = 120 GiB-h × 0.00012 = 0.0144 → 0.01
        // total 0.21 + 0.05 + 0.30 + 0.01 = 0.57
        Assert.Equal(0.21m, inv.Lines.Where(l => l.Resource == BilledResource.Vcpu).Sum(l => l.Amount));
        Assert.Equal(0.05m, inv.Lines.Where(l => l.Resource == BilledResource.Memory).Sum(l => l.Amount));
        Assert.Equal(0.30m, inv.Lines.Where(l => l.Resource == BilledResource.Flavor).Sum(l => l.Amount));
        Assert.Equal(0.01m, inv.Lines.Where(l => l.Resource == BilledResource.Disk).Sum(l => l.Amount));
        Assert.Equal(0.57m, inv.Total);
        Assert.Equal(3, (await _store.ListServerUsageAsync(id, default)).Count);
        var actions = (await _store.ListActionsAsync(id, default)).Select(a => $"{a.Action}:{a.Result}").ToList();
        Assert.Contains("resize-live:success", actions);
        Assert.Contains("resize-cold:success", actions);
        Assert.Contains("confirm-resize:success", actions);
        Assert.Empty((await _billing.ReconcileAsync(false, default)).Discrepancies);
    }

    [Fact]
    public async Task Budget_SpendingReachesThresholds_WarnsThenBlocksNewServersAndWritesNothing()
    {
        // 1 vCPU-hour = 1.00; nothing else costs anything.
        Assert.True((await _billing.SetPricesAsync(new PriceSheetRequest("USD", 1m, 0m, 0m, null, null), default)).Ok);
        At("2026-03-01T00:00:00Z");
        Assert.True((await _billing.SetBudgetAsync(new BudgetRequest(null, 10m, 50, true), default)).Ok);
        await CreateRunningAsync("a", "small", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z");

        At("2026-03-01T04:59:00Z"); // 4.98: under 50 %
        var status = (await _billing.BudgetStatusAsync(Metering.AdminProjectId, default))!;
        Assert.Equal((BudgetState.Ok, 4.98m), (status.State, status.Spent));
        Assert.Null(await _billing.BudgetWarningAsync(Metering.AdminProjectId, default));

        At("2026-03-01T05:00:00Z"); // 5.00: the warning threshold
        Assert.Equal(BudgetState.Warning, (await _billing.BudgetStatusAsync(Metering.AdminProjectId, default))!.State);
        Assert.Contains("50% of its budget of 10.00 USD", await _billing.BudgetWarningAsync(Metering.AdminProjectId, default));
        Assert.True((await _cloud.CreateServerAsync(new CreateServerRequest("b", "small", "tiny", null, null, null, null), null, "test", default)).Ok);

        At("2026-03-01T10:00:00Z"); // 10.00: the amount is reached, and the budget blocks
        var before = await _store.DumpAsync(default);
        var refused = await _cloud.CreateServerAsync(new CreateServerRequest("c", "small", "tiny", null, null, null, null), null, "test", default);
        Assert.Equal(("budget_exceeded", 409), (refused.Problem?.Code, refused.Problem?.Status));
        Assert.Contains("reaching its budget of 10.00 USD", refused.Problem!.Detail);
        Assert.Equal(before, await _store.DumpAsync(default));

        // Without block it only warns; a new month starts from zero.
        Assert.True((await _billing.SetBudgetAsync(new BudgetRequest(null, 10m, 50, false), default)).Ok);
        Assert.True((await _cloud.CreateServerAsync(new CreateServerRequest("c", "small", "tiny", null, null, null, null), null, "test", default)).Ok);
        Assert.True((await _billing.SetBudgetAsync(new BudgetRequest(null, 10m, 50, true), default)).Ok);
        At("2026-04-01T00:00:00Z");
        var april = (await _billing.BudgetStatusAsync(Metering.AdminProjectId, default))!;
        Assert.Equal((BudgetState.Ok, 0.00m), (april.State, april.Spent));
    }
}
