using System.Collections.Immutable;
using Stratus.Core.Compute;
using Stratus.Core.Resources;

namespace Stratus.Scheduler.Framework;

/// <summary>Places servers on hosts. Pure: reads only the snapshot it is given; no I/O, clock or global randomness.</summary>
public interface IPlacementEngine
{
    PlacementResult Place(PlacementRequest request, ClusterSnapshot snapshot);
}

/// <summary>
/// The first scheduler: filter by state and resource fit (with allocation ratios), then spread
/// (pick the host with the most free memory relative to capacity; ties by name).
/// </summary>
public sealed class SpreadPlacementEngine : IPlacementEngine
{
    public PlacementResult Place(PlacementRequest request, ClusterSnapshot snapshot)
    {
        var hosts = snapshot.Hosts;
        var steps = ImmutableArray.CreateBuilder<FilterStep>();
        var up = hosts.Where(h => h.State == HostState.Up).ToList();
        steps.Add(new("HostStateFilter", hosts.Length, hosts.Length - up.Count));
        var zoned = request.Zone is null ? up : up.Where(h => h.Zone == request.Zone).ToList();
        if (request.Zone is not null)
        {
            steps.Add(new("AvailabilityZoneFilter", up.Count, up.Count - zoned.Count));
        }
        var fit = zoned.Where(h => request.Demand.FitsIn(h.Free)).ToList();
        steps.Add(new("ResourceFitFilter", zoned.Count, zoned.Count - fit.Count));

        var scored = fit
            .Select(h => new ScoredHost(h.Id, h.Name, Score(h, request.Demand)))
            .OrderByDescending(s => s.Score).ThenBy(s => s.Name, StringComparer.Ordinal)
            .ToImmutableArray();
        var trace = new DecisionTrace("spread", hosts.Length, steps.ToImmutable(), scored.Take(5).ToImmutableArray(), fit.Count);
        if (scored.Length > 0)
        {
            var best = scored[0];
            var gen = fit.First(h => h.Id == best.Host).Generation;
            return new Placed(best.Host, gen, trace);
        }
        var reasons = Explain(request, zoned, hosts.Length, up.Count);
        var everFits = zoned.Any(h => request.Demand.FitsIn(h.Capacity));
        return everFits || zoned.Count == 0 && hosts.Length > 0 && up.Count == 0
            ? new Unschedulable(reasons, trace)
            : new UnschedulableAndUnresolvable(reasons, trace);
    }

    private static double Score(HostSnapshot h, ResourceVector demand)
    {
        var free = h.Free - demand;
        double Ratio(long f, long c) => c <= 0 ? 0 : (double)f / c;
        return (Ratio(free.MilliVcpus, h.Capacity.MilliVcpus) + Ratio(free.MemoryMib, h.Capacity.MemoryMib) + Ratio(free.DiskGib, h.Capacity.DiskGib)) / 3;
    }

    private static ImmutableArray<string> Explain(PlacementRequest r, List<HostSnapshot> candidates, int total, int up)
    {
        var reasons = ImmutableArray.CreateBuilder<string>();
        if (total == 0)
        {
            reasons.Add("no hosts are registered");
            return reasons.ToImmutable();
        }
        if (up == 0)
        {
            reasons.Add($"none of the {total} hosts is up");
            return reasons.ToImmutable();
        }
        if (candidates.Count == 0)
        {
            reasons.Add($"no up host is in zone '{r.Zone}'");
            return reasons.ToImmutable();
        }
        var maxCpu = candidates.Max(h => h.Free.MilliVcpus);
        var maxMem = candidates.Max(h => h.Free.MemoryMib);
        var maxDisk = candidates.Max(h => h.Free.DiskGib);
        if (r.Demand.MilliVcpus > maxCpu)
        {
            reasons.Add($"vcpu: largest free {maxCpu / 1000.0:0.###} vCPU, asked {r.Demand.MilliVcpus / 1000.0:0.###} vCPU");
        }
        if (r.Demand.MemoryMib > maxMem)
        {
            reasons.Add($"memory: largest free {FormatMib(maxMem)}, asked {FormatMib(r.Demand.MemoryMib)}");
        }
        if (r.Demand.DiskGib > maxDisk)
        {
            reasons.Add($"disk: largest free {maxDisk} GiB, asked {r.Demand.DiskGib} GiB");
        }
        if (reasons.Count == 0)
        {
            reasons.Add($"no single host has {r.Demand} free at once");
        }
        return reasons.ToImmutable();
    }

    private static string FormatMib(long mib) => mib % 1024 == 0 ? $"{mib / 1024} GiB" : $"{mib} MiB";
}
