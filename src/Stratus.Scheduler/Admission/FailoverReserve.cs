using System.Collections.Immutable;
using System.Globalization;
using Stratus.Core.Resources;
using Stratus.Scheduler.Plugins;

namespace Stratus.Scheduler.Admission;

/// <summary>A host that counts as failover capacity (state up) and its capacity under its allocation ratios.</summary>
public readonly record struct FailoverHost(string Name, ResourceVector Capacity);

/// <summary>A server that holds an allocation or waits for one (any host, any power state); <paramref name="Ha"/> when HA-protected.</summary>
public readonly record struct FailoverServer(ResourceVector Resources, bool Ha);

/// <summary>A host's capacity counted in slots.</summary>
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
/// <param name="LargestHa">The largest HA server, per dimension; null when no server is HA-protected (nothing to reserve for).</param>
/// <param name="Slot">The unit the answer was found in: <see cref="LargestHa"/>, or it stretched to a host's shape (<see cref="SlotShape"/>).</param>
/// <param name="SlotShape">The host whose shape the slot was stretched to; null when the slot is the largest HA server itself.</param>
/// <param name="Headroom">How many more servers the size of <see cref="LargestHa"/> would still be admitted (0 when the reserve is short).</param>
/// <param name="Summary">One sentence a person can act on.</param>
public sealed record FailoverReport(
    int Tolerate,
    ResourceVector? LargestHa,
    ResourceVector? Slot,
    string? SlotShape,
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
/// <para><b>The model.</b> Every server that holds or waits for an allocation — HA or not, running or stopped, on any
/// host — counts, because whatever runs on a surviving host takes room a recovery needs, and whatever sits on a failed
/// host may be an HA server to restart: the capacity of the <c>tolerate</c> largest hosts is kept free of all servers
/// (as vSphere does: servers that are not HA may not eat into the reserve). So the answer does not depend on where
/// anything is placed; it is decided once, at admission, and no later placement, migration or recovery can break it
/// (only lost capacity can: a host going down, a ratio lowered).</para>
/// <para><b>Slots.</b> Room is counted in slots of a vector M that is at least the largest HA server in every
/// dimension (dimensions no HA server uses are ignored). M is tried as the largest HA server itself and stretched to
/// each host model's shape (the same share of every resource of that host, so servers shaped like the hosts are not
/// overcharged); any M that proves room admits.</para>
/// <para><b>Two sufficient tests for a slot M; either one admits.</b> With S the survivors of a failure F (|F| = tolerate):</para>
/// <list type="bullet">
/// <item><b>Whole slots</b> (vSphere's slot policy): a server takes ⌈max_d a_d / M_d⌉ slots, a host holds
/// ⌊min_d C_d / M_d⌋. Holds when Σ servers' slots ≤ Σ_{h∈S} slots(h). Exact for servers of the slot's size.</item>
/// <item><b>Fractional slots</b>: a server takes max_d a_d / M_d, a host holds k_h = min_d C_d / M_d and keeps
/// one slot for fragmentation. Holds when Σ servers' slots ≤ Σ_{h∈S} max(k_h − 1, 0). Tighter for servers of mixed
/// sizes.</item>
/// </list>
/// <para><b>Proof sketch</b> (for any order of restarts and any choice of host among those with room, so it holds
/// for the scheduler's choices): a surviving host whose counted load L_h is at most k_h − 1 slots (whole test: at
/// most slots(h) − 1) has used ≤ (k_h − 1)·M in every dimension, so at least M free: any HA server fits. If no survivor
/// had such room when an HA server v is to be restarted, the survivors' load would be at least Σ max(k_h − 1, 0)
/// (whole: Σ slots(h)); but the servers on the survivors are counted servers other than v, so their load is below the
/// total, which the test bounds by exactly that: contradiction. The worst F is the <c>tolerate</c> hosts with the most
/// room, so checking it checks every F. Arithmetic is exact (integers over a common denominator).</para>
/// <para><b>Not modelled</b>: placement rules other than capacity (zones, traits, server groups, drivers), hosts not
/// up (they offer no room), and a migration's second claim while it runs.</para>
/// </summary>
public static class FailoverReserve
{
    /// <summary>Evaluates the reserve for <paramref name="servers"/> on <paramref name="hosts"/> (the up hosts).</summary>
    public static FailoverReport Evaluate(int tolerate, IReadOnlyList<FailoverHost> hosts, IReadOnlyList<FailoverServer> servers)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentOutOfRangeException.ThrowIfNegative(tolerate);
        var largest = ResourceVector.Zero;
        foreach (var s in servers)
        {
            if (s.Ha)
            {
                largest = new(Math.Max(largest.MilliVcpus, s.Resources.MilliVcpus), Math.Max(largest.MemoryMib, s.Resources.MemoryMib), Math.Max(largest.DiskGib, s.Resources.DiskGib));
            }
        }
        if (tolerate == 0 || largest == ResourceVector.Zero)
        {
            var why = tolerate == 0 ? "admission control is off (tolerate 0)" : "no HA server: nothing to reserve for";
            return new(tolerate, null, null, null, [], null, null, true, long.MaxValue, why);
        }
        if (hosts.Count <= tolerate)
        {
            var failures = tolerate == 1 ? "1 host failure" : string.Create(CultureInfo.InvariantCulture, $"{tolerate} host failures");
            return new(tolerate, largest, largest, null, [], null, null, false, 0,
                $"cannot tolerate {failures}: only {ResourceFormat.Hosts(hosts.Count)} up");
        }
        var candidates = new List<(ResourceVector Slot, string? Shape)> { (largest, null) };
        foreach (var shape in hosts.GroupBy(h => h.Capacity).Select(g => g.First()))
        {
            if (Stretch(largest, shape.Capacity) is { } stretched && !candidates.Any(c => c.Slot == stretched))
            {
                candidates.Add((stretched, shape.Name));
            }
        }
        Candidate? best = null;
        foreach (var (slot, shape) in candidates)
        {
            var c = EvaluateWith(tolerate, slot, shape, hosts, servers);
            if (best is null || c.Better(best))
            {
                best = c;
            }
        }
        var b = best!;
        return new(tolerate, largest, b.Slot, b.Shape, b.Hosts, b.Whole, b.Fractional, b.Ok, b.Headroom,
            Summarize(tolerate, largest, b));
    }

    /// <summary>
    /// The smallest vector of <paramref name="capacity"/>'s shape that is at least <paramref name="largest"/> in every
    /// dimension it uses: the same share of each resource of that host; null when the host lacks a dimension it uses.
    /// </summary>
    private static ResourceVector? Stretch(ResourceVector largest, ResourceVector capacity)
    {
        var m = Dims(largest);
        var c = Dims(capacity);
        var j = -1;
        for (var d = 0; d < 3; d++)
        {
            if (m[d] <= 0)
            {
                continue;
            }
            if (c[d] <= 0)
            {
                return null;
            }
            // The dominant dimension: the largest share m_d / c_d, compared exactly.
            if (j < 0 || (Int128)m[d] * c[j] > (Int128)m[j] * c[d])
            {
                j = d;
            }
        }
        var s = new long[3];
        for (var d = 0; d < 3; d++)
        {
            s[d] = m[d] <= 0 ? 0 : (long)(((Int128)m[j] * c[d] + c[j] - 1) / c[j]); // ⌈share × c_d⌉ ≥ m_d
        }
        return new(s[0], s[1], s[2]);
    }

    private sealed record Candidate(ResourceVector Slot, string? Shape, ImmutableArray<FailoverHostSlots> Hosts, FailoverTest Whole, FailoverTest Fractional,
        bool Ok, long Headroom, Int128 ShortfallWhole, Int128 ShortfallFrac, Int128 Q)
    {
        /// <summary>Admits over refuses; among admitting slots the most headroom; among refusing ones the smallest shortfall.</summary>
        public bool Better(Candidate other)
        {
            if (Ok != other.Ok)
            {
                return Ok;
            }
            return Ok ? Headroom > other.Headroom : Shortfall < other.Shortfall;
        }

        /// <summary>Servers the size of the largest HA server too many, under the better test (each counts one slot under every candidate).</summary>
        private double Shortfall => Math.Min((double)ShortfallWhole, (double)ShortfallFrac / (double)Q);
    }

    private static Candidate EvaluateWith(int tolerate, ResourceVector slotVector, string? shape, IReadOnlyList<FailoverHost> hosts, IReadOnlyList<FailoverServer> servers)
    {
        var m = Dims(slotVector);
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
        // A server the size of the largest HA server takes exactly one slot under both tests and every candidate slot.
        var headroom = Math.Max(Math.Max(roomWhole - demandWhole, 0), (long)Int128.Max((roomFrac - demandFrac) / q, 0));
        var slots = rows.Select(r => new FailoverHostSlots(r.Name, r.Whole, Ratio(r.Frac, q))).ToImmutableArray();
        return new(slotVector, shape, slots, wholeTest, fracTest, ok, ok ? headroom : 0, demandWhole - roomWhole, demandFrac - roomFrac, q);
    }

    private static long[] Dims(ResourceVector v) => [v.MilliVcpus, v.MemoryMib, v.DiskGib];

    private static double Ratio(Int128 x, Int128 q) => (double)x / (double)q;

    /// <summary>A resource vector as a person reads it: "2 vCPU, 4 GiB, 20 GiB disk".</summary>
    public static string Describe(ResourceVector v) =>
        $"{ResourceFormat.Cpu(v.MilliVcpus)}, {ResourceFormat.Memory(v.MemoryMib)}, {ResourceFormat.Disk(v.DiskGib)} disk";

    private static string Summarize(int tolerate, ResourceVector largest, Candidate c)
    {
        var inv = CultureInfo.InvariantCulture;
        var failures = tolerate == 1 ? "1 host failure" : string.Create(inv, $"{tolerate} host failures");
        var unit = c.Shape is null
            ? $"slots of {Describe(c.Slot)} (the largest HA server)"
            : $"slots of {Describe(c.Slot)} (the largest HA server, {Describe(largest)}, stretched to host {c.Shape}'s shape)";
        string Lose(FailoverTest t) => t.WorstFailure.Length == 1 ? $"losing host {t.WorstFailure[0]}" : $"losing hosts {string.Join(", ", t.WorstFailure)}";
        if (c.Ok)
        {
            var (t, label) = c.Whole.Ok ? (c.Whole, "") : (c.Fractional, " after keeping one slot per host for fragmentation");
            return string.Create(inv,
                $"tolerates {failures}: {Lose(t)} leaves {t.Room:0.##} {unit}{label}; the servers need {t.Demand:0.##}; room for {c.Headroom} more server{(c.Headroom == 1 ? "" : "s")} of the largest HA server's size");
        }
        return string.Create(inv,
            $"does not tolerate {failures}: {Lose(c.Whole)} leaves {c.Whole.Room:0.##} {unit}, the servers need {c.Whole.Demand:0.##}; "
            + $"counting fractions, {Lose(c.Fractional)} leaves {c.Fractional.Room:0.##} after one slot per host for fragmentation, the servers need {c.Fractional.Demand:0.##}");
    }
}
