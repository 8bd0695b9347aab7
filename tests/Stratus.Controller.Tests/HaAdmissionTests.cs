using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Admission;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Controller.Tests;

/// <summary>HA admission decisions against a real store: which hosts and servers count, and when a change is no change.</summary>
public sealed class HaAdmissionTests : IAsyncLifetime
{
    private static readonly ResourceVector Big = ResourceVector.Of(32, 32 * 1024, 256);
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-adm-").FullName;
    private SqliteStateStore _store = null!;
    private HaAdmission _admission = null!;
    private readonly List<Host> _hosts = [];

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_dir, "s.db"));
        await _store.MigrateAsync(default);
        _admission = new HaAdmission(_store, new HaOptions { Tolerate = 1 });
        foreach (var name in new[] { "a", "b", "c" })
        {
            // 32 cores under the 4.0 CPU ratio, 128 GiB, 1 TiB: four Big servers each.
            _hosts.Add(await _store.RegisterHostAsync(new HostRegistrationRecord(name, ResourceVector.Of(32, 128 * 1024, 1024), ResourceVector.Zero,
                AllocationRatios.Default, "default", "tcg", "simulated", 1), T0, default));
        }
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    private async Task<Instance> WaitingAsync(string name, ResourceVector size, bool ha)
    {
        var i = new Instance(InstanceId.New(), name, FlavorId.New(), ImageId.New(), null, VmState.Building, InstanceTask.Scheduling, PowerState.NoState,
            size, null, null, 0, 1, T0, T0, T0, Ha: ha);
        await _store.CreateInstanceAsync(i, new InstanceAction(0, i.Id, "create", "test", T0, null, "pending", null), default);
        return i;
    }

    [Fact]
    public async Task Decide_ServersWaitingForAHostCount_NinthRefused()
    {
        for (var i = 0; i < 8; i++)
        {
            await WaitingAsync($"s{i}", Big, ha: true);
        }
        Assert.True((await _admission.DecideAsync([], null, default)).Report.Ok);
        var ninth = await _admission.DecideAsync([new FailoverServer(Big, true)], null, default);
        Assert.False(ninth.Admitted);
        Assert.Equal(await _store.GetAdmissionGenerationAsync(default), ninth.Generation);
    }

    [Fact]
    public async Task Decide_HostNotUp_OffersNoRoom()
    {
        for (var i = 0; i < 4; i++)
        {
            await WaitingAsync($"s{i}", Big, ha: true);
        }
        Assert.True((await _admission.DecideAsync([new FailoverServer(Big, true)], null, default)).Admitted);
        var c = _hosts[2];
        Assert.Equal(CasOutcome.Ok, await _store.SetHostStateAsync(c.Id, HostState.Maintenance, c.Generation, default));
        var report = await _admission.ReportAsync(null, default);
        Assert.Equal(["a", "b"], report.Hosts.Select(h => h.Name).ToArray());
        Assert.Equal(4, report.Whole!.Room); // one host left after the worst failure
        Assert.False((await _admission.DecideAsync([new FailoverServer(Big, true)], null, default)).Admitted);
    }

    [Fact]
    public async Task Decide_HaOnWhenTheReserveIsShort_AdmittedOnlyIfTheLargestHaServerStaysTheSame()
    {
        for (var i = 0; i < 9; i++)
        {
            await WaitingAsync($"s{i}", Big, ha: i < 8);
        }
        var plain = await WaitingAsync("plain", ResourceVector.Of(1, 256, 1), ha: false);
        var huge = await WaitingAsync("huge", ResourceVector.Of(64, 32 * 1024, 256), ha: false);
        Assert.False((await _admission.ReportAsync(null, default)).Ok); // short already (created without checks)
        // Switching HA on for a server no larger than the largest HA server changes nothing the rule reads.
        Assert.True((await _admission.DecideAsync([], plain.Id, default)).Admitted);
        // A larger one makes the slot larger: checked, and refused while short.
        Assert.False((await _admission.DecideAsync([], huge.Id, default)).Admitted);
        // Creating anything is checked.
        Assert.False((await _admission.DecideAsync([new FailoverServer(ResourceVector.Of(1, 256, 1), false)], null, default)).Admitted);
    }
}
