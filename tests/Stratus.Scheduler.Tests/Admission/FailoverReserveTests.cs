using CsCheck;
using Stratus.Core.Resources;
using Stratus.Scheduler.Admission;

namespace Stratus.Scheduler.Tests.Admission;

public sealed class FailoverReserveTests
{
    private static readonly ResourceVector Big = ResourceVector.Of(32, 32 * 1024, 256);

    /// <summary>Three hosts that each hold exactly four <see cref="Big"/> servers.</summary>
    private static FailoverHost[] Three() =>
        [.. new[] { "a", "b", "c" }.Select(n => new FailoverHost(n, ResourceVector.Of(128, 128 * 1024, 1024)))];

    private static FailoverServer[] Ha(int n, ResourceVector size) => [.. Enumerable.Range(0, n).Select(_ => new FailoverServer(size, true))];

    [Fact]
    public void Evaluate_OneSizeTolerateOne_AdmitsUpToTwoHostsWorth()
    {
        // 8 servers fit on two hosts (4 + 4): any one host may fail. A 9th cannot be guaranteed.
        var eight = FailoverReserve.Evaluate(1, Three(), Ha(8, Big));
        Assert.True(eight.Ok);
        Assert.Equal(0, eight.Headroom);
        Assert.Equal(8, eight.Whole!.Room);
        Assert.Contains("tolerates 1 host failure", eight.Summary, StringComparison.Ordinal);

        var nine = FailoverReserve.Evaluate(1, Three(), Ha(9, Big));
        Assert.False(nine.Ok);
        Assert.Equal(["a"], nine.Whole!.WorstFailure.ToArray());
        Assert.Equal(9, nine.Whole.Demand);
        Assert.Equal(8, nine.Whole.Room);
        Assert.Contains("losing host a leaves 8 slots of 32 vCPU, 32 GiB, 256 GiB disk", nine.Summary, StringComparison.Ordinal);
        Assert.Contains("the servers need 9", nine.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_SevenServers_HeadroomOne()
    {
        var r = FailoverReserve.Evaluate(1, Three(), Ha(7, Big));
        Assert.True(r.Ok);
        Assert.Equal(1, r.Headroom);
        Assert.Equal(Big, r.Slot);
        Assert.Null(r.SlotShape);
        Assert.All(r.Hosts, h => Assert.Equal(4, h.Whole));
    }

    [Fact]
    public void Evaluate_NonHaServersCount_TheyCannotEatTheReserve()
    {
        var servers = Ha(7, Big).Append(new FailoverServer(ResourceVector.Of(1, 256, 1), false)).Append(new FailoverServer(ResourceVector.Of(1, 256, 1), false)).ToArray();
        var r = FailoverReserve.Evaluate(1, Three(), servers);
        Assert.False(r.Ok); // 7 big + 2 small: 9 whole slots for 8; 7.06 fractional for 6
    }

    [Fact]
    public void Evaluate_MixedSizes_FractionalTestAdmitsWhatWholeSlotsRefuse()
    {
        // One 4 vCPU / 8 GiB HA server is the slot; each 1 vCPU server takes a whole slot under the slot policy, a quarter counting fractions.
        var hosts = new[] { "a", "b", "c" }.Select(n => new FailoverHost(n, ResourceVector.Of(16, 16 * 1024, 100))).ToArray();
        var servers = new[] { new FailoverServer(ResourceVector.Of(4, 8 * 1024, 10), true) }
            .Concat(Enumerable.Range(0, 4).Select(_ => new FailoverServer(ResourceVector.Of(1, 1024, 1), false))).ToArray();
        var r = FailoverReserve.Evaluate(1, hosts, servers);
        Assert.False(r.Whole!.Ok); // 5 slots for 4
        Assert.True(r.Fractional!.Ok); // 1 + 4 × 0.25 for 2 (two slots a host, one kept for fragmentation)
        Assert.True(r.Ok);
        Assert.Contains("after keeping one slot per host for fragmentation", r.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_SmallHaServerAmongBigOnes_SlotStretchedToTheHostShape()
    {
        // The tiny HA server as a slot charges a big server 256 slots (its disk) against 128 a host holds (its CPU);
        // stretched to the hosts' shape (1/128 of every resource) a big server is 32 slots, as it should be.
        var servers = Enumerable.Range(0, 7).Select(_ => new FailoverServer(Big, false)).Append(new FailoverServer(ResourceVector.Of(1, 256, 1), true)).ToArray();
        var r = FailoverReserve.Evaluate(1, Three(), servers);
        Assert.True(r.Ok);
        Assert.Equal("a", r.SlotShape);
        Assert.Equal(ResourceVector.Of(1, 1024, 8), r.Slot);
        Assert.Equal(ResourceVector.Of(1, 256, 1), r.LargestHa);
        Assert.Equal(7 * 32 + 1, r.Whole!.Demand);
        Assert.Equal(31, r.Headroom);
        Assert.Contains("stretched to host a's shape", r.Summary, StringComparison.Ordinal);
        // An eighth big server is one host's worth too many: the reserve is the third host.
        Assert.False(FailoverReserve.Evaluate(1, Three(), [.. servers, new FailoverServer(Big, false)]).Ok);
    }

    [Fact]
    public void Evaluate_ToleranceZeroOrNoHaServer_AlwaysOk()
    {
        Assert.True(FailoverReserve.Evaluate(0, Three(), Ha(100, Big)).Ok);
        var noHa = FailoverReserve.Evaluate(1, Three(), [.. Enumerable.Range(0, 100).Select(_ => new FailoverServer(Big, false))]);
        Assert.True(noHa.Ok);
        Assert.Null(noHa.LargestHa);
    }

    [Fact]
    public void Evaluate_FewerHostsThanTolerated_RefusesWithReason()
    {
        var r = FailoverReserve.Evaluate(3, Three(), Ha(1, Big));
        Assert.False(r.Ok);
        Assert.Equal("cannot tolerate 3 host failures: only 3 hosts up", r.Summary);
    }

    [Fact]
    public void Evaluate_UnusedDimensionIgnored()
    {
        // HA servers with no disk: hosts without disk still offer room.
        var hosts = new[] { new FailoverHost("a", ResourceVector.Of(4, 4096, 0)), new FailoverHost("b", ResourceVector.Of(4, 4096, 0)) };
        var r = FailoverReserve.Evaluate(1, hosts, Ha(4, ResourceVector.Of(1, 1024, 0)));
        Assert.True(r.Ok);
        Assert.Equal(0, r.Headroom);
    }

    private sealed record Case(int Tolerate, (int Cpu, int Mem, int Disk)[] Hosts, (int Cpu, int Mem, int Disk, bool Ha, int Host)[] Servers, int Seed);

    /// <summary>
    /// The proof, checked by brute force: whenever the reserve is OK, for every set of tolerated host failures and any
    /// placement that respects capacity, restarting the failed hosts' HA servers in a random order, each on a random
    /// surviving host with room, never runs out of room.
    /// </summary>
    [Fact]
    public void Evaluate_WhenOk_EveryFailureSetRecoversInAnyOrder()
    {
        var gen =
            from tolerate in Gen.Int[1, 2]
            from hosts in Gen.Select(Gen.Int[1, 16], Gen.Int[1, 32], Gen.Int[0, 8]).Array[2, 5]
            from servers in Gen.Select(Gen.Int[1, 6], Gen.Int[1, 12], Gen.Int[0, 3], Gen.Bool, Gen.Int[0, 4]).Array[1, 30]
            from seed in Gen.Int
            select new Case(tolerate, hosts, servers, seed);
        var admitted = 0;
        gen.Sample(c =>
        {
            var cap = c.Hosts.Select(h => ResourceVector.Of(h.Cpu, h.Mem * 1024L, h.Disk * 10L)).ToArray();
            var used = new ResourceVector[cap.Length];
            var placed = new List<(ResourceVector Size, bool Ha, int Host)>();
            foreach (var (cpu, mem, disk, ha, host) in c.Servers)
            {
                var size = ResourceVector.Of(cpu, mem * 1024L, disk * 10L);
                var h = host % cap.Length;
                if ((used[h] + size).FitsIn(cap[h]))
                {
                    used[h] += size;
                    placed.Add((size, ha, h));
                }
            }
            var report = FailoverReserve.Evaluate(c.Tolerate, [.. cap.Select((v, i) => new FailoverHost($"h{i}", v))],
                [.. placed.Select(p => new FailoverServer(p.Size, p.Ha))]);
            if (!report.Ok)
            {
                return true;
            }
            Interlocked.Increment(ref admitted);
            var random = new Random(c.Seed);
            foreach (var failed in Subsets(cap.Length, c.Tolerate))
            {
                var free = cap.Select((v, i) => failed.Contains(i) ? ResourceVector.Zero : v - used[i]).ToArray();
                var displaced = placed.Where(p => p.Ha && failed.Contains(p.Host)).Select(p => p.Size).OrderBy(_ => random.Next()).ToList();
                foreach (var v in displaced)
                {
                    var room = Enumerable.Range(0, cap.Length).Where(i => !failed.Contains(i) && v.FitsIn(free[i])).ToList();
                    if (room.Count == 0)
                    {
                        return false;
                    }
                    var pick = room[random.Next(room.Count)];
                    free[pick] -= v;
                }
            }
            return true;
        }, iter: 3000);
        Assert.True(admitted > 100, $"only {admitted} admitted cases: the generator says little");
    }

    private static IEnumerable<HashSet<int>> Subsets(int n, int k)
    {
        if (k >= n)
        {
            yield break;
        }
        var idx = Enumerable.Range(0, k).ToArray();
        while (true)
        {
            yield return [.. idx];
            var i = k - 1;
            while (i >= 0 && idx[i] == n - k + i)
            {
                i--;
            }
            if (i < 0)
            {
                yield break;
            }
            idx[i]++;
            for (var j = i + 1; j < k; j++)
            {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
}
