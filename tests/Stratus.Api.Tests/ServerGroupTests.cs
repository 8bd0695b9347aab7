using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>Server groups through the real create path: the rule holds across hosts, concurrent creates cannot break it, and a refusal says why.</summary>
public sealed class ServerGroupTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private StratusClient C => cloud.Client;

    private async Task<List<ServerDto>> CreateAllAsync(string prefix, string group, int n)
    {
        // All at once: the claims race, and the group's generation makes the losers re-plan.
        var created = await Task.WhenAll(Enumerable.Range(0, n).Select(i =>
            C.CreateServerAsync(new CreateServerRequest($"{prefix}-{i}", "tiny", "tiny", null, null, null, null) { Group = group })));
        var settled = new List<ServerDto>();
        foreach (var s in created)
        {
            settled.Add(await WaitSettledAsync(s.Id));
        }
        return settled;
    }

    private async Task<ServerDto> WaitSettledAsync(string id)
    {
        for (var i = 0; i < 1000; i++)
        {
            var s = await C.GetServerAsync(id);
            if (s.Task is null)
            {
                return s;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException(id);
    }

    [Fact]
    public async Task AntiAffinity_FourConcurrentCreatesOnThreeHosts_ThreeSpreadOneRefusedWithReason()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("web-aa", "anti-affinity", null));
        var servers = await CreateAllAsync("aa", "web-aa", 4);
        var active = servers.Where(s => s.VmState == "active").ToList();
        Assert.Equal(3, active.Count);
        Assert.Equal(3, active.Select(s => s.HostId).Distinct().Count());
        var refused = Assert.Single(servers, s => s.VmState == "error");
        Assert.Equal("no valid host: anti-affinity group web-aa: 3 of 3 hosts already hold a member", refused.Fault);
        Assert.All(servers, s => Assert.NotNull(s.GroupId));
    }

    [Fact]
    public async Task Affinity_ConcurrentCreates_AllOnOneHost()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("db-af", "affinity", null));
        var servers = await CreateAllAsync("af", "db-af", 5);
        Assert.All(servers, s => Assert.Equal("active", s.VmState));
        Assert.Single(servers.Select(s => s.HostId).Distinct());
    }

    [Fact]
    public async Task AntiAffinity_MaxTwoPerHost_SixFitSeventhRefused()
    {
        await C.CreateGroupAsync(new CreateGroupRequest("pairs", "anti-affinity", 2));
        var servers = await CreateAllAsync("pr", "pairs", 7);
        var active = servers.Where(s => s.VmState == "active").ToList();
        Assert.Equal(6, active.Count);
        Assert.All(active.GroupBy(s => s.HostId), g => Assert.Equal(2, g.Count()));
    }

    [Fact]
    public async Task Group_BadInputAndInUse_Refused()
    {
        var e1 = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateGroupAsync(new CreateGroupRequest("g1", "sticky", null)));
        Assert.Equal("validation_failed", e1.Code);
        var e2 = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateGroupAsync(new CreateGroupRequest("g1", "affinity", 3)));
        Assert.Equal("validation_failed", e2.Code);
        var e3 = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(new CreateServerRequest("nogroup", "tiny", "tiny", null, null, null, null) { Group = "missing" }));
        Assert.Equal("validation_failed", e3.Code);
        await C.CreateGroupAsync(new CreateGroupRequest("busy", "soft-anti-affinity", null));
        var s = await C.CreateServerAsync(new CreateServerRequest("busy-1", "tiny", "tiny", null, null, null, null) { Group = "busy" });
        var e4 = await Assert.ThrowsAsync<StratusApiException>(() => C.DeleteGroupAsync("busy"));
        Assert.Equal("group_in_use", e4.Code);
        await WaitSettledAsync(s.Id);
        await C.DeleteServerAsync(s.Id);
        await cloud.WaitAsync(s.Id, "deleted");
        await C.DeleteGroupAsync("busy");
        Assert.DoesNotContain(await C.ListGroupsAsync(), g => g.Name == "busy");
    }
}
