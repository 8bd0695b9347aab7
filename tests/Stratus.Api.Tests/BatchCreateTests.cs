using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>`server create … --count N`: one request, all or nothing when asked, group rules among the batch.</summary>
public sealed class BatchCreateTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private StratusClient C => cloud.Client;

    private async Task<List<ServerDto>> SettleAsync(IEnumerable<ServerDto> servers)
    {
        var list = new List<ServerDto>();
        foreach (var s in servers)
        {
            var cur = s;
            for (var i = 0; i < 1000 && (cur.Task is not null || cur.VmState == "building"); i++)
            {
                await Task.Delay(20);
                cur = await C.GetServerAsync(s.Id);
            }
            list.Add(cur);
        }
        return list;
    }

    [Fact]
    public async Task Count_AllOrNothingWithAntiAffinity_ThreeSpreadAcrossThreeHosts()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("b-aa", "anti-affinity", null));
        var created = await C.CreateServersAsync(new CreateServerRequest("web", "tiny", "tiny", null, null, null, null) { Group = "b-aa", Count = 3, AllOrNothing = true });
        Assert.Equal(["web-1", "web-2", "web-3"], created.Select(s => s.Name).ToArray());
        var settled = await SettleAsync(created);
        Assert.All(settled, s => Assert.Equal("active", s.VmState));
        Assert.Equal(3, settled.Select(s => s.HostId).Distinct().Count());
    }

    [Fact]
    public async Task Count_AllOrNothingCannotFit_NoneCreatedOnHostsAndReasonGiven()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("b-aa4", "anti-affinity", null));
        var before = await cloud.Store.ListAllocationsAsync(CancellationToken.None);
        var created = await C.CreateServersAsync(new CreateServerRequest("four", "tiny", "tiny", null, null, null, null) { Group = "b-aa4", Count = 4, AllOrNothing = true });
        var settled = await SettleAsync(created);
        Assert.All(settled, s =>
        {
            Assert.Equal("error", s.VmState);
            Assert.Null(s.HostId);
            Assert.StartsWith("no valid host for the batch of 4 (all or nothing): ", s.Fault, StringComparison.Ordinal);
            Assert.Contains("anti-affinity group b-aa4", s.Fault, StringComparison.Ordinal);
        });
        Assert.Equal(before.Count, (await cloud.Store.ListAllocationsAsync(CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Count_AllOrNothingFirstMemberCannotFit_WholeBatchRefused()
    {
        // Regression: the batch decision stops at the first refusal, so later members have no result.
        await C.CreateFlavorAsync(new CreateFlavorRequest("b-huge", 8, 200 * 1024, 10, true));
        var created = await C.CreateServersAsync(new CreateServerRequest("huge", "b-huge", "tiny", null, null, null, null) { Count = 3, AllOrNothing = true });
        var settled = await SettleAsync(created);
        Assert.All(settled, s => Assert.Equal("error", s.VmState));
        Assert.All(settled, s => Assert.Contains("asked 200 GiB", s.Fault, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Count_WithoutAllOrNothing_PlacesWhatFits()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("b-aa5", "anti-affinity", null));
        var created = await C.CreateServersAsync(new CreateServerRequest("some", "tiny", "tiny", null, null, null, null) { Group = "b-aa5", Count = 4 });
        var settled = await SettleAsync(created);
        Assert.Equal(3, settled.Count(s => s.VmState == "active"));
        Assert.Single(settled, s => s.VmState == "error");
    }

    [Fact]
    public async Task Count_NameTakenOrOutOfRange_NothingCreated()
    {
        await C.CreateServerAsync(new CreateServerRequest("dup-2", "tiny", "tiny", null, null, null, null));
        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServersAsync(new CreateServerRequest("dup", "tiny", "tiny", null, null, null, null) { Count = 3 }));
        Assert.Equal("name_in_use", e.Code);
        var e2 = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServersAsync(new CreateServerRequest("many", "tiny", "tiny", null, null, null, null) { Count = 101 }));
        Assert.Equal("validation_failed", e2.Code);
        Assert.Empty(await C.ListServersAsync(name: "dup-1"));
        Assert.Empty(await C.ListServersAsync(name: "many-1"));
    }
}
