using System.Collections.Frozen;
using Stratus.Core.Compute;

namespace Stratus.Core.Lifecycle;

/// <summary>The actions a user may request on a server.</summary>
public enum ServerAction { Start, Stop, Reboot, RebootHard, Pause, Resume, Delete }

/// <summary>
/// One legal transition: from any of <see cref="From"/> (with no task running, unless
/// <see cref="AllowedDuringTask"/>), the action sets <see cref="Task"/> and, when the task
/// completes, the server settles in <see cref="Target"/>.
/// </summary>
public sealed record Transition(
    ServerAction Action,
    string Name,
    FrozenSet<VmState> From,
    InstanceTask Task,
    VmState Target,
    bool AllowedDuringTask);

/// <summary>The outcome of asking whether an action is legal now.</summary>
public readonly record struct TransitionDecision(Transition? Transition, string? ErrorCode, string? Reason)
{
    public bool Allowed => Transition is not null;
}

/// <summary>
/// The legal server transitions, as data. An illegal request is refused with a reason that
/// names the current state and the states the action is legal in.
/// </summary>
public static class ServerLifecycle
{
    private static readonly FrozenSet<VmState> AnyLive =
        new[] { VmState.Building, VmState.Active, VmState.Stopped, VmState.Paused, VmState.Error }.ToFrozenSet();

    /// <summary>Every transition, one row each.</summary>
    public static readonly IReadOnlyList<Transition> Table =
    [
        new(ServerAction.Start, "start", Set(VmState.Stopped), InstanceTask.Starting, VmState.Active, false),
        new(ServerAction.Stop, "stop", Set(VmState.Active, VmState.Paused, VmState.Error), InstanceTask.Stopping, VmState.Stopped, false),
        new(ServerAction.Reboot, "reboot", Set(VmState.Active), InstanceTask.Rebooting, VmState.Active, false),
        new(ServerAction.RebootHard, "reboot --hard", Set(VmState.Active, VmState.Stopped, VmState.Paused, VmState.Error), InstanceTask.RebootingHard, VmState.Active, false),
        new(ServerAction.Pause, "pause", Set(VmState.Active), InstanceTask.Pausing, VmState.Paused, false),
        new(ServerAction.Resume, "resume", Set(VmState.Paused), InstanceTask.Resuming, VmState.Active, false),
        new(ServerAction.Delete, "delete", AnyLive, InstanceTask.Deleting, VmState.Deleted, true),
    ];

    private static readonly FrozenDictionary<ServerAction, Transition> ByAction = Table.ToFrozenDictionary(t => t.Action);

    /// <summary>The transition row for <paramref name="action"/>.</summary>
    public static Transition For(ServerAction action) => ByAction[action];

    /// <summary>Decides whether <paramref name="action"/> is legal for a server in <paramref name="state"/> with <paramref name="task"/> running.</summary>
    public static TransitionDecision Decide(VmState state, InstanceTask? task, ServerAction action)
    {
        var t = ByAction[action];
        if (task == InstanceTask.Deleting)
        {
            return new(null, "server_deleting", $"the server is being deleted; '{t.Name}' is not possible");
        }
        if (state == VmState.Deleted)
        {
            return new(null, "server_deleted", $"the server is deleted; '{t.Name}' is not possible");
        }
        if (task is not null && !t.AllowedDuringTask)
        {
            return new(null, "task_in_progress",
                $"'{t.Name}' is not possible while the server is {Names.Of(task.Value)}; wait until the task finishes");
        }
        if (!t.From.Contains(state))
        {
            var legal = string.Join(", ", t.From.Select(Names.Of).Order(StringComparer.Ordinal));
            return new(null, "illegal_state",
                $"'{t.Name}' is not possible when the server is {Names.Of(state)}; it is possible when the server is {legal}");
        }
        return new(t, null, null);
    }

    private static FrozenSet<VmState> Set(params VmState[] states) => states.ToFrozenSet();
}
