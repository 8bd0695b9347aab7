using Stratus.Core.Compute;
using Stratus.Core.Lifecycle;

namespace Stratus.Core.Tests;

public sealed class ServerLifecycleTests
{
    // Every (state, action) pair with no task running, and whether it is legal: written out, not derived.
    public static TheoryData<VmState, ServerAction, bool> Matrix => new()
    {
        { VmState.Active, ServerAction.Start, false },
        { VmState.Stopped, ServerAction.Start, true },
        { VmState.Paused, ServerAction.Start, false },
        { VmState.Error, ServerAction.Start, false },
        { VmState.Active, ServerAction.Stop, true },
        { VmState.Stopped, ServerAction.Stop, false },
        { VmState.Paused, ServerAction.Stop, true },
        { VmState.Error, ServerAction.Stop, true },
        { VmState.Active, ServerAction.Reboot, true },
        { VmState.Stopped, ServerAction.Reboot, false },
        { VmState.Paused, ServerAction.Reboot, false },
        { VmState.Active, ServerAction.RebootHard, true },
        { VmState.Stopped, ServerAction.RebootHard, true },
        { VmState.Error, ServerAction.RebootHard, true },
        { VmState.Active, ServerAction.Pause, true },
        { VmState.Stopped, ServerAction.Pause, false },
        { VmState.Paused, ServerAction.Pause, false },
        { VmState.Paused, ServerAction.Resume, true },
        { VmState.Active, ServerAction.Resume, false },
        { VmState.Active, ServerAction.Delete, true },
        { VmState.Stopped, ServerAction.Delete, true },
        { VmState.Error, ServerAction.Delete, true },
        { VmState.Building, ServerAction.Delete, true },
        { VmState.Deleted, ServerAction.Delete, false },
        { VmState.Deleted, ServerAction.Start, false },
        { VmState.Building, ServerAction.Start, false },
    };

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Decide_IdleServer_MatchesTable(VmState state, ServerAction action, bool legal)
    {
        var d = ServerLifecycle.Decide(state, null, action);
        Assert.Equal(legal, d.Allowed);
        if (!legal)
        {
            Assert.False(string.IsNullOrWhiteSpace(d.Reason));
            Assert.NotNull(d.ErrorCode);
        }
    }

    [Fact]
    public void Decide_StartWhileActive_ReasonNamesStates()
    {
        var d = ServerLifecycle.Decide(VmState.Active, null, ServerAction.Start);
        Assert.Equal("illegal_state", d.ErrorCode);
        Assert.Equal("'start' is not possible when the server is active; it is possible when the server is stopped", d.Reason);
    }

    [Fact]
    public void Decide_ActionDuringTask_RefusedButDeleteAllowed()
    {
        var stop = ServerLifecycle.Decide(VmState.Active, InstanceTask.Rebooting, ServerAction.Stop);
        Assert.Equal("task_in_progress", stop.ErrorCode);
        Assert.Contains("rebooting", stop.Reason, StringComparison.Ordinal);
        Assert.True(ServerLifecycle.Decide(VmState.Building, InstanceTask.Spawning, ServerAction.Delete).Allowed);
        Assert.Equal("server_deleting", ServerLifecycle.Decide(VmState.Active, InstanceTask.Deleting, ServerAction.Delete).ErrorCode);
    }

    [Fact]
    public void Table_EveryAction_HasExactlyOneRowAndTarget()
    {
        foreach (var action in Enum.GetValues<ServerAction>())
        {
            var row = Assert.Single(ServerLifecycle.Table, t => t.Action == action);
            Assert.NotEmpty(row.From);
            Assert.DoesNotContain(VmState.Deleted, (IEnumerable<VmState>)row.From);
        }
        Assert.Equal(VmState.Stopped, ServerLifecycle.For(ServerAction.Stop).Target);
        Assert.Equal(InstanceTask.Pausing, ServerLifecycle.For(ServerAction.Pause).Task);
    }

    [Fact]
    public void Names_RoundTrip_AllStatesAndTasks()
    {
        foreach (var s in Enum.GetValues<VmState>())
        {
            Assert.Equal(s, Names.ParseVmState(Names.Of(s)));
        }
        foreach (var t in Enum.GetValues<InstanceTask>())
        {
            Assert.Equal(t, Names.ParseTask(Names.Of(t)));
        }
        foreach (var h in Enum.GetValues<HostState>())
        {
            Assert.Equal(h, Names.ParseHostState(Names.Of(h)));
        }
        Assert.Null(Names.ParseVmState("ACTIVE"));
    }
}
