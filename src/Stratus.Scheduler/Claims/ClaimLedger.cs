using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.InteropServices;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Batch;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Claims;

/// <summary>Outcome of a claim against the <see cref="ClaimLedger"/>.</summary>
public enum ClaimOutcome
{
    /// <summary>Committed: the host's generation (and the group's, if any) was bumped.</summary>
    Claimed,
    /// <summary>The host changed since the snapshot (generation mismatch): re-plan on a fresh snapshot.</summary>
    HostConflict,
    /// <summary>The server group changed since the snapshot: re-plan on a fresh snapshot.</summary>
    GroupConflict,
}

/// <summary>
/// An in-memory resource ledger with the store's claim semantics: a claim compare-and-swaps on the
/// host's generation (and on the group's generation when the instance joins a group), so a claim
/// made on a stale view fails instead of over-committing. Used by benchmarks and tests in place
/// of the store; thread-safe.
/// </summary>
/// <remarks>
/// <see cref="LiveSnapshot"/> is a view over the ledger's current host records. Each record is an
/// immutable <see cref="HostSnapshot"/> swapped whole under the host's lock, so a reader sees
/// every host consistently (like a read-committed store read); different hosts may be seen at
/// different moments, which claims catch by their compare-and-swap.
/// </remarks>
public sealed class ClaimLedger
{
    private readonly HostSnapshot[] _hosts;
    private readonly object[] _hostLocks;
    private readonly Lock _groupLock = new();
    private readonly Dictionary<string, ServerGroupSnapshot> _groups = new(StringComparer.Ordinal);
    private readonly ClusterSnapshot _live;
    private long _claims;
    private long _conflicts;

    public ClaimLedger(IEnumerable<HostSnapshot> hosts)
    {
        _hosts = [.. hosts];
        _hostLocks = new object[_hosts.Length];
        for (var i = 0; i < _hostLocks.Length; i++)
        {
            _hostLocks[i] = new object();
        }
        _live = new ClusterSnapshot(ImmutableCollectionsMarshal.AsImmutableArray(_hosts));
    }

    /// <summary>A view over the current host records (no copy; see the remarks).</summary>
    public ClusterSnapshot LiveSnapshot => _live;

    /// <summary>Successful claims so far.</summary>
    public long Claims => Interlocked.Read(ref _claims);

    /// <summary>Claims refused by a compare-and-swap so far.</summary>
    public long Conflicts => Interlocked.Read(ref _conflicts);

    /// <summary>An immutable copy of every host record, taken host by host.</summary>
    public ClusterSnapshot CopySnapshot()
    {
        var copy = new HostSnapshot[_hosts.Length];
        for (var i = 0; i < copy.Length; i++)
        {
            copy[i] = Volatile.Read(ref _hosts[i]);
        }
        return new ClusterSnapshot(ImmutableCollectionsMarshal.AsImmutableArray(copy));
    }

    /// <summary>Creates the group if it does not exist; returns the current group.</summary>
    public ServerGroupSnapshot EnsureGroup(string name, ServerGroupPolicy policy, int maxPerHost = 1)
    {
        lock (_groupLock)
        {
            if (!_groups.TryGetValue(name, out var g))
            {
                g = ServerGroupSnapshot.Empty(name, policy, maxPerHost);
                _groups[name] = g;
            }
            return g;
        }
    }

    /// <summary>The group's current snapshot, or null.</summary>
    public ServerGroupSnapshot? Group(string name)
    {
        lock (_groupLock)
        {
            return _groups.GetValueOrDefault(name);
        }
    }

    /// <summary>Every group's current snapshot.</summary>
    public ImmutableArray<ServerGroupSnapshot> Groups()
    {
        lock (_groupLock)
        {
            return [.. _groups.Values];
        }
    }

