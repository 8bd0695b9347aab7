using Stratus.Core.Resources;

namespace Stratus.Scheduler.Framework;

/// <summary>
/// Per-request scheduling state: the request, the snapshot, demand unpacked for the hot path, the
/// index of the host being examined, and per-host group member counts. One instance serves one
/// request at a time on one thread; the engine reuses instances (reset per request) so the inner
/// loop does not allocate.
/// </summary>
public sealed class CycleState
{
    private int[] _groupCounts = [];
    private int[] _touched = [];
    private int _touchedCount;

    internal CycleState()
    {
        Request = null!;
        Snapshot = null!;
    }

    /// <summary>The request being placed.</summary>
    public PlacementRequest Request { get; private set; }

    /// <summary>The snapshot the request is placed on.</summary>
    public ClusterSnapshot Snapshot { get; private set; }

    /// <summary>Index in <see cref="ClusterSnapshot.Hosts"/> of the host being filtered or scored.</summary>
    public int HostIndex { get; internal set; }

    /// <summary>CPU demand in milli-vCPUs.</summary>
    public long Cpu { get; private set; }

    /// <summary>Memory demand in MiB.</summary>
    public long Memory { get; private set; }

    /// <summary>Disk demand in GiB.</summary>
    public long Disk { get; private set; }

    /// <summary>GPU demand in milli-devices.</summary>
    public long Gpu { get; private set; }

    /// <summary>True when the request belongs to a group that already has members (on any host).</summary>
    public bool GroupHasMembers { get; private set; }

    /// <summary>For affinity: index of a host holding members (−1 when none is in the snapshot).</summary>
    public int GroupAnchorIndex { get; private set; } = -1;

    /// <summary>Members of the request's group on the host at <paramref name="hostIndex"/>.</summary>
    public int GroupMembersAt(int hostIndex) => (uint)hostIndex < (uint)_groupCounts.Length ? _groupCounts[hostIndex] : 0;

    internal void Reset(PlacementRequest request, ClusterSnapshot snapshot)
    {
        Request = request;
        Snapshot = snapshot;
        HostIndex = -1;
        var d = request.Demand;
        Cpu = d.MilliVcpus;
        Memory = d.MemoryMib;
        Disk = d.DiskGib;
        Gpu = request.GpuMilli;
        ClearGroup();
        var group = request.Group;
        if (group is null || group.MembersPerHost.IsEmpty)
        {
            return;
        }
        // Members on hosts missing from the snapshot still count: affinity must not start a second host.
        GroupHasMembers = true;
        var n = snapshot.Hosts.Length;
        if (_groupCounts.Length < n)
        {
            _groupCounts = new int[n];
        }
        foreach (var (host, count) in group.MembersPerHost)
        {
            var i = snapshot.IndexOf(host);
            if (i < 0 || count <= 0)
            {
                continue;
            }
            if (_touchedCount == _touched.Length)
            {
                Array.Resize(ref _touched, Math.Max(8, _touched.Length * 2));
            }
            _touched[_touchedCount++] = i;
            _groupCounts[i] += count;
            if (GroupAnchorIndex < 0 || count > _groupCounts[GroupAnchorIndex])
            {
                GroupAnchorIndex = i;
            }
        }
    }

    internal void Forget()
    {
        ClearGroup();
        Request = null!;
        Snapshot = null!;
    }

    /// <summary>Demand as a vector (CPU, memory, disk).</summary>
    public ResourceVector Demand => new(Cpu, Memory, Disk);

    // Reset only the touched slots: clearing the whole per-host array would cost O(hosts) per request.
    private void ClearGroup()
    {
        for (var i = 0; i < _touchedCount; i++)
        {
            _groupCounts[_touched[i]] = 0;
        }
        _touchedCount = 0;
        GroupHasMembers = false;
        GroupAnchorIndex = -1;
    }
}
