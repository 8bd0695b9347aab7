using System.Collections.Immutable;
using System.Globalization;
using Stratus.Core.Resources;
using Stratus.Scheduler.Plugins;

namespace Stratus.Scheduler.Admission;

/// <summary>A host that counts as failover capacity (state up) and its capacity under its allocation ratios.</summary>
public readonly record struct FailoverHost(string Name, ResourceVector Capacity);

/// <summary>A server that holds an allocation or waits for one (any host, any power state); <paramref name="Ha"/> when HA-protected.</summary>
public readonly record struct FailoverServer(ResourceVector Resources, bool Ha);

/// <summary>A host's capacity counted in slots (one slot = the largest HA server, per dimension).</summary>
/// <param name="Whole">Whole slots: how many slot-sized servers fit, rounded down.</param>
/// <param name="Fractional">Capacity divided by the slot in its tightest dimension.</param>
public sealed record FailoverHostSlots(string Name, long Whole, double Fractional);

/// <summary>
/// One of the two sufficient tests: whether the surviving hosts can take every server when the hosts in
/// <see cref="WorstFailure"/> fail (the <c>tolerate</c> hosts whose loss costs the most room under this test).
/// </summary>
/// <param name="Demand">Slots the servers need (whole test: each server rounded up to whole slots).</param>
/// <param name="Room">Slots the survivors offer (fractional test: after one slot per surviving host kept for fragmentation).</param>
public sealed record FailoverTest(ImmutableArray<string> WorstFailure, double Demand, double Room, bool Ok);

/// <summary>What the failover reserve looks like now.</summary>
/// <param name="Slot">The largest HA server, per dimension; null when no server is HA-protected (nothing to reserve for).</param>
/// <param name="Headroom">How many more slot-sized servers would still be admitted (0 when the reserve is already short).</param>
/// <param name="Summary">One sentence a person can act on.</param>
public sealed record FailoverReport(
    int Tolerate,
    ResourceVector? Slot,
    ImmutableArray<FailoverHostSlots> Hosts,
    FailoverTest? Whole,
    FailoverTest? Fractional,
    bool Ok,
    long Headroom,
    string Summary);

/// <summary>
/// HA admission control: whether the HA servers of any <c>tolerate</c> failed hosts can always be restarted on
/// the remaining hosts within their allocation ratios — "host failures to tolerate", like vSphere HA's
/// admission control.
/// <para><b>The model.</b> A <i>slot</i> M is the largest HA server, per dimension (vCPU, memory, disk; a
/// dimension no HA server uses is ignored). Every server that holds or waits for an allocation — HA or not,
/// running or stopped, on any host — counts, because whatever runs on a surviving host takes room a recovery
/// needs and whatever sits on a failed host may be an HA server to restart. The answer does not depend on
/// where anything is placed, so it is decided once, at admission, and no later placement can break it.</para>
/// <para><b>Two sufficient tests; either one admits.</b> With S the survivors of a failure F (|F| = tolerate):</para>
/// <list type="bullet">
/// <item><b>Whole slots</b> (vSphere's slot policy): a server takes ⌈max_d a_d / M_d⌉ slots, a host holds
/// ⌊min_d C_d / M_d⌋. Holds when Σ servers' slots ≤ Σ_{h∈S} slots(h). Exact for servers of one size.</item>
/// <item><b>Fractional slots</b>: a server takes max_d a_d / M_d, a host holds k_h = min_d C_d / M_d and keeps
/// one slot for fragmentation. Holds when Σ servers' slots ≤ Σ_{h∈S} max(k_h − 1, 0). Much tighter for
/// servers of mixed sizes.</item>
/// </list>
/// <para><b>Proof sketch</b> (for any order of restarts and any choice of host among those with room, so it holds
/// for the scheduler's choices): a surviving host whose counted load L_h is at most k_h − 1 slots (whole
/// test: at most slots(h) − 1) has used ≤ (k_h − 1)·M in every dimension, so at least M free: any HA server fits.
/// If no survivor had such room when an HA server v is to be restarted, the survivors' load would be at least
/// Σ max(k_h − 1, 0) (whole: Σ slots(h)); but the servers on the survivors are counted servers other than v,
/// so their load is below the total, which the test bounds by exactly that: contradiction. The worst F is
/// the <c>tolerate</c> hosts with the most room, so checking it checks every F. Arithmetic is exact (integers
/// over a common denominator).</para>
/// <para><b>Not modelled</b>: placement rules other than capacity (zones, traits, server groups, drivers),
/// hosts not up (they offer no room), and a migration's second claim while it runs.</para>
/// </summary>
public static class FailoverReserve
{
    /// <summary>Evaluates the reserve for <paramref name="servers"/> on <paramref name="hosts"/> (the up hosts).</summary>
    public static FailoverReport Evaluate(int tolerate, IReadOnlyList<FailoverHost> hosts, IReadOnlyList<FailoverServer> servers)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentOutOfRangeException.ThrowIfNegative(tolerate);
        var slot = ResourceVector.Zero;
        foreach (var s in servers)
        {
            if (s.Ha)
            {
                slot = new(Math.Max(slot.MilliVcpus, s.Resources.MilliVcpus), Math.Max(slot.MemoryMib, s.Resources.MemoryMib), Math.Max(slot.DiskGib, s.Resources.DiskGib));
            }
        }
        if (tolerate == 0 || slot == ResourceVector.Zero)
        {
            var why = tolerate == 0 ? "admission control is off (tolerate 0)" : "no HA server: nothing to reserve for";
            return new(tolerate, null, [], null, null, true, long.MaxValue, why);
        }
        var m = Dims(slot);
        var active = Enumerable.Range(0, 3).Where(d => m[d] > 0).ToArray();
        Int128 q = 1;
        foreach (var d in active)
        {
            q *= m[d];
        }
        // Scaled by q (the product of the slot's used dimensions) so every ratio is an exact integer.
        Int128 Scaled(long x, int d) => (Int128)x * (q / m[d]);