    /// <summary>
    /// Claims what <paramref name="request"/> needs on the host of <paramref name="placed"/>,
    /// compare-and-swapping on the host's generation seen by the decision and, when the request
    /// joins a group, on the group's generation it carried. Never over-commits: a claim that would
    /// not fit is refused as a conflict even if the generation matched.
    /// </summary>
    public ClaimOutcome TryClaim(PlacementRequest request, Placed placed)
    {
        var i = _live.IndexOf(placed.Host);
        if (i < 0)
        {
            throw new ArgumentException($"host {placed.Host} is not in the ledger", nameof(placed));
        }
        // Lock order is always host(s) in index order, then the group lock: no deadlock.
        lock (_hostLocks[i])
        {
            var cur = _hosts[i];
            if (cur.Generation != placed.Generation || !Fits(cur, request.Demand, request.GpuMilli))
            {
                Interlocked.Increment(ref _conflicts);
                return ClaimOutcome.HostConflict;
            }
            if (request.Group is { } g && !TryJoin(g, placed.Host, 1))
            {
                Interlocked.Increment(ref _conflicts);
                return ClaimOutcome.GroupConflict;
            }
            Volatile.Write(ref _hosts[i], Add(cur, request.Demand, request.GpuMilli, 1));
        }
        Interlocked.Increment(ref _claims);
        return ClaimOutcome.Claimed;
    }

