using CsCheck;
using Stratus.Core.Resources;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// Property through the real create path (HTTP → store → reconciler → scheduler → CAS claims →
/// simulated agents): for random mixes of flavors and anti-affinity groups created concurrently
/// (single creates racing a batch create into the same group),
/// no host is ever allocated beyond its ratios, the ledger equals the live allocations, no
/// anti-affinity rule is broken, and every server ends active or in error with a reason.
/// </summary>
public sealed class PlacementPropertyTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private int _round;

    [Fact]
    public async Task ConcurrentCreates_RandomMixes_NoOvercommitNoBrokenRule()
    {
        var c = cloud.Client;
        await c.CreateFlavorAsync(new CreateFlavorRequest("p-small", 2, 512, 5, true));
        await c.CreateFlavorAsync(new CreateFlavorRequest("p-big", 32, 32 * 1024, 100, true));
        await c.CreateFlavorAsync(new CreateFlavorRequest("p-huge", 96, 96 * 1024, 300, true));
        var request = Gen.Select(Gen.Int[0, 2], Gen.Int[0, 3]); // flavor, group (3 = none)
        await Gen.Int[6, 30].SelectMany(n => request.Array[n]).SampleAsync(async batch =>
        {
            var round = Interlocked.Increment(ref _round);
            var groups = new[] { $"r{round}-g0", $"r{round}-g1", $"r{round}-g2" };
            foreach (var g in groups)
            {
                await c.CreateGroupAsync(new CreateGroupRequest(g, "anti-affinity", null));
            }
            var flavors = new[] { "p-small", "p-big", "p-huge" };
            // Single creates and one batch (into the first group, all-or-nothing every other round) race each other.
            var singles = batch.Select((r, i) => c.CreateServerAsync(
                new CreateServerRequest($"r{round}-s{i}", flavors[r.Item1], "tiny", null, null, null, null) { Group = r.Item2 < 3 ? groups[r.Item2] : null })).ToList();
            var batched = c.CreateServersAsync(new CreateServerRequest($"r{round}-b", "p-small", "tiny", null, null, null, null)
            {
                Group = groups[0],
                Count = 2,
                AllOrNothing = round % 2 == 0 ? true : null,
            });
            var created = (await Task.WhenAll(singles)).Concat(await batched).ToList();
            var settled = new List<ServerDto>();
            foreach (var s in created)
            {
                var cur = s;
                for (var k = 0; k < 2000 && cur.Task is not null | cur.VmState == "building"; k++)
                {
                    await Task.Delay(10);
                    cur = await c.GetServerAsync(s.Id);
                }
                settled.Add(cur);
            }
            var ok = settled.All(s => s.VmState == "active" || (s.VmState == "error" && !string.IsNullOrEmpty(s.Fault)));

            var hosts = await c.ListHostsAsync();
            ok &= hosts.All(h => h.Used.Vcpus <= h.Capacity.Vcpus && h.Used.RamMib <= h.Capacity.RamMib && h.Used.DiskGib <= h.Capacity.DiskGib);
            var allocations = await cloud.Store.ListAllocationsAsync(CancellationToken.None);
            foreach (var h in await cloud.Store.ListHostsAsync(CancellationToken.None))
            {
                ok &= allocations.Where(a => a.HostId == h.Id).Aggregate(ResourceVector.Zero, (sum, a) => sum + a.Resources) == h.Used;
            }
            ok &= settled.Where(s => s.VmState == "active" && s.GroupId is not null).GroupBy(s => (s.GroupId, s.HostId)).All(g => g.Count() == 1);
            // Clean up so every round starts from the same empty fleet.
            foreach (var s in settled)
            {
                await c.DeleteServerAsync(s.Id);
            }
            foreach (var s in settled)
            {
                await cloud.WaitAsync(s.Id, "deleted");
            }
            foreach (var g in groups)
            {
                await c.DeleteGroupAsync(g);
            }
            return ok;
        }, iter: 12, threads: 1, seed: "0001Kx7bQq3T");
        Assert.Empty(await cloud.Store.ListAllocationsAsync(CancellationToken.None));
    }
}
