using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>Metering: intervals follow the lifecycle writes in the same transaction; resize; price sheets; budgets.</summary>
public abstract partial class StateStoreConformanceTests
{
    private static DateTimeOffset At(int minutes) => T0.AddMinutes(minutes);

    /// <summary>A flavor "m1" and a server of it placed (claimed) on a host, still building; returns the fresh row.</summary>
    private async Task<(Instance Server, Host Host)> PlacedAsync(string name, ResourceVector? res = null, long hostMem = 8192)
    {
        var flavor = await Store.FindFlavorAsync("m1", Ct);
        if (flavor is null)
        {
            flavor = new Flavor(FlavorId.New(), "m1", 1, 512, 10, true, T0);
            await Store.CreateFlavorAsync(flavor, Ct);
        }
        var h = await Store.FindHostAsync("meter-host", Ct) ?? await HostAsync("meter-host", mem: hostMem);
        var i = NewInstance(name, res ?? flavor.Resources) with { FlavorId = flavor.Id };
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        h = (await Store.GetHostAsync(h.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.ClaimAsync(i with { HostId = h.Id, Task = InstanceTask.Spawning, UpdatedAt = At(0) }, h.Id, h.Generation, i.Resources, Ct));
        return ((await Store.GetInstanceAsync(i.Id, Ct))!, h);
    }

    /// <summary>Writes <paramref name="change"/> of the server's current row at <paramref name="at"/>.</summary>
    private async Task<Instance> WriteAsync(InstanceId id, DateTimeOffset at, Func<Instance, Instance> change)
    {
        var cur = (await Store.GetInstanceAsync(id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.UpdateInstanceAsync(change(cur) with { UpdatedAt = at }, null, Ct));
        return (await Store.GetInstanceAsync(id, Ct))!;
    }

    [Fact]
    public async Task Metering_Lifecycle_IntervalsOpenAndCloseAtTheWriteTimes()
    {
        var (s, _) = await PlacedAsync("m-life");
        Assert.Empty(await Store.ListServerUsageAsync(s.Id, Ct)); // building: not billed
        await WriteAsync(s.Id, At(10), i => i with { VmState = VmState.Active, Task = null });
        await WriteAsync(s.Id, At(20), i => i with { Task = InstanceTask.Stopping });      // still running until it is off
        await WriteAsync(s.Id, At(25), i => i with { VmState = VmState.Stopped, Task = null });
        await WriteAsync(s.Id, At(40), i => i with { Task = InstanceTask.Starting });
        await WriteAsync(s.Id, At(41), i => i with { VmState = VmState.Active, Task = null });
        await WriteAsync(s.Id, At(50), i => i with { VmState = VmState.Paused });          // paused bills as running: no split
        await WriteAsync(s.Id, At(55), i => i with { Task = InstanceTask.Deleting });       // billing ends at the delete
        var cur = (await Store.GetInstanceAsync(s.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.ReleaseAsync(cur with { VmState = VmState.Deleted, Task = null, UpdatedAt = At(56) }, null, Ct));

        var usage = await Store.ListServerUsageAsync(s.Id, Ct);
        Assert.Equal(
            new[] { (UsageState.Running, At(10), (DateTimeOffset?)At(25)), (UsageState.Stopped, At(25), At(41)), (UsageState.Running, At(41), At(55)) },
            usage.Select(u => (u.State, u.Start, u.End)).ToList());
        Assert.All(usage, u =>
        {
            Assert.Equal(ResourceVector.Of(1, 512, 10), u.Resources);
            Assert.Equal("m1", u.FlavorName);
            Assert.Equal(Metering.AdminProjectId, u.ProjectId);
            Assert.Equal("m-life", u.InstanceName);
        });
        Assert.Empty(await Store.ReconcileUsageAsync(At(60), false, Ct));
    }

    [Fact]
    public async Task Metering_WritesThatBillTheSame_DoNotSplit()
    {
        var (s, _) = await PlacedAsync("m-same");
        await WriteAsync(s.Id, At(1), i => i with { VmState = VmState.Active, Task = null, PowerState = PowerState.Running });
        await WriteAsync(s.Id, At(2), i => i with { Ha = true, HaPriority = 5 });
        await WriteAsync(s.Id, At(3), i => i with { Task = InstanceTask.Rebooting, RebootSeq = i.RebootSeq + 1 });
        await WriteAsync(s.Id, At(4), i => i with { Task = null });
        var open = Assert.Single(await Store.ListServerUsageAsync(s.Id, Ct));
        Assert.Equal((At(1), (DateTimeOffset?)null), (open.Start, open.End));
    }

    [Fact]
    public async Task Metering_ErrorState_NotBilledUntilActiveAgain()
    {
        var (s, _) = await PlacedAsync("m-err");
        await WriteAsync(s.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        await WriteAsync(s.Id, At(5), i => i with { VmState = VmState.Error, Fault = "crashed" });
        await WriteAsync(s.Id, At(7), i => i with { Task = InstanceTask.RebootingHard });
        await WriteAsync(s.Id, At(8), i => i with { VmState = VmState.Active, Task = null, Fault = null });
        Assert.Equal(new[] { (At(0), (DateTimeOffset?)At(5)), (At(8), null) }, (await Store.ListServerUsageAsync(s.Id, Ct)).Select(u => (u.Start, u.End)).ToList());
    }

    [Fact]
    public async Task Resize_RunningServer_ClosesOneIntervalAndOpensTheNextAtTheResize()
    {
        var (s, h) = await PlacedAsync("m-resize");
        s = await WriteAsync(s.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        var bigger = ResourceVector.Of(2, 1024, 20);
        Assert.Equal(CasOutcome.Ok, await Store.ResizeAsync(s with { Resources = bigger, UpdatedAt = At(30) }, null, null, Ct));

        var usage = await Store.ListServerUsageAsync(s.Id, Ct);
        Assert.Equal(new[] { (ResourceVector.Of(1, 512, 10), At(0), (DateTimeOffset?)At(30)), (bigger, At(30), null) },
            usage.Select(u => (u.Resources, u.Start, u.End)).ToList());
        Assert.Equal(bigger, Assert.Single(await Store.ListAllocationsAsync(Ct)).Resources);
        Assert.Equal(bigger, (await Store.GetHostAsync(h.Id, Ct))!.Used);
        Assert.Empty(await Store.ReconcileUsageAsync(At(31), false, Ct));
    }

    [Fact]
    public async Task Resize_BeyondTheHost_NoCapacityAndNothingWritten()
    {
        var (s, _) = await PlacedAsync("m-toobig", hostMem: 1024);
        s = await WriteAsync(s.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CasOutcome.NoCapacity, await Store.ResizeAsync(s with { Resources = ResourceVector.Of(1, 2048, 10), UpdatedAt = At(5) }, null, null, Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
    }

    [Fact]
    public async Task Resize_BeyondTheProjectQuota_QuotaExceededAndNothingWritten_ShrinkStillAllowed()
    {
        var (s, _) = await PlacedAsync("m-quota");
        s = await WriteAsync(s.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        await Store.CreateProjectAsync(new Stratus.Core.Identity.Project(s.Project, "quota-owner", Stratus.Core.Identity.Quotas.Default, At(0)), Ct);
        Assert.True(await Store.SetQuotasAsync(s.Project, Stratus.Core.Identity.Quotas.Default with { Vcpus = 1 }, Ct));
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CasOutcome.QuotaExceeded, await Store.ResizeAsync(s with { Resources = ResourceVector.Of(2, 512, 10), UpdatedAt = At(5) }, null, null, Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
        // Only growth is checked: the same server may shrink its memory while at its vCPU quota.
        Assert.Equal(CasOutcome.Ok, await Store.ResizeAsync(s with { Resources = ResourceVector.Of(1, 256, 10), UpdatedAt = At(6) }, null, null, Ct));
    }

    [Fact]
    public async Task Metering_MigrationCommit_KeepsTheInterval()
    {
        var (s, h) = await PlacedAsync("m-move");
        s = await WriteAsync(s.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        var dst = await HostAsync("meter-dst");
        var moving = s with { Task = InstanceTask.Migrating, UpdatedAt = At(10) };
        Assert.Equal(CasOutcome.Ok, await Store.BeginMigrationAsync(moving, new MigrationRecord(s.Id, h.Id, dst.Id, "live", s.Resources, At(10)), dst.Generation,
            new InstanceAction(0, s.Id, "migrate", "test", At(10), null, "pending", null), Ct));
        var cur = (await Store.GetInstanceAsync(s.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.FinishMigrationAsync(cur with { HostId = dst.Id, Task = null, UpdatedAt = At(11) }, true, new ActionFinish("success", null, At(11)), Ct));
        var open = Assert.Single(await Store.ListServerUsageAsync(s.Id, Ct));
        Assert.Equal((At(0), (DateTimeOffset?)null), (open.Start, open.End));
    }

    [Fact]
    public async Task ListUsage_Period_OnlyOverlappingIntervalsOfTheProject()
    {
        var (a, _) = await PlacedAsync("m-a");
        await WriteAsync(a.Id, At(0), i => i with { VmState = VmState.Active, Task = null });
        await WriteAsync(a.Id, At(10), i => i with { VmState = VmState.Stopped });
        await WriteAsync(a.Id, At(20), i => i with { VmState = VmState.Active });
        Assert.Equal(new[] { At(10) }, (await Store.ListUsageAsync(Metering.AdminProjectId, At(12), At(18), Ct)).Select(u => u.Start).ToList());
        Assert.Equal(new[] { At(0), At(10), At(20) }, (await Store.ListUsageAsync(null, At(5), At(25), Ct)).Select(u => u.Start).ToList());
        Assert.Empty(await Store.ListUsageAsync(Guid.NewGuid(), At(0), At(30), Ct));
        Assert.Equal(new[] { At(20) }, (await Store.ListUsageAsync(null, At(20), At(21), Ct)).Select(u => u.Start).ToList()); // [from, to): an interval ending at from is out
    }

    [Fact]
    public async Task PriceSheets_SeededDefaultThenSaved_ListedInEffectOrder()
    {
        var seeded = Assert.Single(await Store.ListPriceSheetsAsync(Ct));
        Assert.Equivalent(PriceSheet.Default, seeded);
        var sheet = new PriceSheet("USD", 0.031m, 0.0042m, 0.00013m, new Dictionary<string, decimal> { ["m1"] = 0.125m }, At(60));
        await Store.SavePriceSheetAsync(sheet, At(0), Ct);
        await Store.SavePriceSheetAsync(sheet with { VcpuHour = 0.05m }, At(1), Ct); // same effective time: replaces
        var all = await Store.ListPriceSheetsAsync(Ct);
        Assert.Equal(2, all.Count);
        Assert.Equal(0.05m, all[1].VcpuHour);
        Assert.Equal(0.125m, all[1].FlavorHour["m1"]);
        Assert.Equal(At(60), all[1].EffectiveFrom);
        Assert.False(await Store.AnyUsageAsync(Ct));
    }

    [Fact]
    public async Task Budgets_SetReplaceDelete()
    {
        var p = Guid.NewGuid();
        Assert.Null(await Store.GetBudgetAsync(p, Ct));
        await Store.SetBudgetAsync(new Budget(p, 100.50m, 80, false, At(0)), Ct);
        await Store.SetBudgetAsync(new Budget(p, 200.25m, 90, true, At(1)), Ct);
        Assert.Equal(new Budget(p, 200.25m, 90, true, At(1)), await Store.GetBudgetAsync(p, Ct));
        Assert.Single(await Store.ListBudgetsAsync(Ct));
        Assert.True(await Store.DeleteBudgetAsync(p, Ct));
        Assert.False(await Store.DeleteBudgetAsync(p, Ct));
    }
}
