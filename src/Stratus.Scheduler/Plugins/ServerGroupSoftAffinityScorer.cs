using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>Soft affinity: members of the request's group on the host, normalised by the most on any scored host. Positive weight gathers the group.</summary>
public sealed class ServerGroupSoftAffinityScorer : IScorePlugin
{
    public string Name => "ServerGroupSoftAffinityScorer";

    public bool NeedsNormalize => true;

    public bool Prepare(CycleState state) => state.Request.Group is { Policy: ServerGroupPolicy.SoftAffinity } && state.GroupHasMembers;

    public double Score(CycleState state, HostSnapshot host) => state.GroupMembersAt(state.HostIndex);

    public void Normalize(CycleState state, Span<double> scores)
    {
        var max = 0.0;
        foreach (var s in scores)
        {
            max = Math.Max(max, s);
        }
        for (var i = 0; i < scores.Length; i++)
        {
            scores[i] = max <= 0 ? 0 : scores[i] / max;
        }
    }
}