        var rows = new List<(string Name, long Whole, Int128 Frac)>(hosts.Count);
        foreach (var h in hosts)
        {
            var c = Dims(h.Capacity);
            var whole = long.MaxValue;
            var frac = Int128.MaxValue;
            foreach (var d in active)
            {
                var cd = Math.Max(c[d], 0);
                whole = Math.Min(whole, cd / m[d]);
                frac = Int128.Min(frac, Scaled(cd, d));
            }
            rows.Add((h.Name, whole, frac));
        }
        long demandWhole = 0;
        Int128 demandFrac = 0;
        foreach (var s in servers)
        {
            var a = Dims(s.Resources);
            long w = 0;
            Int128 f = 0;
            foreach (var d in active)
            {
                var ad = Math.Max(a[d], 0);
                w = Math.Max(w, (ad + m[d] - 1) / m[d]);
                f = Int128.Max(f, Scaled(ad, d));
            }
            demandWhole += w;
            demandFrac += f;
        }

        // The worst failure under each test: the hosts offering the most room (ties by name, for stable answers).
        var byWhole = rows.OrderByDescending(r => r.Whole).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
        var roomWhole = byWhole.Skip(tolerate).Sum(r => r.Whole);
        var wholeTest = new FailoverTest([.. byWhole.Take(tolerate).Select(r => r.Name)], demandWhole, roomWhole, demandWhole <= roomWhole);

        Int128 Allowance(Int128 k) => k > q ? k - q : 0;
        var byFrac = rows.OrderByDescending(r => Allowance(r.Frac)).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
        Int128 roomFrac = 0;
        foreach (var r in byFrac.Skip(tolerate))
        {
            roomFrac += Allowance(r.Frac);
        }
        var fracTest = new FailoverTest([.. byFrac.Take(tolerate).Select(r => r.Name)], Ratio(demandFrac, q), Ratio(roomFrac, q), demandFrac <= roomFrac);

        var ok = wholeTest.Ok || fracTest.Ok;
        // Each further slot-sized server adds exactly one slot under both tests.
        var headroom = Math.Max(Math.Max(roomWhole - demandWhole, 0), (long)Int128.Max((roomFrac - demandFrac) / q, 0));
        var slots = rows.Select(r => new FailoverHostSlots(r.Name, r.Whole, Ratio(r.Frac, q))).ToImmutableArray();
        return new(tolerate, slot, slots, wholeTest, fracTest, ok, ok ? headroom : 0, Summarize(tolerate, slot, hosts.Count, wholeTest, fracTest, ok, headroom));
    }

    private static long[] Dims(ResourceVector v) => [v.MilliVcpus, v.MemoryMib, v.DiskGib];

    private static double Ratio(Int128 x, Int128 q) => (double)x / (double)q;

    /// <summary>The slot as a person reads it: "2 vCPU, 4 GiB, 20 GiB disk".</summary>
    public static string Describe(ResourceVector slot) =>
        $"{ResourceFormat.Cpu(slot.MilliVcpus)}, {ResourceFormat.Memory(slot.MemoryMib)}, {ResourceFormat.Disk(slot.DiskGib)} disk";

    private static string Summarize(int tolerate, ResourceVector slot, int hostCount, FailoverTest whole, FailoverTest frac, bool ok, long headroom)
    {
        var inv = CultureInfo.InvariantCulture;
        var failures = tolerate == 1 ? "1 host failure" : string.Create(inv, $"{tolerate} host failures");
        var unit = $"slots of {Describe(slot)} (the largest HA server)";
        if (hostCount <= tolerate)
        {
            return string.Create(inv, $"cannot tolerate {failures}: only {ResourceFormat.Hosts(hostCount)} up");
        }
        string Lose(FailoverTest t) => t.WorstFailure.Length == 1 ? $"losing host {t.WorstFailure[0]}" : $"losing hosts {string.Join(", ", t.WorstFailure)}";
        if (ok)
        {
            var (t, label) = whole.Ok ? (whole, "") : (frac, " after keeping one slot per host for fragmentation");
            return string.Create(inv,
                $"tolerates {failures}: {Lose(t)} leaves {t.Room:0.##} {unit}{label}; the servers need {t.Demand:0.##}; room for {headroom} more such server{(headroom == 1 ? "" : "s")}");
        }
        return string.Create(inv,
            $"does not tolerate {failures}: {Lose(whole)} leaves {whole.Room:0.##} {unit}, the servers need {whole.Demand:0.##}; "
            + $"counting fractions, {Lose(frac)} leaves {frac.Room:0.##} after one slot per host for fragmentation, the servers need {frac.Demand:0.##}");
    }
}
