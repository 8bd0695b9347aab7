using Stratus.Core.Compute;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>Scaling groups' part of the contract: names unique per project, lookups scoped to a project, compare-and-swap on version.</summary>
public abstract partial class StateStoreConformanceTests
{
    private static ScalingGroup NewScalingGroup(string name, Guid project) => new(Guid.CreateVersion7(), name, project, Guid.CreateVersion7(),
        new ScalingGroupSpec(Guid.NewGuid().ToString(), Guid.NewGuid().ToString(), 1, 3, 2, new HealthCheckSpec(80, "/", TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), 3),
            [new ScalingPolicySpec("hot", "above", 70, TimeSpan.FromSeconds(60), 1, TimeSpan.FromSeconds(120))],
            [new ScheduledChangeSpec("am", T0.AddHours(8), 3, null, null)], "newest", [80], null, null, TimeSpan.FromSeconds(30)),
        ScalingGroupState.New, 1, T0, T0);

    [Fact]
    public async Task ScalingGroup_RoundTrips_NameUniquePerProject_FoundOnlyInItsProject()
    {
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        var g = NewScalingGroup("web", a);
        Assert.True(await Store.CreateScalingGroupAsync(g, Ct));
        Assert.False(await Store.CreateScalingGroupAsync(NewScalingGroup("web", a), Ct));
        Assert.True(await Store.CreateScalingGroupAsync(NewScalingGroup("web", b), Ct)); // another project may use the name
        var read = await Store.GetScalingGroupAsync(g.Id, Ct);
        Assert.NotNull(read);
        Assert.Equal(g.Spec.Policies, read.Spec.Policies);
        Assert.Equal(g.Spec.Schedules, read.Spec.Schedules);
        Assert.Equal(g.Spec.Health, read.Spec.Health);
        Assert.Equal(g.Spec.Forwards, read.Spec.Forwards);
        Assert.Equal(g.Spec with { Policies = [], Schedules = [], Forwards = [] }, read.Spec with { Policies = [], Schedules = [], Forwards = [] });
        Assert.Equal(g.Id, (await Store.FindScalingGroupAsync("web", a, Ct))?.Id);
        Assert.Equal(g.Id, (await Store.FindScalingGroupAsync(g.Id.ToString("D"), a, Ct))?.Id);
        Assert.Null(await Store.FindScalingGroupAsync(g.Id.ToString("D"), b, Ct));
        Assert.Equal(2, (await Store.ListScalingGroupsAsync(Ct)).Count);
    }

    [Fact]
    public async Task ScalingGroup_Update_CompareAndSwapOnVersion_DeleteOnVersion()
    {
        var g = NewScalingGroup("cas", Guid.NewGuid());
        await Store.CreateScalingGroupAsync(g, Ct);
        var member = new ScalingMember(Guid.NewGuid(), "cas-1", 1, T0, 0, T0.AddSeconds(5));
        var next = g with { Spec = g.Spec with { Desired = 3 }, State = g.State with { Members = [member], NextIndex = 2, Events = [new ScalingEvent(T0, "member_added", "added cas-1")] } };
        Assert.Equal(CasOutcome.Ok, await Store.UpdateScalingGroupAsync(next, Ct));
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CasOutcome.Conflict, await Store.UpdateScalingGroupAsync(next with { Spec = next.Spec with { Desired = 1 } }, Ct)); // stale version
        Assert.Equal(before, await Store.DumpAsync(Ct));
        var read = (await Store.GetScalingGroupAsync(g.Id, Ct))!;
        Assert.Equal(2, read.Version);
        Assert.Equal(3, read.Spec.Desired);
        Assert.Equal(member, Assert.Single(read.State.Members));
        Assert.Equal("added cas-1", Assert.Single(read.State.Events).Message);
        Assert.False(await Store.DeleteScalingGroupAsync(g.Id, 1, Ct));
        Assert.True(await Store.DeleteScalingGroupAsync(g.Id, 2, Ct));
        Assert.Null(await Store.GetScalingGroupAsync(g.Id, Ct));
        Assert.Equal(CasOutcome.NotFound, await Store.UpdateScalingGroupAsync(read, Ct));
    }
}
