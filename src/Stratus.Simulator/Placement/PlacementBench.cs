using System.Diagnostics;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Bounds;
using Stratus.Scheduler.Claims;
using Stratus.Scheduler.Framework;
using Stratus.Simulator.Traces;

namespace Stratus.Simulator.Placement;

/// <summary>
/// Placement scale scenarios: replays a real workload through the production scheduler with
/// in-memory claims (<see cref="ClaimLedger"/>), measuring decision throughput and latency,
/// conflicts and retries of parallel placers, and packing quality against a lower bound.
/// </summary>
public static class PlacementBench
{
    /// <summary>Runs the scenario <paramref name="o"/> on the traces in its data folder.</summary>
    public static PlacementBenchResult Run(PlacementBenchOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        o.Validate();
        var data = ResolveDataDir(o.DataDir);
        if (o.Workload == "azure")
        {
            return RunAzure(o, AzureTrace.ReadFolder(Path.Combine(data, "azure-v1-flavor-traces"), o.Arrivals));
        }
        var (nodes, pods) = AlibabaTrace.ReadFolder(Path.Combine(data, "alibaba-gpu-v2023"));
        return RunAlibaba(o, nodes, pods);
    }

    /// <summary>The data folder: <paramref name="explicitDir"/>, else <c>../shared/data</c> beside the repository root (found by its <c>Stratus.slnx</c>).</summary>
    public static string ResolveDataDir(string? explicitDir)
    {
        if (!string.IsNullOrEmpty(explicitDir))
        {
            return Path.GetFullPath(explicitDir);
        }
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
                {
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data"));
                }
            }
        }
        throw new DirectoryNotFoundException("cannot find the repository root (Stratus.slnx) to locate ../shared/data; pass the data folder explicitly");
    }

    /// <summary>Replays <paramref name="arrivals"/> (with departures) onto <see cref="PlacementBenchOptions.Hosts"/> identical hosts.</summary>
    public static PlacementBenchResult RunAzure(PlacementBenchOptions o, IReadOnlyList<AzureArrival> arrivals)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(arrivals);
        o.Validate();
        var hostCap = AzureHostCapacity(o);
        var hosts = new HostSnapshot[o.Hosts];
        for (var i = 0; i < hosts.Length; i++)
        {
            hosts[i] = new HostSnapshot(HostIdOf(i), $"host-{i:D6}", HostState.Up, hostCap, ResourceVector.Zero, 0, "az1");
        }
        var requests = new Item[arrivals.Count];
        for (var i = 0; i < requests.Length; i++)
        {
            var a = arrivals[i];
            var group = o.AntiAffinity && a.BatchSize >= 2 ? ServerGroupSnapshot.Empty($"batch-{a.Batch}", ServerGroupPolicy.AntiAffinity) : null;
            requests[i] = new Item(
                new PlacementRequest(InstanceIdOf(i), ResourceVector.Of(a.Flavor.Vcpus, a.Flavor.MemoryMib, 0)) { Group = group },
                a.Time,
                a.DurationSeconds == long.MaxValue ? long.MaxValue : a.Time + a.DurationSeconds,
                a.Flavor.Index,
                a.Batch);
        }
        var run = Replay(o, hosts, requests);

        var peakItems = new List<PackingVector>();
        var flavors = arrivals.Select(a => a.Flavor).DistinctBy(f => f.Index).ToDictionary(f => f.Index);
        for (var f = 0; f < run.PeakFlavorCounts.Length; f++)
        {
            if (!flavors.TryGetValue(f, out var fl))
            {
                continue;
            }
            for (var k = 0; k < run.PeakFlavorCounts[f]; k++)
            {
                peakItems.Add(new PackingVector(fl.Vcpus * 1000L, fl.MemoryMib, 0, 0));
            }
        }
        var cap = PackingVector.From(hostCap);
        var bound = peakItems.Count == 0 ? new LowerBound(0, "none") : LowerBounds.MartelloTothL2(peakItems, cap);
        if (peakItems.Count > 0 && o.Profile != "spread")
        {
            bound = ExactBinPackingBound.TryCompute(peakItems, cap, run.HostsUsedAtPeak, 2.0) ?? bound;
        }

        int? repackUsed = null;
        int? repackBound = null;
        if (o.RepackPeak && run.PeakIndex >= 0)
        {
            (repackUsed, repackBound) = RepackPeak(o, hostCap, requests, run);
        }
        return Summarise(o, run, requests.Length, bound, o.Hosts) with
        {
            PeakLive = run.PeakLive,
            PeakRepackHostsUsed = repackUsed,
            PeakRepackLowerBound = repackBound,
            PeakRepackRatio = repackUsed is { } u && repackBound is > 0 ? Math.Round((double)u / repackBound.Value, 4) : null,
        };
    }

    /// <summary>Places every pod (none leaves) onto the trace's nodes; hosts used = non-empty nodes.</summary>
    public static PlacementBenchResult RunAlibaba(PlacementBenchOptions o, IReadOnlyList<AlibabaNode> nodes, IReadOnlyList<AlibabaPod> pods)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(pods);
        o.Validate();
        var hosts = new HostSnapshot[nodes.Count];
        var caps = new PackingVector[nodes.Count];
        for (var i = 0; i < hosts.Length; i++)
        {
            var n = nodes[i];
            var cap = new ResourceVector(n.CpuMilli, n.MemoryMib, 0);
            hosts[i] = new HostSnapshot(HostIdOf(i), n.Name, HostState.Up, cap, ResourceVector.Zero, 0, "az1")
            {
                GpuMilliCapacity = o.Gpu ? n.GpuMilli : 0,
            };
            caps[i] = new PackingVector(n.CpuMilli, n.MemoryMib, 0, o.Gpu ? n.GpuMilli : 0);
        }
        if (o.Order == "size")
        {
            pods = [.. pods.OrderByDescending(p => p.CpuMilli).ThenByDescending(p => p.MemoryMib).ThenByDescending(p => p.GpuMilli)];
        }
        var requests = new Item[pods.Count];
        var items = new PackingVector[pods.Count];
        for (var i = 0; i < requests.Length; i++)
        {
            var p = pods[i];
            var gpu = o.Gpu ? p.GpuMilli : 0;
            requests[i] = new Item(new PlacementRequest(InstanceIdOf(i), new ResourceVector(p.CpuMilli, p.MemoryMib, 0)) { GpuMilli = gpu },
                p.CreationTime, long.MaxValue, 0, -1);
            items[i] = new PackingVector(p.CpuMilli, p.MemoryMib, 0, gpu);
        }
        var run = Replay(o, hosts, requests);
        var bound = LowerBounds.Volume(items, caps);
        return Summarise(o, run, requests.Length, bound, hosts.Length) with { HostsUsed = run.FinalNonEmpty, PeakLive = run.PeakLive };
    }

    private static (int Used, int Bound) RepackPeak(PlacementBenchOptions o, ResourceVector hostCap, Item[] requests, RunState run)
    {
        var t = requests[run.PeakIndex].Arrival;
        var live = new List<Item>();
        for (var i = 0; i <= run.PeakIndex; i++)
        {
            if (run.PlacedFlags[i] && requests[i].Departure > t)
            {
                live.Add(requests[i] with { Request = requests[i].Request with { Group = null }, Departure = long.MaxValue, Batch = -1 });
            }
        }
        var items = live.Select(l => PackingVector.From(l.Request.Demand)).ToList();
        var cap = PackingVector.From(hostCap);
        var volume = LowerBounds.MartelloTothL2(items, cap);
        var fleet = Math.Min(o.Hosts, (int)(volume.Hosts * 1.5) + 16);
        var hosts = new HostSnapshot[fleet];
        for (var i = 0; i < fleet; i++)
        {
            hosts[i] = new HostSnapshot(HostIdOf(i), $"host-{i:D6}", HostState.Up, hostCap, ResourceVector.Zero, 0, "az1");
        }
        var repack = Replay(o with { Profile = "pack", Placers = 1, SampleSize = null, AntiAffinity = false }, hosts, [.. live]);
        var bound = ExactBinPackingBound.TryCompute(items, cap, repack.FinalNonEmpty, 5.0) ?? volume;
        return (repack.FinalNonEmpty, bound.Hosts);
    }

    private static ResourceVector AzureHostCapacity(PlacementBenchOptions o) =>
        AllocationRatios.FromDecimal(o.CpuAllocationRatio, 1.0, 1.0).Capacity(ResourceVector.Of(o.HostVcpus, o.HostMemoryGib * 1024L, 4096), ResourceVector.Zero);

    private static PlacementBenchResult Summarise(PlacementBenchOptions o, RunState run, int requests, LowerBound bound, int hosts)
    {
        var lat = run.Latencies.Where(l => l > 0).Order().ToArray();
        double Us(long ticks) => Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, 2);
        double Pct(double q) => lat.Length == 0 ? 0 : Us(lat[Math.Min(lat.Length - 1, (int)Math.Ceiling(q * lat.Length) - 1)]);
        var profile = Scheduler.Profiles.Profiles.Get(o.Profile);
        return new PlacementBenchResult
        {
            Workload = o.Workload,
            Profile = o.Profile,
            Hosts = hosts,
            Placers = o.Placers,
            AntiAffinity = o.AntiAffinity,
            Gpu = o.Gpu,
            Requests = requests,
            Placed = run.Placed,
            Unplaced = requests - run.Placed,
            PlacementsPerSecond = Math.Round(run.Placed / run.Elapsed.TotalSeconds, 0),
            P50Us = Pct(0.50),
            P99Us = Pct(0.99),
            MaxUs = lat.Length == 0 ? 0 : Us(lat[^1]),
            HostsUsed = run.HostsUsedAtPeak,
            LowerBound = bound.Hosts,
            LowerBoundMethod = bound.Method,
            SampleSize = o.SampleSize ?? profile.SampleSize,
            MeanScored = requests == 0 ? 0 : Math.Round((double)run.Scored / requests, 1),
            MeanExamined = requests == 0 ? 0 : Math.Round((double)run.Examined / requests, 1),
            Conflicts = run.Conflicts,
            Retries = run.Retries,
            InvariantViolations = run.Violations,
            ElapsedSeconds = Math.Round(run.Elapsed.TotalSeconds, 3),
            CpuSeconds = Math.Round(run.Cpu.TotalSeconds, 3),
            FirstRefusal = run.FirstRefusal,
        };
    }

    private static RunState Replay(PlacementBenchOptions o, HostSnapshot[] hosts, Item[] items)
    {
        var flavorCount = items.Length == 0 ? 1 : items.Max(i => i.Flavor) + 1;
        var batches = items.Length == 0 ? 0 : items.Max(i => i.Batch) + 1;
        var profile = Scheduler.Profiles.Profiles.Get(o.Profile);
        if (o.SampleSize is { } s)
        {
            profile = profile with { SampleSize = s };
        }
        var engine = new FrameworkPlacementEngine(profile);
        var ledger = new ClaimLedger(hosts);
        var run = new RunState(items.Length, hosts.Length, flavorCount, batches);
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        if (o.Placers == 1)
        {
            PlacerLoop(engine, ledger, items, 0, 1, run);
        }
        else
        {
            var threads = new Thread[o.Placers];
            for (var p = 0; p < threads.Length; p++)
            {
                var id = p;
                threads[p] = new Thread(() => PlacerLoop(engine, ledger, items, id, o.Placers, run)) { IsBackground = true };
                threads[p].Start();
            }
            foreach (var t in threads)
            {
                t.Join();
            }
        }
        run.Elapsed = sw.Elapsed;
        run.Cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        run.Conflicts = ledger.Conflicts;
        run.Violations = ledger.Violations().Length;
        run.FinalNonEmpty = run.NonEmpty;
        return run;
    }

    private static void PlacerLoop(FrameworkPlacementEngine engine, ClaimLedger ledger, Item[] items, int id, int stride, RunState run)
    {
        var departures = new PriorityQueue<Departure, long>();
        var snapshot = ledger.LiveSnapshot;
        for (var i = id; i < items.Length; i += stride)
        {
            var item = items[i];
            while (departures.TryPeek(out var d, out var at) && at <= item.Arrival)
            {
                departures.Dequeue();
                ledger.Release(d.Host, items[d.Item].Request.Demand, items[d.Item].Request.GpuMilli, items[d.Item].Request.Group?.Name);
                run.Left(snapshot.IndexOf(d.Host), items[d.Item], ledger);
            }
            var t0 = Stopwatch.GetTimestamp();
            var outcome = ClaimingPlacer.PlaceAndClaim(engine, ledger, item.Request);
            run.Latencies[i] = Math.Max(1, Stopwatch.GetTimestamp() - t0);
            Interlocked.Add(ref run.Retries, outcome.Retries);
            Interlocked.Add(ref run.Scored, outcome.Result.Trace.SampleSize);
            Interlocked.Add(ref run.Examined, outcome.Result.Trace.HostsConsidered);
            if (outcome.Claimed && outcome.Result is Placed placed)
            {
                run.PlacedFlags[i] = true;
                run.Arrived(i, snapshot.IndexOf(placed.Host), item);
                if (item.Departure != long.MaxValue)
                {
                    departures.Enqueue(new Departure(i, placed.Host), item.Departure);
                }
            }
            else if (run.FirstRefusal is null)
            {
                run.FirstRefusal = outcome.Result switch
                {
                    Unschedulable u => string.Join("; ", u.Reasons),
                    UnschedulableAndUnresolvable uu => string.Join("; ", uu.Reasons),
                    _ => $"lost {outcome.Retries} races",
                };
            }
        }
    }

    private static HostId HostIdOf(int i) => new(new Guid(i, 0x5354, 0x4853, 0, 0, 0, 0, 0, 0, 0, 1));

    // The low 32 bits carry the index, so Guid.GetHashCode (the engine's scan offset) rotates through the fleet like kube-scheduler's round robin.
    private static InstanceId InstanceIdOf(int i) => new(new Guid(i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));

    private readonly record struct Departure(int Item, HostId Host);

    private sealed record Item(PlacementRequest Request, long Arrival, long Departure, int Flavor, int Batch);

    private sealed class RunState(int items, int hosts, int flavors, int batches)
    {
        private readonly Lock _peakLock = new();
        private readonly int[] _perHost = new int[hosts];
        private readonly int[] _flavorLive = new int[flavors];
        private readonly int[] _batchLive = new int[batches];
        private int _live;
        public readonly long[] Latencies = new long[items];
        public readonly bool[] PlacedFlags = new bool[items];
        public int[] PeakFlavorCounts = new int[flavors];
        public long Retries;
        public long Scored;
        public long Examined;
        public long Conflicts;
        public int Placed;
        public int NonEmpty;
        public int PeakLive;
        public int PeakIndex = -1;
        public int HostsUsedAtPeak;
        public int FinalNonEmpty;
        public int Violations;
        public string? FirstRefusal;
        public TimeSpan Elapsed;
        public TimeSpan Cpu;

        public void Arrived(int index, int host, Item item)
        {
            Interlocked.Increment(ref Placed);
            if (Interlocked.Increment(ref _perHost[host]) == 1)
            {
                Interlocked.Increment(ref NonEmpty);
            }
            Interlocked.Increment(ref _flavorLive[item.Flavor]);
            if (item.Batch >= 0)
            {
                Interlocked.Increment(ref _batchLive[item.Batch]);
            }
            var live = Interlocked.Increment(ref _live);
            if (live > Volatile.Read(ref PeakLive))
            {
                lock (_peakLock)
                {
                    if (live > PeakLive)
                    {
                        PeakLive = live;
                        PeakIndex = index;
                        HostsUsedAtPeak = Volatile.Read(ref NonEmpty);
                        Array.Copy(_flavorLive, PeakFlavorCounts, _flavorLive.Length);
                    }
                }
            }
        }

        public void Left(int host, Item item, ClaimLedger ledger)
        {
            if (Interlocked.Decrement(ref _perHost[host]) == 0)
            {
                Interlocked.Decrement(ref NonEmpty);
            }
            Interlocked.Decrement(ref _flavorLive[item.Flavor]);
            Interlocked.Decrement(ref _live);
            if (item.Batch >= 0 && Interlocked.Decrement(ref _batchLive[item.Batch]) == 0 && item.Request.Group is { } g)
            {
                ledger.RemoveGroupIfEmpty(g.Name);
            }
        }
    }
}
