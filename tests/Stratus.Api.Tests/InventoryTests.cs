using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>Aggregates, availability zones and host traits steer placement through the real create path.</summary>
public sealed class InventoryTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private StratusClient C => cloud.Client;

    private async Task<ServerDto> SettleAsync(CreateServerRequest r)
    {
        var s = await C.CreateServerAsync(r);
        for (var i = 0; i < 1000; i++)
        {
            s = await C.GetServerAsync(s.Id);
            if (s.Task is null)
            {
                return s;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException(s.Name);
    }

    private static CreateServerRequest Req(string name, string? zone = null, params string[] traits) =>
        new(name, "tiny", "tiny", null, null, zone, null) { Traits = traits.Length == 0 ? null : traits };

    [Fact]
    public async Task Zone_FromAggregate_ServerLandsThereAndUnknownZoneExplained()
    {
        var agg = await C.CreateAggregateAsync(new AggregateRequest("rack-b", "az2", new Dictionary<string, string> { ["ssd"] = "true" }));
        Assert.Equal("az2", agg.Zone);
        await C.AddAggregateHostAsync("rack-b", "host-3");
        Assert.Equal("az2", (await C.GetHostAsync("host-3")).Zone);
        Assert.Equal("default", (await C.GetHostAsync("host-1")).Zone);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("host-3", (await SettleAsync(Req($"z2-{i}", "az2"))).HostName);
        }
        var nowhere = await SettleAsync(Req("z9", "az9"));
        Assert.Equal("error", nowhere.VmState);
        Assert.Contains("zone 'az9'", nowhere.Fault, StringComparison.Ordinal);

        var e = await Assert.ThrowsAsync<StratusApiException>(async () =>
        {
            await C.CreateAggregateAsync(new AggregateRequest("rack-c", "az3", null));
            await C.AddAggregateHostAsync("rack-c", "host-3");
        });
        Assert.Equal("zone_conflict", e.Code);
        var notEmpty = await Assert.ThrowsAsync<StratusApiException>(() => C.DeleteAggregateAsync("rack-b"));
        Assert.Equal("aggregate_not_empty", notEmpty.Code);
        await C.RemoveAggregateHostAsync("rack-b", "host-3");
        await C.DeleteAggregateAsync("rack-b");
        Assert.Equal("default", (await C.GetHostAsync("host-3")).Zone);
    }

    [Fact]
    public async Task ZoneProfile_PackInOneZone_ServersShareAHostWhileSpreadElsewhere()
    {
        await C.CreateAggregateAsync(new AggregateRequest("dense", "azp", new Dictionary<string, string> { ["scheduler_profile"] = "pack" }));
        await C.AddAggregateHostAsync("dense", "host-1");
        await C.AddAggregateHostAsync("dense", "host-2");
        var packed = new List<ServerDto>();
        for (var i = 0; i < 4; i++)
        {
            packed.Add(await SettleAsync(Req($"p-{i}", "azp")));
        }
        Assert.All(packed, s => Assert.Equal("active", s.VmState));
        Assert.Single(packed.Select(s => s.HostName).Distinct());
        var why = await C.PlacementAsync(packed[^1].Id);
        Assert.Equal("pack", why.Profile);
        var bad = await Assert.ThrowsAsync<StratusApiException>(() =>
            C.UpdateAggregateAsync("dense", new AggregateRequest(null, null, new Dictionary<string, string> { ["scheduler_profile"] = "random" })));
        Assert.Equal("validation_failed", bad.Code);
        foreach (var s in packed)
        {
            await C.DeleteServerAsync(s.Id);
            await cloud.WaitAsync(s.Id, "deleted");
        }
        await C.RemoveAggregateHostAsync("dense", "host-1");
        await C.RemoveAggregateHostAsync("dense", "host-2");
        await C.DeleteAggregateAsync("dense");
    }

    [Fact]
    public async Task Traits_RequiredAndForbidden_SteerPlacement()
    {
        var h = await C.SetHostTraitsAsync("host-2", ["CUSTOM_GPU", "CUSTOM_GPU"]);
        Assert.Equal(["CUSTOM_GPU"], h.Traits);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("host-2", (await SettleAsync(Req($"gpu-{i}", null, "CUSTOM_GPU"))).HostName);
            Assert.NotEqual("host-2", (await SettleAsync(Req($"nogpu-{i}", null, "!CUSTOM_GPU"))).HostName);
        }
        var missing = await SettleAsync(Req("fpga", null, "CUSTOM_FPGA"));
        Assert.Equal("error", missing.VmState);
        Assert.Contains("CUSTOM_FPGA", missing.Fault, StringComparison.Ordinal);
        var bad = await Assert.ThrowsAsync<StratusApiException>(() => C.SetHostTraitsAsync("host-2", ["lower-case"]));
        Assert.Equal("validation_failed", bad.Code);
        var badReq = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(Req("badtrait", null, "no spaces allowed")));
        Assert.Equal("validation_failed", badReq.Code);
        await C.SetHostTraitsAsync("host-2", []);
        Assert.Empty((await C.GetHostAsync("host-2")).Traits);
    }
}
