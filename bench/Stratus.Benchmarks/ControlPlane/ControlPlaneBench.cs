using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Benchmarks.ControlPlane;

/// <summary>
/// Control-plane figures with the real controller process (simulated driver, SQLite): create
/// throughput (servers/s accepted), `GET /v1/servers` page latency with N servers in the store, and
/// the controller's memory at that size. Usage:
/// <c>controlplane [--servers 10000] [--clients 32] [--hosts 80] [--pages 2000]</c>; prints one JSON object.
/// </summary>
public static class ControlPlaneBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        int Arg(string name, int def)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : def;
        }
        var servers = Arg("--servers", 10_000);
        var clients = Arg("--clients", 32);
        var hosts = Arg("--hosts", 80);
        var pages = Arg("--pages", 2000);
        var root = FindRoot();
        var data = Directory.CreateTempSubdirectory("stratus-cpbench-").FullName;
        var port = FreePort();
        var url = new Uri($"http://127.0.0.1:{port}/");
        await RunAsync(root, "up", "--detach", "--embedded", "--driver", "simulated", "--hosts", hosts.ToString(CultureInfo.InvariantCulture), "--data-dir", data,
            "--port", port.ToString(CultureInfo.InvariantCulture), "--sim-delay-scale", "0.05");
        try
        {
            var pid = int.Parse(File.ReadAllText(Path.Combine(data, "stratusd.pid")).Trim(), CultureInfo.InvariantCulture);
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", Credentials.ReadBootstrapKey(data));
            using var client = new StratusClient(http);
            await client.CreateFlavorAsync(new CreateFlavorRequest("bench", 1, 64, 1, true));

            // Create throughput: `clients` concurrent loops until `servers` were accepted.
            var next = -1;
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
            {
                int n;
                while ((n = Interlocked.Increment(ref next)) < servers)
                {
                    await client.CreateServerAsync(new CreateServerRequest($"b{n}", "bench", "tiny", null, null, null, null));
                }
            })));
            var createSeconds = sw.Elapsed.TotalSeconds;
            var rssAfterCreates = Rss(pid);

            // Wait until the reconciler placed them all (scheduling throughput is a separate figure).
            var settle = Stopwatch.StartNew();
            while ((await client.ListServersPageAsync(limit: 1, state: "building")).Items.Count > 0 && settle.Elapsed < TimeSpan.FromMinutes(10))
            {
                await Task.Delay(250);
            }
            var settleSeconds = sw.Elapsed.TotalSeconds;

            // Page latency: first pages and pages from random markers, one at a time.
            var all = await client.ListServersAsync();
            var rng = new Random(7);
            var lat = new List<double>(pages);
            for (var i = 0; i < pages; i++)
            {
                var marker = i % 4 == 0 ? null : all[rng.Next(all.Count)].Id;
                var t = Stopwatch.GetTimestamp();
                var page = await client.ListServersPageAsync(limit: 100, marker: marker);
                lat.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                if (page.Items.Count == 0 && marker is null)
                {
                    throw new InvalidOperationException("empty first page");
                }
            }
            lat.Sort();
            var result = new
            {
                servers,
                clients,
                hosts,
                create_seconds = Math.Round(createSeconds, 2),
                creates_per_second = Math.Round(servers / createSeconds, 0),
                all_active_after_seconds = Math.Round(settleSeconds, 1),
                servers_in_store = all.Count,
                list_page_size = 100,
                list_requests = pages,
                list_p50_ms = Math.Round(lat[lat.Count / 2], 2),
                list_p99_ms = Math.Round(lat[(int)(lat.Count * 0.99)], 2),
                controller_rss_mib_after_creates = rssAfterCreates,
                controller_rss_mib = Rss(pid),
                machine = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            };
            Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        finally
        {
            await RunAsync(root, "down", "--data-dir", data);
            Directory.Delete(data, true);
        }
    }

    private static long Rss(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status").Where(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024).First();

    internal static async Task RunAsync(string root, params string[] args)
    {
        var psi = new ProcessStartInfo(Path.Combine(root, "stratus")) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"./stratus {string.Join(' ', args)} exited {p.ExitCode}");
        }
    }

    internal static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    internal static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
