using System.Diagnostics;
using System.Globalization;
using Stratus.Client;
using Stratus.Core.Resources;
using Stratus.Core.Wire;
using Stratus.Storage.Sqlite;
using Xunit.Abstractions;

namespace Stratus.FunctionalTests;

/// <summary>
/// SIGKILL of the controller in the middle of 50 concurrent creates (half with idempotency keys,
/// half without), restart, client retries: every accepted create ends active or in error with a
/// reason — none lost, none duplicated, no host over its ratios, the ledger equal to the sum of
/// live allocations. A few iterations run in the suite; `bench/crash-loop.sh` runs 100.
/// </summary>
public sealed class CrashConsistencyTests(ITestOutputHelper output)
{
    public sealed record IterationResult(int AcceptedBeforeKill, int Accepted, int Lost, int Duplicated, int OverAllocated, int LedgerMismatches, int Error, double KillAfterMs);

    private static int Iterations => int.TryParse(Environment.GetEnvironmentVariable("STRATUS_CRASH_ITERATIONS"), out var n) ? n : 3;

    [Fact]
    public async Task KillDuringCreates_RestartAndRetry_NothingLostDuplicatedOrOverAllocated()
    {
        var results = new List<IterationResult>();
        for (var i = 0; i < Iterations; i++)
        {
            var r = await RunIterationAsync(seed: i);
            output.WriteLine($"iteration {i}: {r}");
            results.Add(r);
        }
        var summary = $"iterations={results.Count} accepted_before_kill={results.Sum(r => r.AcceptedBeforeKill)} accepted={results.Sum(r => r.Accepted)} lost={results.Sum(r => r.Lost)} duplicated={results.Sum(r => r.Duplicated)} " +
            $"over_allocated={results.Sum(r => r.OverAllocated)} ledger_mismatches={results.Sum(r => r.LedgerMismatches)} in_error={results.Sum(r => r.Error)}";
        output.WriteLine(summary);
        if (Environment.GetEnvironmentVariable("STRATUS_CRASH_SUMMARY") is { Length: > 0 } file)
        {
            await File.WriteAllTextAsync(file, summary + Environment.NewLine);
        }
        Assert.Contains(results, r => r.AcceptedBeforeKill is > 0 and < 50); // the kill did land in the middle of the creates
        Assert.All(results, r =>
        {
            Assert.Equal(50, r.Accepted);
            Assert.Equal(0, r.Lost);
            Assert.Equal(0, r.Duplicated);
            Assert.Equal(0, r.OverAllocated);
            Assert.Equal(0, r.LedgerMismatches);
        });
    }

