using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests.Consolidation;

public sealed class PlannerTests
{
    private static ConsolidationSnapshot Cluster()
    {
        var b = new TestCluster.Builder();
        var busy = b.Host(TestCluster.G5);
        var light = b.Host(TestCluster.G4);
        var mid = b.Host(TestCluster.G5);
        b.Host(TestCluster.G5);
        for (var i = 0; i < 3; i++)
        {
            b.Vm(busy, 2500, 870, 2200, 0.88, 0.8, 0.7, 0.8, 0.88, 0.8, 0.7, 0.8, 0.88, 0.8);
        }
        b.Vm(light, 500, 613, 100, 0.2, 0.2, 0.2);
        b.Vm(mid, 2000, 1740, 1000, 0.5, 0.5, 0.5);
        b.Vm(mid, 1000, 1740, 500, 0.5, 0.5, 0.5);
        return b.Build();
    }

    private static string Fingerprint(ConsolidationSnapshot s)
        => string.Join('|', s.Hosts.Select(h => $"{h.Spec.Name}:{h.UtilizationMips}:{h.IsOn}"))
            + "#" + string.Join('|', s.HostVms.Select(l => string.Join(',', l)))
            + "#" + string.Join('|', s.Vms.Select(v => $"{v.Host}:{v.RequestedMips}:{v.HeldRamMb}:{v.HeldBandwidth}:{v.MigratingTo}:{string.Join(',', v.History.ToArray())}"));

    public static TheoryData<string> Planners => ["lr-mmt", "thr-mmt", "iqr-mc", "mad-mu", "lrr-rs", "stratus"];

    [Theory]
    [MemberData(nameof(Planners))]
    public void Plan_NeverMutatesItsInput(string policy)
    {
        var snapshot = Cluster();
        var before = Fingerprint(snapshot);
        var planner = Stratus.Simulator.Scenarios.PolicyFactory.Create(new Stratus.Simulator.Scenarios.PolicySpec { Name = policy })!;
        var plan = planner.Plan(snapshot);
        Assert.Equal(before, Fingerprint(snapshot));
        Assert.NotEmpty(plan.Moves);
        Assert.All(plan.Moves, m => Assert.Equal(snapshot.Vms[m.Vm].Host, m.From));
    }

    [Fact]
    public void PowerAware_ThrOverload_MovesSmallestRamVmAndEvacuatesLightHost()
    {
        var snapshot = Cluster();
        var plan = new PowerAwareConsolidationPlanner(new StaticThresholdDetector(0.8), new MinimumMigrationTimeSelector()).Plan(snapshot);
        // Host 0 asks for 6,600 of 5,320 MIPS: one 2,500-MIPS VM must leave it.
        Assert.Contains(plan.Moves, m => m.From == 0);
        Assert.DoesNotContain(plan.Moves, m => m.To == 0);
        // The G4 with one small VM is the least utilised and is emptied.
        Assert.Contains(plan.Moves, m => m.From == 1);
        Assert.Contains(1, plan.HostsToSwitchOff);
    }

    [Fact]
    public void Stratus_RelievesOverload_AndNeverPutsABigVmOnASmallCore()
    {
        var snapshot = Cluster();
        var plan = new StratusConsolidationPlanner(StratusPolicyOptions.Default).Plan(snapshot);
        Assert.Contains(plan.Moves, m => m.From == 0);
        Assert.All(plan.Moves, m => Assert.True(snapshot.Vms[m.Vm].Spec.Mips <= snapshot.Hosts[m.To].Spec.MipsPerPe));
        Assert.Contains(1, plan.HostsToSwitchOff);
    }

    [Fact]
    public void Stratus_RespectsMigrationBudget()
    {
        var snapshot = Cluster();
        var plan = new StratusConsolidationPlanner(StratusPolicyOptions.Default with { Budget = 1 }).Plan(snapshot);
        Assert.Single(plan.Moves);
    }

    [Fact]
    public void Stratus_RecentlyMigratedVm_IsNotEvacuated()
    {
        var b = new TestCluster.Builder();
        var a = b.Host(TestCluster.G5);
        var c = b.Host(TestCluster.G5);
        b.Vm(a, 500, 613, 100, 0.2);
        b.Vm(c, 2000, 1740, 1000, 0.5);
        var snap = b.Build();
        var cooling = snap with { Vms = snap.Vms.Select(v => v with { LastMigrationTime = snap.Time - 300 }).ToArray() };
        var planner = new StratusConsolidationPlanner(StratusPolicyOptions.Default);
        Assert.NotEmpty(planner.Plan(snap).Moves);
        Assert.Empty(planner.Plan(cooling).Moves);
    }

    [Fact]
    public void PlaceInitial_PowerAware_FillsEfficientHostsAndKeepsOrder()
    {
        var b = new TestCluster.Builder();
        b.Host(TestCluster.G4);
        b.Host(TestCluster.G5);
        var snap = b.Build();
        var vms = Enumerable.Range(0, 3).Select(i => new VmLoadSnapshot(new VmSpec("v", 1000, 613, 100_000), -1, 0, ReadOnlyMemory<double>.Empty, -1, 613, 100_000, double.NegativeInfinity)).ToArray();
        snap = snap with { Vms = vms };
        var hosts = PowerAwareConsolidationPlanner.PlaceInitial(snap, [0, 1, 2], new StaticThresholdDetector(0.7));
        Assert.All(hosts, h => Assert.InRange(h, 0, 1));
        Assert.Equal(-1, Array.IndexOf(hosts, -1));
    }
}
