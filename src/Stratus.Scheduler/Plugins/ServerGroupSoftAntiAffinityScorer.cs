using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Soft anti-affinity: 1 − members on the host ÷ the most on any scored host (1 everywhere when
/// no scored host holds one). Positive weight spreads the group; hosts at or above the group's
/// <see cref="ServerGroupSnapshot.MaxPerHost"/> score 0.
/// </summary>
public sealed class ServerGroupSoftAntiAffinityScorer : IScorePlugin
{
    public string Name => "ServerGroupSoftAntiAffinityScorer";

    public bool NeedsNormalize => true;

    public bool Prepare(CycleState state) => state.Request.Group is { Policy: ServerGroupPolicy.SoftAntiAffinity } && state.GroupHasMembers;

    public double Score(CycleState state, HostSnapshot host) => state.GroupMembersAt(state.HostIndex);

    public void Normalize(CycleState state, Span<double> scores)
    {
        var max = 0.0;
        foreach (var s in scores)
        {
            max = Math.Max(max, s);
        }
        var cap = Math.Max(1, state.Request.Group!.MaxPerHost);
        for (var i = 0; i < scores.Length; i++)
        {
            scores[i] = scores[i] >= cap && cap > 1 ? 0 : max <= 0 ? 1 : 1 - (scores[i] / max);
        }
    }
}
