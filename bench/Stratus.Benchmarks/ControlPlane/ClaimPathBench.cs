using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

namespace Stratus.Benchmarks.ControlPlane;

/// <summary>
/// The store's claim path, measured apart from the in-memory placement benchmarks: N servers placed
/// by the production spread engine and claimed in the SQLite store (generation compare-and-swap,
/// capacity re-checked in SQL), by 1, 2 or 4 parallel placers that each keep their own snapshot and
/// re-plan on a lost race. Usage: <c>claims [--servers 5000] [--hosts 100] [--placers 1]</c>.
/// </summary>
public static class ClaimPathBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        int Arg(string name, int def)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : def;
        }
        var servers = Arg("--servers", 5000);
        var hostCount = Arg("--hosts", 100);
        var placers = Arg("--placers", 1);
        var dir = Directory.CreateTempSubdirectory("stratus-claims-").FullName;
        try
        {
            await using var store = new SqliteStateStore(Path.Combine(dir, "s.db"));
            await store.MigrateAsync(default);
            var t0 = DateTimeOffset.UtcNow;
            for (var h = 0; h < hostCount; h++)
            {
                await store.RegisterHostAsync(new HostRegistrationRecord($"h{h}", ResourceVector.Of(64, 512 * 1024, 4096), ResourceVector.Zero,
                    AllocationRatios.Default, "default", "sim", "simulated", null), t0, default);
            }
            var demand = ResourceVector.Of(1, 1024, 10);
            var instances = new List<Instance>(servers);
            for (var n = 0; n < servers; n++)
            {
                var i = new Instance(InstanceId.New(), $"c{n}", FlavorId.New(), ImageId.New(), null, VmState.Building, InstanceTask.Scheduling,
                    PowerState.NoState, demand, null, null, 0, 1, t0, t0, t0);
                await store.CreateInstanceAsync(i, new InstanceAction(0, i.Id, "create", "bench", t0, null, "pending", null), default);
                instances.Add(i with { Version = 1 });
            }
            var engine = new SpreadPlacementEngine();
            var latencies = new List<double>[placers];
            var conflicts = 0;
            var next = -1;
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, placers).Select(p => Task.Run(async () =>
            {
                var lat = latencies[p] = new List<double>(servers / placers + 1);
                var snapshot = ClusterSnapshot.Of(await store.ListHostsAsync(default));
                int n;
                while ((n = Interlocked.Increment(ref next)) < servers)
                {
                    var inst = instances[n];
                    var start = Stopwatch.GetTimestamp();
                    for (var attempt = 0; ; attempt++)
                    {
                        if (engine.Place(new PlacementRequest(inst.Id, demand) { Attempt = attempt }, snapshot) is not Placed placed)
                        {
                            throw new InvalidOperationException("fleet full");
                        }
                        var outcome = await store.ClaimAsync(inst with { HostId = placed.Host, Task = InstanceTask.Spawning }, placed.Host, placed.Generation, demand, null, default);
                        if (outcome == CasOutcome.Ok)
                        {
                            snapshot = new ClusterSnapshot(snapshot.Hosts.Select(h => h.Id == placed.Host ? h with { Used = h.Used + demand, Generation = h.Generation + 1 } : h).ToImmutableArray());
                            break;
                        }
                        Interlocked.Increment(ref conflicts);
                        snapshot = ClusterSnapshot.Of(await store.ListHostsAsync(default)); // lost a race: re-plan on a fresh snapshot
                    }
                    lat.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                }
            })));
            var elapsed = sw.Elapsed.TotalSeconds;
            var all = latencies.SelectMany(l => l).Order().ToList();
            var hosts = await store.ListHostsAsync(default);
            var allocations = await store.ListAllocationsAsync(default);
            var over = hosts.Count(h => !h.Used.FitsIn(h.Capacity));
            var ledgerOk = hosts.All(h => allocations.Where(a => a.HostId == h.Id).Aggregate(ResourceVector.Zero, (s, a) => s + a.Resources) == h.Used);
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                servers,
                hosts = hostCount,
                placers,
                claims_per_second = Math.Round(servers / elapsed, 0),
                p50_us = Math.Round(all[all.Count / 2], 1),
                p99_us = Math.Round(all[(int)(all.Count * 0.99)], 1),
                conflicts,
                over_allocated_hosts = over,
                ledger_consistent = ledgerOk,
                allocations = allocations.Count,
            }, new JsonSerializerOptions { WriteIndented = true }));
            return over == 0 && ledgerOk && allocations.Count == servers ? 0 : 1;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, true);
        }
    }
}