    /// <summary>
    /// Claims a whole batch at once (all hosts and groups compare-and-swapped together), so an
    /// all-or-nothing batch is either fully committed or not at all.
    /// </summary>
    public ClaimOutcome TryClaimBatch(BatchPlacementRequest batch, BatchPlacementResult result)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(result);
        var idx = result.Claims.Select(c => _live.IndexOf(c.Host)).ToArray();
        var order = Enumerable.Range(0, idx.Length).OrderBy(k => idx[k]).ToArray();
        var taken = 0;
        try
        {
            foreach (var k in order)
            {
                Monitor.Enter(_hostLocks[idx[k]]);
                taken++;
            }
            for (var k = 0; k < idx.Length; k++)
            {
                var c = result.Claims[k];
                var cur = _hosts[idx[k]];
                if (cur.Generation != c.Generation || !Fits(cur, c.Demand, c.GpuMilli))
                {
                    Interlocked.Increment(ref _conflicts);
                    return ClaimOutcome.HostConflict;
                }
            }
            lock (_groupLock)
            {
                var joins = new Dictionary<string, (ServerGroupSnapshot Seen, ServerGroupSnapshot Next)>(StringComparer.Ordinal);
                for (var r = 0; r < batch.Instances.Length; r++)
                {
                    if (batch.Instances[r].Group is not { } g || result.Results[r] is not Placed p)
                    {
                        continue;
                    }
                    var next = joins.TryGetValue(g.Name, out var j) ? j.Next : _groups.GetValueOrDefault(g.Name) ?? g;
                    if (!joins.ContainsKey(g.Name) && next.Generation != g.Generation)
                    {
                        Interlocked.Increment(ref _conflicts);
                        return ClaimOutcome.GroupConflict;
                    }
                    if (!Allows(next, p.Host))
                    {
                        Interlocked.Increment(ref _conflicts);
                        return ClaimOutcome.GroupConflict;
                    }
                    joins[g.Name] = (g, next.WithMember(p.Host));
                }
                foreach (var (name, j) in joins)
                {
                    _groups[name] = j.Next with { Generation = j.Seen.Generation + 1 };
                }
            }
            for (var k = 0; k < idx.Length; k++)
            {
                var c = result.Claims[k];
                Volatile.Write(ref _hosts[idx[k]], Add(_hosts[idx[k]], c.Demand, c.GpuMilli, c.Instances.Length));
            }
            Interlocked.Add(ref _claims, idx.Length);
            return ClaimOutcome.Claimed;
        }
        finally
        {
            for (var t = taken - 1; t >= 0; t--)
            {
                Monitor.Exit(_hostLocks[idx[order[t]]]);
            }
        }
    }

    /// <summary>Releases an instance's allocation (and group membership). Bumps the host's generation.</summary>
    public void Release(HostId host, ResourceVector demand, long gpuMilli = 0, string? group = null)
    {
        var i = _live.IndexOf(host);
        lock (_hostLocks[i])
        {
            var cur = _hosts[i];
            Volatile.Write(ref _hosts[i], cur with
            {
                Used = cur.Used - demand,
                GpuMilliUsed = cur.GpuMilliUsed - gpuMilli,
                InstanceCount = cur.InstanceCount - 1,
                Generation = cur.Generation + 1,
            });
            if (group is not null)
            {
                lock (_groupLock)
                {
                    if (_groups.TryGetValue(group, out var g))
                    {
                        var next = g.WithoutMember(host);
                        _groups[group] = next with { Generation = g.Generation + 1 };
                    }
                }
            }
        }
    }

    /// <summary>Drops a group with no members (idempotent).</summary>
    public void RemoveGroupIfEmpty(string name)
    {
        lock (_groupLock)
        {
            if (_groups.TryGetValue(name, out var g) && g.MembersPerHost.IsEmpty)
            {
                _groups.Remove(name);
            }
        }
    }

    /// <summary>Every broken invariant: a host allocated beyond its capacity, or a group rule broken. Empty when all hold.</summary>
    public ImmutableArray<string> Violations()
    {
        var v = ImmutableArray.CreateBuilder<string>();
        foreach (var h in CopySnapshot().Hosts)
        {
            if (!h.Used.FitsIn(h.Capacity) || h.Used.AnyNegative || h.GpuMilliUsed > h.GpuMilliCapacity)
            {
                v.Add($"host {h.Name}: used {h.Used} exceeds capacity {h.Capacity}");
            }
        }
        foreach (var g in Groups())
        {
            switch (g.Policy)
            {
                case ServerGroupPolicy.AntiAffinity:
                    foreach (var (host, n) in g.MembersPerHost)
                    {
                        if (n > Math.Max(1, g.MaxPerHost))
                        {
                            v.Add(string.Create(CultureInfo.InvariantCulture, $"anti-affinity group {g.Name}: {n} members on host {host}"));
                        }
                    }
                    break;
                case ServerGroupPolicy.Affinity when g.MembersPerHost.Count > 1:
                    v.Add(string.Create(CultureInfo.InvariantCulture, $"affinity group {g.Name}: members on {g.MembersPerHost.Count} hosts"));
                    break;
            }
        }
        return v.ToImmutable();
    }

    private bool TryJoin(ServerGroupSnapshot seen, HostId host, int count)
    {
        lock (_groupLock)
        {
            var cur = _groups.GetValueOrDefault(seen.Name) ?? seen;
            if (cur.Generation != seen.Generation || !Allows(cur, host))
            {
                return false;
            }
            var next = cur;
            for (var k = 0; k < count; k++)
            {
                next = next.WithMember(host);
            }
            _groups[seen.Name] = next with { Generation = cur.Generation + 1 };
            return true;
        }
    }

    private static bool Allows(ServerGroupSnapshot g, HostId host) => g.Policy switch
    {
        ServerGroupPolicy.AntiAffinity => g.MembersOn(host) < Math.Max(1, g.MaxPerHost),
        ServerGroupPolicy.Affinity => g.MembersPerHost.IsEmpty || g.MembersPerHost.ContainsKey(host),
        _ => true,
    };

    private static bool Fits(HostSnapshot h, ResourceVector demand, long gpu) =>
        (h.Used + demand).FitsIn(h.Capacity) && h.GpuMilliUsed + gpu <= h.GpuMilliCapacity;

    private static HostSnapshot Add(HostSnapshot h, ResourceVector demand, long gpu, int instances) => h with
    {
        Used = h.Used + demand,
        GpuMilliUsed = h.GpuMilliUsed + gpu,
        InstanceCount = h.InstanceCount + instances,
        Generation = h.Generation + 1,
    };
}
