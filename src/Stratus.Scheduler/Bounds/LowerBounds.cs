using System.Collections.Immutable;

namespace Stratus.Scheduler.Bounds;

/// <summary>A lower bound on hosts needed, with the name of the argument that gave it.</summary>
/// <param name="Hosts">No packing of the items can use fewer hosts than this.</param>
/// <param name="Method">Which bound was tightest: <c>volume:cpu</c>, <c>volume:memory</c>, <c>l2:memory</c>, <c>cp-sat</c>…</param>
public readonly record struct LowerBound(int Hosts, string Method);

/// <summary>
/// Lower bounds on the number of hosts a set of items needs (pure arithmetic; the OR-Tools bound
/// is in <see cref="ExactBinPackingBound"/>). Packing quality = hosts used ÷ the bound.
/// </summary>
public static class LowerBounds
{
    private static readonly string[] DimensionNames = ["cpu", "memory", "disk", "gpu"];

    /// <summary>
    /// Per-dimension volume bound on a (possibly heterogeneous) fleet: for each dimension, the
    /// fewest hosts whose capacities, largest first, add up to the total demand; the maximum over
    /// dimensions. Throws when even the whole fleet cannot hold the demand.
    /// </summary>
    public static LowerBound Volume(IReadOnlyList<PackingVector> items, IReadOnlyList<PackingVector> hosts)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(hosts);
        var best = new LowerBound(items.Count == 0 ? 0 : 1, "volume");
        var caps = new long[hosts.Count];
        for (var d = 0; d < PackingVector.Dimensions; d++)
        {
            long total = 0;
            foreach (var it in items)
            {
                total += it[d];
            }
            if (total == 0)
            {
                continue;
            }
            for (var h = 0; h < caps.Length; h++)
            {
                caps[h] = hosts[h][d];
            }
            Array.Sort(caps);
            long sum = 0;
            var k = 0;
            for (var h = caps.Length - 1; h >= 0 && sum < total; h--)
            {
                sum += caps[h];
                k++;
            }
            if (sum < total)
            {
                throw new ArgumentException($"the fleet cannot hold the demand in {DimensionNames[d]}", nameof(hosts));
            }
            if (k > best.Hosts)
            {
                best = new LowerBound(k, "volume:" + DimensionNames[d]);
            }
        }
        return best;
    }

    /// <summary>Per-dimension volume bound on identical hosts of capacity <paramref name="host"/>: max over dimensions of ⌈Σ demand ÷ capacity⌉.</summary>
    public static LowerBound Volume(IReadOnlyList<PackingVector> items, PackingVector host)
    {
        ArgumentNullException.ThrowIfNull(items);
        var best = new LowerBound(items.Count == 0 ? 0 : 1, "volume");
        for (var d = 0; d < PackingVector.Dimensions; d++)
        {
            long total = 0;
            foreach (var it in items)
            {
                total += it[d];
            }
            if (total == 0 || host[d] <= 0)
            {
                continue;
            }
            var k = (int)((total + host[d] - 1) / host[d]);
            if (k > best.Hosts)
            {
                best = new LowerBound(k, "volume:" + DimensionNames[d]);
            }
        }
        return best;
    }

    /// <summary>
    /// Martello–Toth L2 per dimension on identical hosts (it also counts items too large to share
    /// a host), combined with the volume bound; the maximum of all.
    /// </summary>
    public static LowerBound MartelloTothL2(IReadOnlyList<PackingVector> items, PackingVector host)
    {
        var best = Volume(items, host);
        for (var d = 0; d < PackingVector.Dimensions; d++)
        {
            if (host[d] <= 0)
            {
                continue;
            }
            var sizes = new long[items.Count];
            for (var i = 0; i < sizes.Length; i++)
            {
                sizes[i] = items[i][d];
            }
            var l2 = L2(sizes, host[d]);
            if (l2 > best.Hosts)
            {
                best = new LowerBound(l2, "l2:" + DimensionNames[d]);
            }
        }
        return best;
    }

    /// <summary>Martello–Toth L2 for one dimension: items of the given sizes into bins of capacity <paramref name="capacity"/>.</summary>
    public static int L2(long[] sizes, long capacity)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        if (sizes.Length == 0)
        {
            return 0;
        }
        var sorted = (long[])sizes.Clone();
        Array.Sort(sorted);
        var best = 0L;
        var candidates = sorted.Where(s => s <= capacity / 2).Distinct().Append(0).ToImmutableArray();
        foreach (var alpha in candidates)
        {
            long j1 = 0, j2 = 0, sumJ2 = 0, sumJ3 = 0;
            foreach (var s in sorted)
            {
                if (s > capacity - alpha)
                {
                    j1++;
                }
                else if (s > capacity / 2)
                {
                    j2++;
                    sumJ2 += s;
                }
                else if (s >= alpha)
                {
                    sumJ3 += s;
                }
            }
            var spare = (j2 * capacity) - sumJ2;
            var extra = Math.Max(0, (sumJ3 - spare + capacity - 1) / capacity);
            best = Math.Max(best, j1 + j2 + extra);
        }
        return (int)best;
    }
}
