using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.InteropServices;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Batch;

/// <summary>N instances placed in one decision (<c>server create … --count N</c>).</summary>
/// <param name="Instances">The instances, placed in this order. Instances naming the same group (by name) see each other.</param>
/// <param name="AllOrNothing">When true, one refusal refuses the whole batch and no placement is returned as usable.</param>
public sealed record BatchPlacementRequest(ImmutableArray<PlacementRequest> Instances, bool AllOrNothing = true);

/// <summary>What one host receives from a batch: claim it with one compare-and-swap on <paramref name="Generation"/>.</summary>
public sealed record HostClaim(HostId Host, long Generation, ResourceVector Demand, long GpuMilli, ImmutableArray<InstanceId> Instances);

/// <summary>The outcome of a batch.</summary>
/// <param name="Results">One result per instance, in request order (refused instances carry their reasons).</param>
/// <param name="Complete">True when every instance was placed.</param>
/// <param name="Claims">Per host, what to claim; empty when an all-or-nothing batch was refused.</param>
/// <param name="Reasons">Why the batch (or some instances) could not be placed; empty when complete.</param>
public sealed record BatchPlacementResult(ImmutableArray<PlacementResult> Results, bool Complete, ImmutableArray<HostClaim> Claims, ImmutableArray<string> Reasons);

/// <summary>
/// Places a batch on a private overlay of the snapshot: each placement adds its demand (and its
/// group membership) to the overlay before the next instance is placed, so the batch respects
/// capacity and group rules among its own members. Pure: the snapshot is not changed.
/// </summary>
public static class BatchPlacer
{
    public static BatchPlacementResult Place(IPlacementEngine engine, BatchPlacementRequest batch, ClusterSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(snapshot);
        // One O(hosts) copy per batch; the overlay is private to this call, so it is mutated in place.
        var overlay = snapshot.Hosts.ToArray();
        var view = new ClusterSnapshot(ImmutableCollectionsMarshal.AsImmutableArray(overlay));
        var groups = new Dictionary<string, ServerGroupSnapshot>(StringComparer.Ordinal);
        var results = ImmutableArray.CreateBuilder<PlacementResult>(batch.Instances.Length);
        var reasons = ImmutableArray.CreateBuilder<string>();
        var perHost = new Dictionary<int, (ResourceVector Demand, long Gpu, List<InstanceId> Ids)>();
        for (var i = 0; i < batch.Instances.Length; i++)
        {
            var request = batch.Instances[i];
            if (request.Group is { } g)
            {
                request = request with { Group = groups.TryGetValue(g.Name, out var current) ? current : g };
            }
            var result = engine.Place(request, view);
            results.Add(result);
            switch (result)
            {
                case Placed placed:
                    {
                        var idx = view.IndexOf(placed.Host);
                        var h = overlay[idx];
                        overlay[idx] = h with
                        {
                            Used = h.Used + request.Demand,
                            GpuMilliUsed = h.GpuMilliUsed + request.GpuMilli,
                            InstanceCount = h.InstanceCount + 1,
                        };
                        if (request.Group is { } rg)
                        {
                            groups[rg.Name] = rg.WithMember(placed.Host);
                        }
                        if (!perHost.TryGetValue(idx, out var acc))
                        {
                            acc = (ResourceVector.Zero, 0L, new List<InstanceId>());
                        }
                        acc.Ids.Add(request.InstanceId);
                        perHost[idx] = (acc.Demand + request.Demand, acc.Gpu + request.GpuMilli, acc.Ids);
                        break;
                    }
                case Unschedulable u:
                    reasons.Add(Prefix(i, batch.Instances.Length, u.Reasons));
                    break;
                case UnschedulableAndUnresolvable uu:
                    reasons.Add(Prefix(i, batch.Instances.Length, uu.Reasons));
                    break;
            }
            if (reasons.Count > 0 && batch.AllOrNothing)
            {
                reasons.Add(string.Create(CultureInfo.InvariantCulture, $"all-or-nothing: {i} of {batch.Instances.Length} instances fitted before this one; none is placed"));
                return new BatchPlacementResult(results.ToImmutable(), false, [], reasons.ToImmutable());
            }
        }
        var claims = perHost
            .OrderBy(kv => kv.Key)
            .Select(kv => new HostClaim(snapshot.Hosts[kv.Key].Id, snapshot.Hosts[kv.Key].Generation, kv.Value.Demand, kv.Value.Gpu, [.. kv.Value.Ids]))
            .ToImmutableArray();
        return new BatchPlacementResult(results.ToImmutable(), reasons.Count == 0, claims, reasons.ToImmutable());
    }

    private static string Prefix(int i, int n, ImmutableArray<string> reasons) =>
        string.Create(CultureInfo.InvariantCulture, $"instance {i + 1} of {n}: {string.Join("; ", reasons)}");
}
