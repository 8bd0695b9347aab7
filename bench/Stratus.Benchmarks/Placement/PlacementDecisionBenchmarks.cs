using BenchmarkDotNet.Attributes;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;

namespace Stratus.Benchmarks.Placement;

/// <summary>
/// One placement decision on a half-full fleet of 64-vCPU / 512 GiB hosts: spread (sampled),
/// pack (full scan) and spread with an anti-affinity group of 8 members. Allocations per decision
/// are reported too (the hot path reuses per-thread buffers).
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives from benchmark classes.</remarks>
[MemoryDiagnoser]
public class PlacementDecisionBenchmarks
{
    private ClusterSnapshot _snapshot = null!;
    private PlacementRequest _plain = null!;
    private PlacementRequest _grouped = null!;
    private FrameworkPlacementEngine _spread = null!;
    private FrameworkPlacementEngine _pack = null!;
    private int _i;

    [Params(1_000, 10_000, 50_000)]
    public int Hosts { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        var cap = new ResourceVector(256_000, 512 * 1024, 4096);
        var hosts = new HostSnapshot[Hosts];
        for (var i = 0; i < Hosts; i++)
        {
            var used = new ResourceVector(rng.Next(0, 200) * 1000L, rng.Next(0, 400) * 1024L, 0);
            hosts[i] = new HostSnapshot(new HostId(new Guid(i, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)), $"h{i}", HostState.Up, cap, used, 1, "az1");
        }
        _snapshot = new ClusterSnapshot([.. hosts]);
        _plain = new PlacementRequest(InstanceId.New(), ResourceVector.Of(4, 8192, 0));
        var members = System.Collections.Immutable.ImmutableDictionary<HostId, int>.Empty;
        for (var m = 0; m < 8; m++)
        {
            members = members.Add(hosts[m * 7].Id, 1);
        }
        _grouped = _plain with { Group = new ServerGroupSnapshot("g", ServerGroupPolicy.AntiAffinity, 1, members) };
        _spread = new FrameworkPlacementEngine(Scheduler.Profiles.Profiles.Get("spread"));
        _pack = new FrameworkPlacementEngine(Scheduler.Profiles.Profiles.Get("pack"));
    }

    [Benchmark(Baseline = true)]
    public PlacementResult Spread() => _spread.Place(_plain with { InstanceId = new InstanceId(new Guid(++_i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) }, _snapshot);

    [Benchmark]
    public PlacementResult SpreadAntiAffinity() => _spread.Place(_grouped with { InstanceId = new InstanceId(new Guid(++_i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) }, _snapshot);

    [Benchmark]
    public PlacementResult Pack() => _pack.Place(_plain, _snapshot);
}
