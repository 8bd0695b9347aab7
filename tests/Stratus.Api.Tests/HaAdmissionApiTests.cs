using System.Net;
using System.Net.Http.Json;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// HA admission control end to end (stratusd --ha-tolerate) with three embedded simulated hosts, each holding exactly
/// four servers of the flavor <c>quarter</c> (32 vCPU of 128 under the 4.0 ratio, 32 of 128 GiB, 256 of 1024 GiB).
/// Tolerating one host failure, two hosts' worth (8) is the most that can always be restarted.
/// </summary>
public sealed class HaAdmissionApiTests
{
    /// <summary>Runs <paramref name="test"/> against a fresh three-host cloud with a shared pool and --ha-tolerate <paramref name="tolerate"/>.</summary>
    private static async Task WithCloudAsync(int tolerate, Func<TestCloud, Task> test, string? fenceCommand = null)
    {
        var cloud = new TestCloud
        {
            Hosts = 3,
            Configure = o =>
            {
                o.SharedPool = Path.Combine(o.DataDir, "shared");
                Directory.CreateDirectory(o.SharedPool);
                o.HaTolerate = tolerate;
                o.FenceCommand = fenceCommand;
            },
        };
        await cloud.InitializeAsync();
        try
        {
            await test(cloud);
        }
        finally
        {
            await cloud.DisposeAsync();
        }
    }

    private static async Task QuarterFlavorAsync(TestCloud cloud) =>
        await cloud.Client.CreateFlavorAsync(new CreateFlavorRequest("quarter", 32, 32 * 1024, 256, true));

    private static CreateServerRequest Quarter(string name, bool ha = true) => new(name, "quarter", "tiny", null, null, null, null) { Ha = ha };

