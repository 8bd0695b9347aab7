using Stratus.Core.Ids;
using Xunit.Abstractions;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>The CPU cap is measured, not assumed: a 2-vCPU guest burning both vCPUs, capped at one core, then an
/// uncapped twin, each measured through its cgroup's CPU accounting.</summary>
[Trait("Category", "Slow")]
public sealed class CpuCapTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string BurnBothVcpus = """
        #!/bin/sh
        (while :; do :; done) &
        (while :; do :; done) &
        echo STRATUS-TEST-BURNING
        """;

    private static readonly TimeSpan Window = TimeSpan.FromSeconds(3);
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();
    private QemuDriver _driver = null!;

    public Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        _driver = new QemuDriver(TestEnvironment.Options(_dataDir));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _driver.ShutdownAllAsync(TimeSpan.Zero, CancellationToken.None);
        foreach (var vm in await _driver.ListAsync(CancellationToken.None))
        {
            await _driver.DestroyAsync(vm.Id, CancellationToken.None);
        }

        await _driver.DisposeAsync();
        TestEnvironment.DeleteDirectory(_dataDir);
    }

    private async Task<double> MeasureCoresAsync(bool capped)
    {
        var id = InstanceId.New();
        var spec = await TestEnvironment.TinySpecAsync(id, BurnBothVcpus.Replace("\r", "", StringComparison.Ordinal) + "\n", vcpus: 2, forwards: [], capped: capped);
        await _driver.CreateAsync(spec, CancellationToken.None);
        if (capped)
        {
            await _driver.SetCpuCapAsync(id, 1.0, CancellationToken.None);
        }

        await TestEnvironment.WaitForConsoleAsync(_driver, id, "STRATUS-TEST-BURNING", TimeSpan.FromSeconds(90));
        var before = (await _driver.ReadUsageAsync(id, CancellationToken.None))!.Value.CpuUsageNanoseconds;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(Window);
        var after = (await _driver.ReadUsageAsync(id, CancellationToken.None))!.Value.CpuUsageNanoseconds;
        var cores = (after - before) / (clock.Elapsed.TotalMilliseconds * 1_000_000);
        await _driver.DestroyAsync(id, CancellationToken.None);
        return cores;
    }

    [Fact]
    public async Task CpuCap_TwoVcpusCappedAtOneCore_UsesOneCoreWhileUncappedTwinUsesTwo()
    {
        Assert.NotNull(_driver.Cgroups);
        var capped = await MeasureCoresAsync(capped: true);
        var uncapped = await MeasureCoresAsync(capped: false);
        output.WriteLine($"capped at 1 core: {capped:0.00} cores; uncapped twin: {uncapped:0.00} cores (over {Window.TotalSeconds} s, {Environment.ProcessorCount} host cores)");
        Assert.InRange(capped, 0.5, 1.1);
        Assert.True(uncapped >= 1.3, $"uncapped twin used only {uncapped:0.00} cores");
    }
}
