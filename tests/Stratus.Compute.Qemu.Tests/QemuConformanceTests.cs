using Stratus.Compute;
using Stratus.Core.Ids;
using Stratus.TestKit.Compute;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>The shared driver contract against real QEMU processes (firmware-only VMs: fast, no guest OS).</summary>
public sealed class QemuConformanceTests : DriverConformanceTests
{
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();

    protected override Task<IComputeDriver> CreateDriverAsync()
    {
        TestEnvironment.RequireQemu();
        var options = TestEnvironment.Options(_dataDir);
        options.GracefulStopTimeout = TimeSpan.FromSeconds(1);
        return Task.FromResult<IComputeDriver>(new QemuDriver(options));
    }

    protected override VmSpec CreateSpec(InstanceId id) => TestEnvironment.BareSpec(id);

    protected override Task CleanupAsync()
    {
        TestEnvironment.DeleteDirectory(_dataDir);
        return Task.CompletedTask;
    }
}