    private static async Task<IterationResult> RunIterationAsync(int seed)
    {
        var data = Directory.CreateTempSubdirectory("stratus-crash-").FullName;
        var port = Cli.FreePort();
        var url = $"http://127.0.0.1:{port}";
        var rng = new Random(seed);
        var up = new[] { "up", "--detach", "--driver", "simulated", "--hosts", "3", "--data-dir", data, "--port", port.ToString(CultureInfo.InvariantCulture), "--sim-delay-scale", "0.1" };
        try
        {
            (await Cli.RunAsync(url, up)).Ok();
            using var client = StratusClient.Create(new Uri(url + "/"), TimeSpan.FromSeconds(10), Credentials.ReadBootstrapKey(data));
            // A flavor small enough that hosts fill: 3 hosts × 128 vCPU at ratio 4 = 384; 50 × 8 vCPU = 400 → some must fail cleanly.
            await client.CreateFlavorAsync(new CreateFlavorRequest("crash", 8, 512, 5, true));
            var accepted = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(); // name -> id
            var creates = Enumerable.Range(0, 50).Select(n => Task.Run(async () =>
            {
                await Task.Delay(n * 10); // spread over 0.5 s, so a kill after the k-th acceptance lands mid-stream
                var name = $"c{n}";
                try
                {
                    var s = await client.CreateServerAsync(new CreateServerRequest(name, "crash", "tiny", null, null, null, null), n % 2 == 0 ? $"key-{n}" : null);
                    accepted[name] = s.Id;
                }
                catch (StratusApiException)
                {
                    // unknown outcome: the client retries after the restart
                }
            })).ToList();
            // Kill once a random number of creates was accepted, so the kill lands mid-stream.
            var killAt = rng.Next(1, 45);
            var waited = Stopwatch.StartNew();
            while (accepted.Count < killAt && waited.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(1);
            }
            var killAfter = waited.Elapsed.TotalMilliseconds;
            var pid = int.Parse(File.ReadAllText(Path.Combine(data, "stratusd.pid")).Trim(), CultureInfo.InvariantCulture);
            Process.GetProcessById(pid).Kill();
            await Task.WhenAll(creates);
            File.Delete(Path.Combine(data, "stratusd.pid"));
            (await Cli.RunAsync(url, up)).Ok();

            var acceptedBeforeKill = accepted.Count;
            // Retry everything whose outcome the client does not know, as a client would.
            for (var n = 0; n < 50; n++)
            {
                var name = $"c{n}";
                if (accepted.ContainsKey(name))
                {
                    continue;
                }
                try
                {
                    var s = await client.CreateServerAsync(new CreateServerRequest(name, "crash", "tiny", null, null, null, null), n % 2 == 0 ? $"key-{n}" : null);
                    accepted[name] = s.Id;
                }
                catch (StratusApiException e) when (e.Code == "name_in_use")
                {
                    accepted[name] = (await client.GetServerAsync(name)).Id; // it was created before the crash
                }
            }

            // Wait until every server settles.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            IReadOnlyList<ServerDto> servers;
            while (true)
            {
                servers = await client.ListServersAsync();
                if (servers.All(s => s.Task is null) || DateTime.UtcNow > deadline)
                {
                    break;
                }
                await Task.Delay(100);
            }
            var lost = accepted.Count(kv => servers.All(s => s.Id != kv.Value)) + (50 - accepted.Count);
            lost += servers.Count(s => s.Task is not null || !(s.VmState == "active" || (s.VmState == "error" && !string.IsNullOrEmpty(s.Fault))));
            var duplicated = servers.GroupBy(s => s.Name).Count(g => g.Count() > 1) + servers.Count(s => !accepted.ContainsKey(s.Name));
            var hosts = await client.ListHostsAsync();
            var over = hosts.Count(h => h.Used.Vcpus > h.Capacity.Vcpus || h.Used.RamMib > h.Capacity.RamMib || h.Used.DiskGib > h.Capacity.DiskGib);
            (await Cli.RunAsync(url, TimeSpan.FromSeconds(40), "down", "--data-dir", data)).Ok();

            // The ledger, read from the store itself: host totals equal the sum of live allocations,
            // and exactly the placed live servers hold one.
            await using var store = new SqliteStateStore(Path.Combine(data, "stratus.db"));
            var allocations = await store.ListAllocationsAsync(default);
            var mismatches = 0;
            foreach (var h in await store.ListHostsAsync(default))
            {
                var sum = allocations.Where(a => a.HostId == h.Id).Aggregate(ResourceVector.Zero, (s, a) => s + a.Resources);
                mismatches += sum == h.Used ? 0 : 1;
            }
            var placed = servers.Where(s => s.HostId is not null && s.VmState != "deleted").Select(s => s.Id).Order().ToList();
            mismatches += placed.SequenceEqual(allocations.Select(a => a.InstanceId.ToString()).Order()) ? 0 : 1;
            return new IterationResult(acceptedBeforeKill, accepted.Count, lost, duplicated, over, mismatches, servers.Count(s => s.VmState == "error"), killAfter);
        }
        finally
        {
            await Cli.RunAsync(url, TimeSpan.FromSeconds(40), "down", "--data-dir", data);
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(data, true);
            }
            catch (IOException)
            {
            }
        }
    }
}
