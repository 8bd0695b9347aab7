using Stratus.Compute.Simulated;
using Stratus.Core.Ids;
using Stratus.TestKit.Compute;

namespace Stratus.Compute.Tests;

/// <summary>The shared driver contract against the simulated driver (realistic delays scaled down 10×).</summary>
public sealed class SimulatedConformanceTests : DriverConformanceTests
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-simconf-").FullName;

    protected override Task<IComputeDriver> CreateDriverAsync() =>
        Task.FromResult<IComputeDriver>(new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = _dir, DelayScale = 0.1 }));

    protected override VmSpec CreateSpec(InstanceId id) => new(id, "conf", 1, 256, 1, null, null, null, null, null, null, [], [], 1, 256);

    protected override Task CleanupAsync()
    {
        Directory.Delete(_dir, true);
        return Task.CompletedTask;
    }
}
