using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>Hard affinity: once the request's group has members, only the host holding them passes.</summary>
public sealed class ServerGroupAffinityFilter : IFilterPlugin
{
    public string Name => "ServerGroupAffinityFilter";

    public bool Prepare(CycleState state) => state.Request.Group is { Policy: ServerGroupPolicy.Affinity } && state.GroupHasMembers;

    public bool Filter(CycleState state, HostSnapshot host) => state.HostIndex == state.GroupAnchorIndex;

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var g = state.Request.Group!;
        if (state.GroupAnchorIndex < 0)
        {
            return new FilterExplanation($"affinity group {g.Name}: its members run on a host that is not in the fleet snapshot", false);
        }
        var anchor = state.Snapshot.Hosts[state.GroupAnchorIndex];
        var reachedAnchor = reached.Any(h => h.Id == anchor.Id);
        return new FilterExplanation(reachedAnchor
            ? string.Create(CultureInfo.InvariantCulture, $"affinity group {g.Name}: its members run on {anchor.Name}, so the other {ResourceFormat.Hosts(reached.Count - 1)} were removed")
            : $"affinity group {g.Name}: its members run on {anchor.Name}, which an earlier filter removed", false);
    }
}