    /// <summary>Deletes a server and waits until it is gone: it holds its room (and counts for the reserve) until its host removed it.</summary>
    private static async Task DeleteAndWaitAsync(TestCloud cloud, string name)
    {
        await cloud.Client.DeleteServerAsync(name);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await cloud.Client.ListServersAsync()).Any(s => s.Name == name))
        {
            Assert.True(DateTime.UtcNow < deadline, $"server {name} not deleted in 20 s");
            await Task.Delay(20);
        }
    }

    private static async Task<StratusApiException> RefusedAsync(Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<StratusApiException>(call);
        Assert.Equal(409, e.Status);
        Assert.Equal("failover_reserve", e.Code);
        return e;
    }

    [Fact]
    public async Task Create_TolerateOne_AdmittedUntilTheReserveThenRefusedWithTheFailure() => await WithCloudAsync(1, async cloud =>
    {
        var c = cloud.Client;
        await QuarterFlavorAsync(cloud);
        var ids = new List<string>();
        for (var i = 1; i <= 8; i++)
        {
            ids.Add((await c.CreateServerAsync(Quarter($"ha-{i}"))).Id);
        }
        foreach (var id in ids)
        {
            await cloud.WaitAsync(id, "active");
        }
        var status = await c.HaStatusAsync();
        Assert.True(status.Enforced);
        Assert.True(status.Ok);
        Assert.Equal(0, status.Headroom);
        Assert.Equal(new HaSlotDto(32, 32 * 1024, 256), status.Slot);
        Assert.All(status.Hosts, h => Assert.Equal(4, h.Slots));
        Assert.Equal(8, status.Whole!.Room);
        Assert.Single(status.Whole.WorstFailure);

        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var refused = await RefusedAsync(() => c.CreateServerAsync(Quarter("ha-9")));
        var detail = refused.Problem!.Detail!;
        Assert.Contains("server 'ha-9' (32 vCPU, 32 GiB, 256 GiB disk) is refused by HA admission control (--ha-tolerate 1)", detail, StringComparison.Ordinal);
        Assert.Contains($"does not tolerate 1 host failure: losing host {status.Whole.WorstFailure[0]} leaves 8 slots", detail, StringComparison.Ordinal);
        Assert.Contains("the servers need 9", detail, StringComparison.Ordinal);
        // A server that is not HA may not eat into the reserve either, however small.
        var tiny = await RefusedAsync(() => c.CreateServerAsync(new CreateServerRequest("plain", "tiny", "tiny", null, null, null, null)));
        Assert.Contains("server 'plain'", tiny.Problem!.Detail, StringComparison.Ordinal);
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));

        // Deleting one server gives its room back.
        await DeleteAndWaitAsync(cloud, "ha-8");
        var again = await c.CreateServerAsync(Quarter("ha-9"));
        await cloud.WaitAsync(again.Id, "active");
    });

    [Fact]
    public async Task Create_ConcurrentAtTheLimit_NeverOvershoots() => await WithCloudAsync(1, async cloud =>
    {
        await QuarterFlavorAsync(cloud);
        var responses = await Task.WhenAll(Enumerable.Range(1, 12).Select(i =>
            cloud.Http.PostAsJsonAsync("v1/servers", Quarter($"race-{i}"), WireJson.Options)));
        Assert.Equal(8, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(4, responses.Count(r => r.StatusCode == HttpStatusCode.Conflict));
        foreach (var s in await cloud.Client.ListServersAsync())
        {
            await cloud.WaitAsync(s.Id, "active");
        }
        var status = await cloud.Client.HaStatusAsync();
        Assert.True(status.Ok);
        Assert.Equal(0, status.Headroom);
    });

    [Fact]
    public async Task Create_TolerateZero_ChangesNothing_WhatIfShowsTheShortfall() => await WithCloudAsync(0, async cloud =>
    {
        await QuarterFlavorAsync(cloud);
        var responses = await Task.WhenAll(Enumerable.Range(1, 12).Select(i =>
            cloud.Http.PostAsJsonAsync("v1/servers", Quarter($"free-{i}"), WireJson.Options)));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        foreach (var s in await cloud.Client.ListServersAsync())
        {
            await cloud.WaitAsync(s.Id, "active"); // all twelve fit: nothing is held back
        }
        var off = await cloud.Client.HaStatusAsync();
        Assert.True(off.FenceCommand);
        Assert.False(off.Enforced);
        Assert.Equal(0, off.Tolerate);
        Assert.True(off.Ok);
        Assert.Null(off.Headroom);
        var whatIf = await cloud.Client.HaStatusAsync(1);
        Assert.False(whatIf.Enforced);
        Assert.False(whatIf.Ok);
        Assert.Equal(12, whatIf.Whole!.Demand);
        Assert.Contains("does not tolerate 1 host failure", whatIf.Summary, StringComparison.Ordinal);
    }, fenceCommand: "true");

    [Fact]
    public async Task SetHa_SlotWouldGrowPastTheReserve_RefusedUntilRoomIsFreed() => await WithCloudAsync(1, async cloud =>
    {
        var c = cloud.Client;
        await QuarterFlavorAsync(cloud);
        // No HA server yet: nothing to reserve for.
        for (var i = 1; i <= 7; i++)
        {
            await c.CreateServerAsync(Quarter($"big-{i}", ha: false));
        }
        // Tiny HA servers make a tiny slot (stretched to the hosts' shape, 1/128 of a host): 7 × 32 + 2 of 256 slots.
        await c.CreateServerAsync(new CreateServerRequest("small-1", "tiny", "tiny", null, null, null, null) { Ha = true });
        await c.CreateServerAsync(new CreateServerRequest("small-2", "tiny", "tiny", null, null, null, null) { Ha = true });
        Assert.Equal("stretched", (await c.HaStatusAsync()).SlotShape is null ? "raw" : "stretched");
        // HA for a big server makes the slot a quarter host: 7 + 2 slots for 8.
        var refused = await RefusedAsync(() => c.SetHaAsync("big-1", new HaRequest(true, null)));
        Assert.Contains("HA for server 'big-1' (32 vCPU, 32 GiB, 256 GiB disk)", refused.Problem!.Detail, StringComparison.Ordinal);
        Assert.False((await c.GetServerAsync("big-1")).Ha);
        Assert.Equal(5, (await c.SetHaAsync("small-1", new HaRequest(null, 5))).HaPriority); // a priority change is never checked
        await DeleteAndWaitAsync(cloud, "small-2");
        Assert.True((await c.SetHaAsync("big-1", new HaRequest(true, null))).Ha);
        Assert.Equal(0, (await c.HaStatusAsync()).Headroom);
    });

    [Fact]
    public async Task CreateBatch_PastTheReserve_WholeBatchRefused_RetryWithKeyGetsItsServer() => await WithCloudAsync(1, async cloud =>
    {
        var c = cloud.Client;
        await QuarterFlavorAsync(cloud);
        for (var i = 1; i <= 6; i++)
        {
            await c.CreateServerAsync(Quarter($"ha-{i}"));
        }
        var refused = await RefusedAsync(() => c.CreateServersAsync(Quarter("batch") with { Count = 3 }));
        Assert.Contains("the batch batch-1…batch-3 (3 × 32 vCPU, 32 GiB, 256 GiB disk)", refused.Problem!.Detail, StringComparison.Ordinal);
        Assert.Equal(6, (await c.ListServersAsync()).Count);
        Assert.Equal(2, (await c.HaStatusAsync()).Headroom);

        await c.CreateServerAsync(Quarter("ha-7"));
        var last = await c.CreateServerAsync(Quarter("ha-8"), idempotencyKey: "last-one");
        // At the limit now; the same request again returns the server it made, not a refusal.
        var retried = await c.CreateServerAsync(Quarter("ha-8"), idempotencyKey: "last-one");
        Assert.Equal(last.Id, retried.Id);
        await RefusedAsync(() => c.CreateServerAsync(Quarter("ha-9"), idempotencyKey: "another"));
    });
}
