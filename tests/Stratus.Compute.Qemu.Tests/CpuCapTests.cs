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

    /// <summary>Busy CPU time of the whole host so far, in nanoseconds (from /proc/stat; USER_HZ = 100).</summary>
    private static async Task<long> HostBusyNanosecondsAsync()
    {
        var cpu = (await File.ReadAllLinesAsync("/proc/stat"))[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // user nice system idle iowait irq softirq steal
        long Field(int i) => long.Parse(cpu[i], System.Globalization.CultureInfo.InvariantCulture);
        return (Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8)) * 10_000_000;
    }

    /// <summary>Cores the VM used over the window, and the cores everything else on the host used meanwhile.</summary>
    private async Task<(double Vm, double Others)> MeasureCoresAsync(bool capped)
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
        var hostBefore = await HostBusyNanosecondsAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(Window);
        var after = (await _driver.ReadUsageAsync(id, CancellationToken.None))!.Value.CpuUsageNanoseconds;
        var hostAfter = await HostBusyNanosecondsAsync();
        var ns = clock.Elapsed.TotalMilliseconds * 1_000_000;
        await _driver.DestroyAsync(id, CancellationToken.None);
        var vm = (after - before) / ns;
        return (vm, Math.Max(0, ((hostAfter - hostBefore) / ns) - vm));
    }

    [Fact]
    public async Task CpuCap_TwoVcpusCappedAtOneCore_UsesOneCoreWhileUncappedTwinUsesTwo()
    {
        Assert.NotNull(_driver.Cgroups);
        var capped = await MeasureCoresAsync(capped: true);
        var uncapped = await MeasureCoresAsync(capped: false);
        var cores = Environment.ProcessorCount;
        output.WriteLine($"capped at 1 core: {capped.Vm:0.00} cores (others {capped.Others:0.00}); uncapped twin: {uncapped.Vm:0.00} cores (others {uncapped.Others:0.00}); over {Window.TotalSeconds} s, {cores} host cores");
        Assert.InRange(capped.Vm, 0.3, 1.1);

        // The twin gets what the host's other work leaves: on an idle 2-core host about two cores (more than the cap
        // allows); on a host busy with other jobs at least a fair part of what was free.
        var free = cores - uncapped.Others;
        var expected = Math.Min(1.3, 0.6 * free);
        Assert.True(uncapped.Vm >= expected, $"uncapped twin used {uncapped.Vm:0.00} cores; {free:0.00} were free, expected ≥ {expected:0.00}");
    }
}
