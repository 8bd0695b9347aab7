using System.Net;
using System.Text;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

public sealed class ServersApiTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private StratusClient C => cloud.Client;

    private async Task<ServerDto> ActiveAsync(string name)
    {
        var s = await C.CreateServerAsync(new CreateServerRequest(name, "tiny", "tiny", null, null, null, null));
        Assert.Equal("building", s.VmState);
        Assert.Equal("scheduling", s.Task);
        return await cloud.WaitAsync(s.Id, "active");
    }

    [Fact]
    public async Task Create_DefaultFlavor_BecomesActiveOnAHostWithAllocation()
    {
        var s = await ActiveAsync("create-1");
        Assert.NotNull(s.HostId);
        Assert.Equal("running", s.PowerState);
        Assert.Equal(1, s.Vcpus);
        var host = await C.GetHostAsync(s.HostId!);
        Assert.True(host.Used.RamMib >= 256);
        var placement = await C.PlacementAsync(s.Id);
        Assert.Equal("placed", placement.Outcome);
        Assert.Equal(s.HostId, placement.HostId);
        Assert.Equal(3, placement.FleetSize);
        Assert.Equal(s.HostId, placement.Top[0].HostId);
        Assert.NotEmpty(placement.Filters);
        var log = await C.ListActionsAsync(s.Id);
        var create = Assert.Single(log);
        Assert.Equal("create", create.Action);
        Assert.Equal("success", create.Result);
        Assert.NotNull(create.FinishedAt);
    }

    [Fact]
    public async Task Actions_FullLifecycle_EachInActionLog()
    {
        var s = await ActiveAsync("life-1");
        await C.ActAsync(s.Id, "stop");
        await cloud.WaitAsync(s.Id, "stopped");
        await C.ActAsync(s.Id, "start");
        await cloud.WaitAsync(s.Id, "active");
        await C.ActAsync(s.Id, "reboot", "soft");
        await cloud.WaitAsync(s.Id, "active");
        await C.ActAsync(s.Id, "reboot", "hard");
        await cloud.WaitAsync(s.Id, "active");
        await C.ActAsync(s.Id, "pause");
        var paused = await cloud.WaitAsync(s.Id, "paused");
        Assert.Equal("paused", paused.PowerState);
        await C.ActAsync(s.Id, "resume");
        await cloud.WaitAsync(s.Id, "active");
        await C.DeleteServerAsync(s.Id);
        var gone = await cloud.WaitAsync(s.Id, "deleted");
        Assert.Null(gone.Task);
        var log = await C.ListActionsAsync(s.Id);
        Assert.Equal(["create", "stop", "start", "reboot", "reboot --hard", "pause", "resume", "delete"], log.Select(a => a.Action).ToArray());
        Assert.All(log, a => Assert.Equal("success", a.Result));
        Assert.DoesNotContain(await C.ListServersAsync(name: "life-1"), x => x.Id == s.Id);
        Assert.DoesNotContain(await cloud.Store.ListAllocationsAsync(CancellationToken.None), a => a.InstanceId.ToString() == s.Id);
    }

    [Fact]
    public async Task Action_IllegalInState_409WithReasonAndNothingChanged()
    {
        var s = await ActiveAsync("illegal-1");
        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.ActAsync(s.Id, "start"));
        Assert.Equal(409, e.Status);
        Assert.Equal("illegal_state", e.Code);
        Assert.Contains("possible when the server is stopped", e.Message, StringComparison.Ordinal);
        var e2 = await Assert.ThrowsAsync<StratusApiException>(() => C.ActAsync(s.Id, "resume"));
        Assert.Equal("illegal_state", e2.Code);
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Action_ConcurrentConflicting_OneWinsOtherRefused()
    {
        var s = await ActiveAsync("race-1");
        var results = await Task.WhenAll(
            Try(() => C.ActAsync(s.Id, "stop")), Try(() => C.ActAsync(s.Id, "pause")), Try(() => C.ActAsync(s.Id, "reboot")), Try(() => C.ActAsync(s.Id, "stop")));
        Assert.Equal(1, results.Count(r => r is null));
        Assert.All(results.Where(r => r is not null), r => Assert.Equal(409, r!.Status));
        var log = await C.ListActionsAsync(s.Id);
        Assert.Equal(2, log.Count);
    }

    private static async Task<StratusApiException?> Try(Func<Task> f)
    {
        try
        {
            await f();
            return null;
        }
        catch (StratusApiException e)
        {
            return e;
        }
    }

    [Fact]
    public async Task Create_SameIdempotencyKey_SameServerOnce()
    {
        var req = new CreateServerRequest("idem-1", "tiny", "tiny", null, null, null, null);
        var a = await C.CreateServerAsync(req, "key-idem-1");
        var b = await C.CreateServerAsync(req with { Name = "idem-other" }, "key-idem-1");
        Assert.Equal(a.Id, b.Id);
        Assert.Equal("idem-1", b.Name);
        Assert.Single(await C.ListServersAsync(name: "idem-1"));
        Assert.Empty(await C.ListServersAsync(name: "idem-other"));
    }

    [Fact]
    public async Task Create_NameInUse_409()
    {
        await C.CreateServerAsync(new CreateServerRequest("dupname", "tiny", "tiny", null, null, null, null));
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(new CreateServerRequest("dupname", "tiny", "tiny", null, null, null, null)));
        Assert.Equal("name_in_use", e.Code);
    }

    [Fact]
    public async Task List_LimitAndMarker_PagesThroughAll()
    {
        for (var i = 0; i < 7; i++)
        {
            await C.CreateServerAsync(new CreateServerRequest($"page-{i}", "tiny", "tiny", null, null, null, null));
        }
        var all = await C.ListServersAsync();
        var seen = new List<string>();
        string? marker = null;
        do
        {
            var page = await C.ListServersPageAsync(limit: 3, marker: marker);
            Assert.True(page.Items.Count <= 3);
            seen.AddRange(page.Items.Select(s => s.Id));
            marker = page.NextMarker;
        }
        while (marker is not null);
        Assert.Equal(all.Select(s => s.Id), seen);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        var one = await C.ListServersPageAsync(name: "page-3");
        Assert.Equal("page-3", Assert.Single(one.Items).Name);
    }

    [Fact]
    public async Task List_FilterByState_OnlyThatState()
    {
        var s = await ActiveAsync("filter-1");
        await C.ActAsync(s.Id, "stop");
        await cloud.WaitAsync(s.Id, "stopped");
        var stopped = await C.ListServersAsync(state: "stopped");
        Assert.Contains(stopped, x => x.Id == s.Id);
        Assert.All(stopped, x => Assert.Equal("stopped", x.VmState));
    }

    [Fact]
    public async Task Console_RunningServer_ShowsBootOutput()
    {
        var s = await ActiveAsync("console-1");
        var con = await C.ConsoleAsync(s.Id);
        Assert.Contains("console-1 booted", con.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hosts_List_ShowsCapacityRatiosAndState()
    {
        var hosts = await C.ListHostsAsync();
        Assert.Equal(3, hosts.Count);
        Assert.All(hosts, h =>
        {
            Assert.Equal("up", h.State);
            Assert.Equal(4.0, h.AllocationRatios.Cpu);
            Assert.Equal(128, h.Capacity.Vcpus);
            Assert.Equal(131072, h.Capacity.RamMib);
            Assert.Equal(1024, h.Capacity.DiskGib);
        });
    }

    [Fact]
    public async Task Create_ManyServers_SpreadOverHosts()
    {
        var ids = new List<string>();
        for (var i = 0; i < 9; i++)
        {
            ids.Add((await C.CreateServerAsync(new CreateServerRequest($"spread-{i}", "tiny", "tiny", null, null, null, null))).Id);
        }
        var placed = new List<ServerDto>();
        foreach (var id in ids)
        {
            placed.Add(await cloud.WaitAsync(id, "active"));
        }
        Assert.Equal(3, placed.Select(p => p.HostId).Distinct().Count());
    }

    [Fact]
    public async Task Flavor_DeleteInUse_409AndKept()
    {
        await C.CreateFlavorAsync(new CreateFlavorRequest("inuse", 1, 128, 1, true));
        var s = await C.CreateServerAsync(new CreateServerRequest("flavor-user", "inuse", "tiny", null, null, null, null));
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.DeleteFlavorAsync("inuse"));
        Assert.Equal("flavor_in_use", e.Code);
        Assert.Equal("inuse", (await C.GetFlavorAsync("inuse")).Name);
        await cloud.WaitAsync(s.Id, "active");
        await C.DeleteServerAsync(s.Id);
        await cloud.WaitAsync(s.Id, "deleted");
        await C.DeleteFlavorAsync("inuse");
        await Assert.ThrowsAsync<StratusApiException>(() => C.GetFlavorAsync("inuse"));
    }

    [Fact]
    public async Task Create_TooBigForAnyHost_ErrorWithActionableReason()
    {
        await C.CreateFlavorAsync(new CreateFlavorRequest("huge", 8, 200 * 1024, 10, true));
        var s = await C.CreateServerAsync(new CreateServerRequest("huge-1", "huge", "tiny", null, null, null, null));
        var e = await cloud.WaitAsync(s.Id, "error");
        Assert.NotNull(e.Fault);
        Assert.StartsWith("no valid host: memory: largest free ", e.Fault, StringComparison.Ordinal);
        Assert.EndsWith(", asked 200 GiB", e.Fault, StringComparison.Ordinal);
        Assert.Null(e.HostId);
        var why = await C.PlacementAsync(s.Id);
        Assert.Equal("unschedulable_and_unresolvable", why.Outcome);
        Assert.Contains(why.Reasons, r => r.Contains("asked 200 GiB", StringComparison.Ordinal));
        Assert.Contains(why.Filters, f => f.Removed == 3);
        await C.DeleteServerAsync(s.Id);
        Assert.Equal("deleted", (await C.GetServerAsync(s.Id)).VmState);
    }

    [Fact]
    public async Task Keypair_ImportAndUse_ServerGetsSshForwardAndKeyName()
    {
        const string pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJX9baGEfNikbGHnStwiWauljzPbfr0osdn3AI/h9W6N test";
        var k = await C.ImportKeypairAsync(new ImportKeypairRequest("mykey", pub));
        Assert.Equal("SHA256:t9Kg0qUNAJ+tSrtL/BsvAaTyM+IuAAkgwAe7TUGxkWg", k.Fingerprint);
        Assert.Contains(await C.ListKeypairsAsync(), x => x.Name == "mykey");
        var s = await C.CreateServerAsync(new CreateServerRequest("keyed", "tiny", "tiny", null, "mykey", null, [new ForwardDto(0, 80)]));
        Assert.Equal("mykey", s.KeyName);
        var active = await cloud.WaitAsync(s.Id, "active");
        Assert.Equal([80, 22], active.Forwards.Select(f => f.GuestPort).ToArray());
        Assert.All(active.Forwards, f => Assert.NotEqual(0, f.HostPort)); // chosen by the host and kept
        var dup = await Assert.ThrowsAsync<StratusApiException>(() => C.ImportKeypairAsync(new ImportKeypairRequest("mykey", pub)));
        Assert.Equal("name_in_use", dup.Code);
        await C.DeleteKeypairAsync("mykey");
        Assert.DoesNotContain(await C.ListKeypairsAsync(), x => x.Name == "mykey");
    }

    [Fact]
    public async Task OpenApi_Document_ListsServerRoutes()
    {
        var doc = await cloud.Http.GetStringAsync("v1/openapi.json");
        Assert.Contains("\"/v1/servers\"", doc, StringComparison.Ordinal);
        Assert.Contains("\"/v1/servers/{reference}/actions\"", doc, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_Open_ReportsReady()
    {
        using var resp = await cloud.Http.GetAsync("v1/health");
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var h = await C.HealthAsync();
        Assert.True(h.Ready);
        Assert.Equal(3, h.HostsUp);
    }
}
