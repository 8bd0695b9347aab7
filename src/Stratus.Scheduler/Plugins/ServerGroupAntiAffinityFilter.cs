using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Hard anti-affinity: removes hosts that already hold <see cref="ServerGroupSnapshot.MaxPerHost"/>
/// members of the request's group (default one, so members land on distinct hosts).
/// </summary>
public sealed class ServerGroupAntiAffinityFilter : IFilterPlugin
{
    public string Name => "ServerGroupAntiAffinityFilter";

    public bool Prepare(CycleState state) => state.Request.Group is { Policy: ServerGroupPolicy.AntiAffinity } && state.GroupHasMembers;

    public bool Filter(CycleState state, HostSnapshot host) =>
        state.GroupMembersAt(state.HostIndex) < Math.Max(1, state.Request.Group!.MaxPerHost);

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var g = state.Request.Group!;
        var max = Math.Max(1, g.MaxPerHost);
        var full = reached.Count(h => g.MembersOn(h.Id) >= max);
        var what = max == 1 ? "a member" : string.Create(CultureInfo.InvariantCulture, $"{max} members (max {max} per host)");
        return new FilterExplanation(string.Create(CultureInfo.InvariantCulture,
            $"anti-affinity group {g.Name}: {full} of {ResourceFormat.Hosts(reached.Count)} already hold {what}"), false);
    }
}
