using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests.Consolidation;

public sealed class CpuSchedulerTests
{
    [Fact]
    public void Allocate_RoomForAll_GivesRequestsWithMigrationFactors()
    {
        var alloc = new double[3];
        var available = CloudSimCpuScheduler.Allocate(5320, 2660, [1000, 2000, 500], [MigrationRole.None, MigrationRole.Out, MigrationRole.In], alloc);
        Assert.Equal(1000, alloc[0], 9);
        Assert.Equal(1800, alloc[1], 9);
        Assert.Equal(50, alloc[2], 9);
        // The destination only reserves 10 % of a migrating-in VM.
        Assert.Equal(5320 - 1000 - 2000 - 50, available, 9);
    }

    [Fact]
    public void Allocate_OverSubscribed_ScalesEveryShareAndFloors()
    {
        var alloc = new double[2];
        var available = CloudSimCpuScheduler.Allocate(3720, 1860, [1860, 2500], [MigrationRole.None, MigrationRole.None], alloc);
        // Requests are capped at one core (2,500 → 1,860): 3,720 asked of 3,720, no scaling.
        Assert.Equal(1860, alloc[0], 9);
        Assert.Equal(1860, alloc[1], 9);
        Assert.Equal(0, available, 9);

        var over = new double[3];
        Assert.Equal(0, CloudSimCpuScheduler.Allocate(3720, 1860, [1860, 1860, 1000], [MigrationRole.None, MigrationRole.None, MigrationRole.None], over));
        var scale = 3720.0 / 4720;
        Assert.Equal(Math.Floor(1860 * scale), over[0], 9);
        Assert.Equal(Math.Floor(1000 * scale), over[2], 9);
        Assert.True(over.Sum() <= 3720);
    }
}
