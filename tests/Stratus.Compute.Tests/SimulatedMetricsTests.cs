using Microsoft.Extensions.Time.Testing;
using Stratus.Compute.Simulated;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Tests;

/// <summary>The simulated driver's synthetic resource use and its load.json override.</summary>
public sealed class SimulatedMetricsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("stratus-sim-metrics-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private SimulatedDriver New(string sub, int seed = 1, int cores = 4) =>
        new(new SimulatedDriverOptions { StateDirectory = Path.Combine(_dir, sub), DelayScale = 0, Seed = seed, Cores = cores }, _time);

    private static VmSpec Spec(InstanceId id, string name, int vcpus = 2) =>
        new(id, name, vcpus, 1024, 5, null, null, null, null, null, null, [], [], vcpus, 1024);

    private static readonly InstanceId A = new(Guid.Parse("00000000-0000-4000-8000-00000000000a"));
    private static readonly InstanceId B = new(Guid.Parse("00000000-0000-4000-8000-00000000000b"));

    [Fact]
    public async Task Sample_SameSeedAndClock_SameNumbersEveryRun()
    {
        await using var one = New("one");
        await using var two = New("two");
        foreach (var d in new[] { one, two })
        {
            await d.CreateAsync(Spec(A, "a"), default);
            await d.CreateAsync(Spec(B, "b"), default);
        }
        var first = await one.SampleAsync(default);
        var second = await two.SampleAsync(default);
        Assert.Equal(first.Vms, second.Vms);
        Assert.Equal(2, first.Vms.Count);
        Assert.All(first.Vms, v => Assert.InRange(v.CpuPercent, 0, 100));
        Assert.NotEqual(first.Vms[0].CpuPercent, first.Vms[1].CpuPercent); // each VM has its own load
        await using var otherSeed = New("three", seed: 2);
        await otherSeed.CreateAsync(Spec(A, "a"), default);
        Assert.NotEqual(first.Vms[0].CpuPercent, (await otherSeed.SampleAsync(default)).Vms[0].CpuPercent);
        _time.Advance(TimeSpan.FromMinutes(3));
        Assert.NotEqual(first.Vms[0].CpuPercent, (await one.SampleAsync(default)).Vms[0].CpuPercent); // and it varies in time
    }

    [Fact]
    public async Task Sample_LoadFile_OverridesByNameOrIdAndIsReReadWhenChanged()
    {
        await using var d = New("load", cores: 4);
        await d.CreateAsync(Spec(A, "web-1", vcpus: 2), default);
        await d.CreateAsync(Spec(B, "db-1", vcpus: 2), default);
        await File.WriteAllTextAsync(d.LoadFile, $$"""{"web-1": 90, "{{B}}": 10}""");
        var s = await d.SampleAsync(default);
        Assert.Equal(90, s.Vms.Single(v => v.Id == A).CpuPercent);
        Assert.Equal(10, s.Vms.Single(v => v.Id == B).CpuPercent);
        Assert.Equal((0.9 * 2 + 0.1 * 2) / 4 * 100, s.CpuPercent, 9); // host: cores used over cores
        Assert.Equal(10, s.DiskUsedGib);

        await File.WriteAllTextAsync(d.LoadFile, """{"web-1": 150, "db-1": 40}""");
        File.SetLastWriteTimeUtc(d.LoadFile, DateTime.UtcNow.AddSeconds(5));
        s = await d.SampleAsync(default);
        Assert.Equal(100, s.Vms.Single(v => v.Id == A).CpuPercent); // clamped
        Assert.Equal(40, s.Vms.Single(v => v.Id == B).CpuPercent);

        await File.WriteAllTextAsync(d.LoadFile, "{not json");
        File.SetLastWriteTimeUtc(d.LoadFile, DateTime.UtcNow.AddSeconds(10));
        s = await d.SampleAsync(default);
        Assert.All(s.Vms, v => Assert.InRange(v.CpuPercent, 0, 100)); // malformed: synthetic load, no exception
    }

    [Fact]
    public async Task Sample_PausedAndStoppedVms_NoCpuAndStoppedNotListed()
    {
        await using var d = New("power");
        await d.CreateAsync(Spec(A, "a"), default);
        await d.CreateAsync(Spec(B, "b"), default);
        await d.PauseAsync(A, default);
        await d.StopAsync(B, TimeSpan.Zero, default);
        var s = await d.SampleAsync(default);
        var paused = Assert.Single(s.Vms);
        Assert.Equal(A, paused.Id);
        Assert.Equal(0, paused.CpuPercent);
        Assert.Equal(512, paused.MemoryUsedMib);
        Assert.Equal(0, s.CpuPercent);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
