using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Stratus.Compute;
using Stratus.Compute.Qemu;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Ids;

namespace Stratus.Benchmarks.Migration;

/// <summary>
/// Live migration of the tiny guest (TCG, one machine), measured four ways in one run so the ratios can be read directly:
/// <b>raw</b> — two plain <c>qemu-system-x86_64</c> processes with QEMU's own transport: the clock starts when the destination
/// (<c>-incoming defer</c>) is exec'd and stops when the source's <c>query-migrate</c> (polled every 10 ms) says completed;
/// <b>raw-tuned</b> — the same, with the transport Stratus's pipelined destination uses (port bound first with a 32 MiB
/// receive buffer, source sending while the destination QEMU starts, connection handed over with <c>getfd</c>);
/// <b>driver</b> — <see cref="QemuDriver"/>: the clock runs from <c>PrepareIncomingAsync</c> to the return of
/// <c>CompleteIncomingAsync</c> (the VM runs at the destination); <b>stratus</b> — the whole system (see <see cref="Cloud"/>).
/// All use a shared disk (one qcow2 both processes open),
/// the same memory/vCPUs/devices, and the same migration parameters (downtime limit 300 ms, bandwidth uncapped).
/// Two loads: idle, and dirty (the guest rewrites a 64 MiB tmpfs buffer from an 8 MiB random block in a loop).
/// Usage: <c>migration [--runs 3] [--memory 256] [--guest DIR] [--no-cgroups]</c> (the last: driver VMs without cgroups, to tell
/// the cgroups' share of the difference); prints JSON (every run, then medians).
/// </summary>
public static class MigrationBench
{
    private const string DirtyUserData = """
        #!/bin/sh
        dd if=/dev/urandom of=/run/src bs=1M count=8 2>/dev/null
        echo BENCH-DIRTY-STARTED
        while :; do
          i=0
          while [ $i -lt 8 ]; do dd if=/run/src of=/run/buf bs=1M seek=$((i*8)) conv=notrunc 2>/dev/null; i=$((i+1)); done
        done
        """;

    private const long UnlimitedBandwidth = 1L << 40;

    /// <param name="PrepareMs">Time until the destination listened (driver: PrepareIncomingAsync; raw: exec → migrate-incoming returned).</param>
    /// <param name="TransferredMib">RAM bytes QEMU sent (more than the idle case = pages re-sent because the guest dirtied them).</param>
    /// <param name="DirtyRateMibPerSecond">Highest dirty rate QEMU measured during the run (0 when it finished before measuring one).</param>
    private sealed record Sample(string Mode, string Load, int Run, long TotalMs, long DowntimeMs, long QemuTotalMs, long PrepareMs,
        long TransferredMib, long DirtyRateMibPerSecond);

    private sealed class MaxDirtyRate : IProgress<MigrationProgress>
    {
        public long Max;

        public void Report(MigrationProgress value) => Max = Math.Max(Max, value.DirtyRateBytesPerSecond);
    }

    public static async Task<int> RunAsync(string[] args)
    {
        string? Opt(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var runs = int.Parse(Opt("--runs") ?? "3", CultureInfo.InvariantCulture);
        var memory = int.Parse(Opt("--memory") ?? "256", CultureInfo.InvariantCulture);
        var noCgroups = args.Contains("--no-cgroups");
        var guest = Opt("--guest") ?? Environment.GetEnvironmentVariable("STRATUS_TINY_GUEST_DIR") ?? FindGuest();
        if (guest is null || !File.Exists(Path.Combine(guest, "vmlinuz")))
        {
            Console.Error.WriteLine("migration: tiny guest not found; build it with tools/guest/build.sh or pass --guest DIR");
            return 2;
        }

        var samples = new List<Sample>();
        // The whole system as a user drives it: stratusd and two stratus-agent processes, migration through the REST API.
        await using var cloud = args.Contains("--no-stratus") ? null : await Cloud.StartAsync(guest);
        for (var run = 1; run <= runs; run++)
        {
            foreach (var load in new[] { "idle", "dirty" })
            {
                // Rotate which mode goes first so load drift on a shared machine favours none.
                string[] all = cloud is null ? ["raw", "raw-tuned", "driver"] : ["raw", "raw-tuned", "driver", "stratus"];
                var shift = (run + (load == "dirty" ? 1 : 0)) % all.Length;
                var modes = all.Skip(shift).Concat(all.Take(shift)).ToArray();
                foreach (var mode in modes)
                {
                    var s = mode switch
                    {
                        "raw" => await RawAsync(guest, memory, load == "dirty", run, tuned: false),
                        "raw-tuned" => await RawAsync(guest, memory, load == "dirty", run, tuned: true),
                        "driver" => await DriverAsync(guest, memory, load == "dirty", run, noCgroups),
                        _ => await cloud!.MigrateAsync(load == "dirty", run),
                    };
                    Console.Error.WriteLine($"[migration] run {run} {load} {mode}: total {s.TotalMs} ms (destination listening after {s.PrepareMs} ms), downtime {s.DowntimeMs} ms, QEMU total {s.QemuTotalMs} ms, sent {s.TransferredMib} MiB, dirty rate ≤ {s.DirtyRateMibPerSecond} MiB/s");
                    samples.Add(s);
                }
            }
        }

        var medians = new JsonObject();
        foreach (var load in new[] { "idle", "dirty" })
        {
            long Median(string mode, Func<Sample, long> f)
            {
                var v = samples.Where(s => s.Mode == mode && s.Load == load).Select(f).Order().ToList();
                return v.Count == 0 ? 0 : v[v.Count / 2];
            }

            var rawTotal = Median("raw", s => s.TotalMs);
            var tunedTotal = Median("raw-tuned", s => s.TotalMs);
            var driverTotal = Median("driver", s => s.TotalMs);
            var stratusTotal = Median("stratus", s => s.TotalMs);
            medians[load] = new JsonObject
            {
                ["raw_total_ms"] = rawTotal,
                ["raw_downtime_ms"] = Median("raw", s => s.DowntimeMs),
                ["raw_prepare_ms"] = Median("raw", s => s.PrepareMs),
                ["driver_prepare_ms"] = Median("driver", s => s.PrepareMs),
                ["driver_total_ms"] = driverTotal,
                ["driver_downtime_ms"] = Median("driver", s => s.DowntimeMs),
                ["driver_over_raw_total"] = rawTotal == 0 ? null : Math.Round((double)driverTotal / rawTotal, 3),
                ["stratus_total_ms"] = stratusTotal,
                ["stratus_downtime_ms"] = Median("stratus", s => s.DowntimeMs),
                ["stratus_over_raw_total"] = rawTotal == 0 || stratusTotal == 0 ? null : Math.Round((double)stratusTotal / rawTotal, 3),
                ["raw_tuned_total_ms"] = tunedTotal,
                ["raw_tuned_downtime_ms"] = Median("raw-tuned", s => s.DowntimeMs),
                ["raw_tuned_over_raw_total"] = rawTotal == 0 ? null : Math.Round((double)tunedTotal / rawTotal, 3),
                ["stratus_over_raw_tuned_total"] = tunedTotal == 0 || stratusTotal == 0 ? null : Math.Round((double)stratusTotal / tunedTotal, 3),
            };
        }

        var result = new JsonObject
        {
            ["memory_mib"] = memory,
            ["runs"] = JsonSerializer.SerializeToNode(samples.Select(s => new { mode = s.Mode, load = s.Load, run = s.Run, total_ms = s.TotalMs, downtime_ms = s.DowntimeMs, qemu_total_ms = s.QemuTotalMs, prepare_ms = s.PrepareMs, transferred_mib = s.TransferredMib, dirty_rate_mib_s = s.DirtyRateMibPerSecond })),
            ["medians"] = medians,
            ["load_average"] = File.ReadAllText("/proc/loadavg").Split(' ')[0],
        };
        Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static string? FindGuest()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
        {
            dir = dir.Parent;
        }

        return dir is null ? null : Path.Combine(dir.FullName, "tools", "guest", "out", "tiny");
    }

    private static async Task<Sample> DriverAsync(string guest, int memory, bool dirty, int run, bool noCgroups)
    {
        var root = Path.Combine("/tmp", "smb-" + Guid.NewGuid().ToString("N")[..8]);
        var options = (string dir, string cg) => new QemuDriverOptions
        {
            DataDirectory = Path.Combine(root, dir),
            SharedPoolDirectory = Path.Combine(root, "pool"),
            CgroupParent = cg,
            Accelerator = AcceleratorMode.Tcg,
            Cgroups = noCgroups ? CgroupMode.None : CgroupMode.Auto,
        };
        Directory.CreateDirectory(root);
        await using var a = new QemuDriver(options("a", "stratus-bench-a"));
        await using var b = new QemuDriver(options("b", "stratus-bench-b"));
        var id = InstanceId.New();
        try
        {
            var cmdline = (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim();
            var spec = new VmSpec(id, "bench", 1, memory, 1, Path.Combine(guest, "disk.qcow2"), "qcow2",
                Path.Combine(guest, "vmlinuz"), Path.Combine(guest, "initrd.img"), cmdline,
                dirty ? DirtyUserData.Replace("\r", "", StringComparison.Ordinal) + "\n" : null, [], [new PortForward(0, 80)],
                1, memory, CpuCapped: false, StoragePool: StoragePools.Shared);
            var created = await a.CreateAsync(spec, CancellationToken.None);
            await WaitReadyAsync(created.Forwards[0].HostPort, dirty ? () => a.ReadConsoleAsync(id, 1 << 20, CancellationToken.None) : null);

            var clock = Stopwatch.StartNew();
            var incoming = await b.PrepareIncomingAsync(spec, CancellationToken.None);
            var prepared = clock.ElapsedMilliseconds;
            var rate = new MaxDirtyRate();
            var final = await a.MigrateOutAsync(id, incoming, new MigrationOptions(), rate, CancellationToken.None);
            await b.CompleteIncomingAsync(id, CancellationToken.None);
            var total = clock.ElapsedMilliseconds;
            await a.CompleteOutgoingAsync(id, CancellationToken.None);
            return new Sample("driver", dirty ? "dirty" : "idle", run, total, final.DowntimeMs ?? -1, final.TotalTimeMs ?? -1, prepared,
                final.TransferredBytes >> 20, rate.Max >> 20);
        }
        finally
        {
            await b.AbortIncomingAsync(id, CancellationToken.None);
            await a.DestroyAsync(id, CancellationToken.None);
            await b.DestroyAsync(id, CancellationToken.None);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <param name="tuned">The transport Stratus's pipelined destination uses, without Stratus: the migration port is bound
    /// first with a 32 MiB receive buffer, the source starts sending at once, the destination QEMU starts meanwhile and gets
    /// the accepted connection (<c>getfd</c> + <c>migrate-incoming fd:</c>). Stratus over this is Stratus's own overhead.</param>
    private static async Task<Sample> RawAsync(string guest, int memory, bool dirty, int run, bool tuned)
    {
        var dir = Path.Combine("/tmp", "smr-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        Process? source = null;
        Process? destination = null;
        try
        {
            var disk = Path.Combine(dir, "disk.qcow2");
            await ExecAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", Path.Combine(guest, "disk.qcow2"), "-F", "qcow2", disk, "1G");
            await File.WriteAllTextAsync(Path.Combine(dir, "meta-data"), $"instance-id: bench-{run}\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "user-data"), dirty ? DirtyUserData.Replace("\r", "", StringComparison.Ordinal) + "\n" : "");
            var repoTools = Path.GetFullPath(Path.Combine(guest, "..", "..", "make-config-drive.sh"));
            await ExecAsync("bash", repoTools, Path.Combine(dir, "cidata.img"), Path.Combine(dir, "meta-data"), Path.Combine(dir, "user-data"));

            var httpPort = FreePort();
            source = Start(RawArgs(guest, dir, memory, "src", httpPort, incoming: false));
            await using var srcQmp = await QmpClient.ConnectAsync(Path.Combine(dir, "src.sock"), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(10), CancellationToken.None);
            await WaitReadyAsync(httpPort, dirty ? () => Task.FromResult(File.Exists(Path.Combine(dir, "src.log")) ? File.ReadAllText(Path.Combine(dir, "src.log")) : "") : null);

            var migrationPort = FreePort();
            var clock = Stopwatch.StartNew();
            QmpClient dstQmp;
            long prepared;
            if (tuned)
            {
                using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listener.SetRawSocketOption(1, 33 /* SO_RCVBUFFORCE */, BitConverter.GetBytes(32 * 1024 * 1024));
                listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                listener.Listen(1);
                migrationPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
                var accepted = listener.AcceptAsync();
                destination = Start(RawArgs(guest, dir, memory, "dst", FreePort(), incoming: true));
                prepared = clock.ElapsedMilliseconds;
                await srcQmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object> { ["downtime-limit"] = 300, ["max-bandwidth"] = UnlimitedBandwidth }, CancellationToken.None);
                await srcQmp.ExecuteAsync("migrate", new { uri = $"tcp:127.0.0.1:{migrationPort}" }, CancellationToken.None);
                dstQmp = await QmpClient.ConnectAsync(Path.Combine(dir, "dst.sock"), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(10), CancellationToken.None);
                using var connection = await accepted;
                await dstQmp.ExecuteWithFdAsync("getfd", new { fdname = "bench" }, (int)connection.SafeHandle.DangerousGetHandle(), CancellationToken.None);
                await dstQmp.ExecuteAsync("migrate-incoming", new { uri = "fd:bench" }, CancellationToken.None);
            }
            else
            {
                destination = Start(RawArgs(guest, dir, memory, "dst", FreePort(), incoming: true));
                dstQmp = await QmpClient.ConnectAsync(Path.Combine(dir, "dst.sock"), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(10), CancellationToken.None);
                await dstQmp.ExecuteAsync("migrate-incoming", new { uri = $"tcp:127.0.0.1:{migrationPort}" }, CancellationToken.None);
                prepared = clock.ElapsedMilliseconds;
                await srcQmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object> { ["downtime-limit"] = 300, ["max-bandwidth"] = UnlimitedBandwidth }, CancellationToken.None);
                await srcQmp.ExecuteAsync("migrate", new { uri = $"tcp:127.0.0.1:{migrationPort}" }, CancellationToken.None);
            }

            await using var dstQmpOwned = dstQmp;
            long maxRate = 0;
            while (true)
            {
                var info = await srcQmp.ExecuteAsync("query-migrate", null, CancellationToken.None);
                var status = info.GetProperty("status").GetString();
                if (info.TryGetProperty("ram", out var ram))
                {
                    maxRate = Math.Max(maxRate, (long)ram.GetProperty("dirty-pages-rate").GetDouble() * ram.GetProperty("page-size").GetInt64());
                }

                if (status == "completed")
                {
                    var total = clock.ElapsedMilliseconds;
                    // QEMU sets "completed" a moment before it computes total-time and downtime.
                    while (info.GetProperty("total-time").GetInt64() == 0)
                    {
                        await Task.Delay(10);
                        info = await srcQmp.ExecuteAsync("query-migrate", null, CancellationToken.None);
                    }

                    return new Sample(tuned ? "raw-tuned" : "raw", dirty ? "dirty" : "idle", run, total, info.GetProperty("downtime").GetInt64(), info.GetProperty("total-time").GetInt64(), prepared,
                        info.GetProperty("ram").GetProperty("transferred").GetInt64() >> 20, maxRate >> 20);
                }

                if (status is "failed" or "cancelled" || clock.Elapsed > TimeSpan.FromMinutes(2))
                {
                    throw new InvalidOperationException($"raw migration {status}: {info}");
                }

                await Task.Delay(10);
            }
        }
        finally
        {
            foreach (var p in new[] { source, destination })
            {
                if (p is not null)
                {
                    if (!p.HasExited)
                    {
                        p.Kill();
                    }

                    await p.WaitForExitAsync();
                    p.Dispose();
                }
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The command line QemuDriver builds (docs/qemu-driver.md), without the cgroup and QMP plumbing around it.</summary>
    private static List<string> RawArgs(string guest, string dir, int memory, string name, int httpPort, bool incoming)
    {
        var args = new List<string>
        {
            "-name", "bench-" + name, "-nodefaults", "-no-user-config", "-nographic",
            "-sandbox", "on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny",
            "-qmp", $"unix:{Path.Combine(dir, name + ".sock")},server=on,wait=off",
            "-accel", "tcg,tb-size=64", "-smp", "1,maxcpus=1", "-m", $"size={memory}M",
            "-chardev", $"file,id=serial0,path={Path.Combine(dir, name + ".log")},append=on", "-serial", "chardev:serial0",
            "-blockdev", $"driver=file,filename={Path.Combine(dir, "disk.qcow2")},node-name=root-file",
            "-blockdev", "driver=qcow2,file=root-file,node-name=root-fmt",
            "-device", "virtio-blk-pci,drive=root-fmt,id=root-disk,bootindex=1",
            "-blockdev", $"driver=file,filename={Path.Combine(dir, "cidata.img")},node-name=cidata-file,read-only=on",
            "-blockdev", "driver=raw,file=cidata-file,node-name=cidata-fmt,read-only=on",
            "-device", "virtio-blk-pci,drive=cidata-fmt,id=cidata-disk",
            "-netdev", $"user,id=net0,hostfwd=tcp:127.0.0.1:{httpPort}-:80", "-device", "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:12:34:56",
            "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
            "-kernel", Path.Combine(guest, "vmlinuz"), "-initrd", Path.Combine(guest, "initrd.img"),
            "-append", File.ReadAllText(Path.Combine(guest, "cmdline")).Trim(),
        };
        if (incoming)
        {
            args.AddRange(["-incoming", "defer"]);
        }

        return args;
    }

    private static Process Start(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false, RedirectStandardOutput = false, RedirectStandardError = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    private static async Task ExecAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var outText = p.StandardOutput.ReadToEndAsync();
        var err = await p.StandardError.ReadToEndAsync();
        await outText;
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} failed: {err}");
        }
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    /// <summary>Waits for the guest's page, then (dirty load) for the loop's start marker, then one more second to settle.</summary>
    private static async Task WaitReadyAsync(int port, Func<Task<string>>? console)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(90))
            {
                throw new TimeoutException("the guest did not become ready");
            }

            try
            {
                await Http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"));
                if (console is null || (await console()).Contains("BENCH-DIRTY-STARTED", StringComparison.Ordinal))
                {
                    break;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(200);
        }

        await Task.Delay(1000);
    }

    /// <summary>
    /// A two-host cloud started with <c>./stratus up --hosts 2</c> (real processes, shared pool). A
    /// sample is one <c>POST /v1/servers/{id}/migrate</c> timed from the request until the API shows
    /// the server on the other host with no task (polled every 10 ms), so it includes the controller's
    /// checks and claim, the destination's QEMU start and every phase's round trip over gRPC.
    /// </summary>
    private sealed class Cloud : IAsyncDisposable
    {
        private readonly string _data;
        private readonly string _stratus;
        private readonly Stratus.Client.StratusClient _client;

        private Cloud(string data, string stratus, Stratus.Client.StratusClient client)
        {
            _data = data;
            _stratus = stratus;
            _client = client;
        }

        public static async Task<Cloud> StartAsync(string guest)
        {
            var root = Path.GetFullPath(Path.Combine(guest, "..", "..", "..", ".."));
            var stratus = Path.Combine(root, "stratus");
            var data = Path.Combine("/tmp", "smb-cloud-" + Guid.NewGuid().ToString("N")[..8]);
            var port = FreePort();
            await ExecAsync(stratus, "up", "--detach", "--driver", "qemu", "--hosts", "2", "--data-dir", data, "--port", port.ToString(CultureInfo.InvariantCulture));
            var cloud = new Cloud(data, stratus, Stratus.Client.StratusClient.Create(new Uri($"http://127.0.0.1:{port}/"), TimeSpan.FromSeconds(10), Stratus.Client.Credentials.ReadBootstrapKey(data)));
            // Warm-up: one migration in each direction, so each freshly started process has compiled
            // its migration paths (the first one after start pays .NET's JIT; reported, not counted).
            await cloud.MigrateAsync(false, 0, moves: 2, warmUp: true);
            return cloud;
        }

        public async Task<Sample> MigrateAsync(bool dirty, int run, int moves = 1, bool warmUp = false)
        {
            var name = $"bench-{(dirty ? "dirty" : "idle")}-{run}";
            var s = await _client.CreateServerAsync(new Stratus.Core.Wire.CreateServerRequest(name, "tiny", "tiny",
                dirty ? DirtyUserData.Replace("\r", "", StringComparison.Ordinal) + "\n" : null, null, null, [new Stratus.Core.Wire.ForwardDto(0, 80)]));
            try
            {
                while ((s = await _client.GetServerAsync(s.Id)).VmState != "active" || s.Task is not null)
                {
                    await Task.Delay(100);
                }
                await WaitReadyAsync(s.Forwards.First(f => f.GuestPort == 80).HostPort,
                    dirty ? async () => (await _client.ConsoleAsync(s.Id)).Output : null);
                for (var move = 1; move < moves; move++)
                {
                    var w = await MoveOnceAsync(s.Id, dirty, run);
                    Console.Error.WriteLine($"[migration] warm-up move {move}: total {w.TotalMs} ms, downtime {w.DowntimeMs} ms (not counted)");
                }
                var last = await MoveOnceAsync(s.Id, dirty, run);
                if (warmUp)
                {
                    Console.Error.WriteLine($"[migration] warm-up move {moves}: total {last.TotalMs} ms, downtime {last.DowntimeMs} ms (not counted)");
                }
                return last;
            }
            finally
            {
                await _client.DeleteServerAsync(s.Id);
                while ((await _client.ListServersAsync(name: name)).Count > 0)
                {
                    await Task.Delay(100);
                }
            }
        }

        private async Task<Sample> MoveOnceAsync(string id, bool dirty, int run)
        {
            var s = await _client.GetServerAsync(id);
            {
                var source = s.HostId;
                var clock = Stopwatch.StartNew();
                await _client.MigrateServerAsync(s.Id, new Stratus.Core.Wire.MigrateRequest(null, true, null, null, null, null));
                Stratus.Core.Wire.ServerDto now;
                while ((now = await _client.GetServerAsync(s.Id)).Task is not null)
                {
                    await Task.Delay(10);
                }
                var total = clock.ElapsedMilliseconds;
                var action = (await _client.ListActionsAsync(s.Id)).Last(a => a.Action == "live-migrate");
                if (now.HostId == source || action.Result != "success")
                {
                    throw new InvalidOperationException($"migration failed: {action.Message}");
                }
                // "moved to host X: total N ms, downtime M ms, B bytes (…)" (QEMU's own figures).
                long Field(string label)
                {
                    var m = System.Text.RegularExpressions.Regex.Match(action.Message ?? "", label + @" (\d+)");
                    return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
                }
                // "(accept 1 ms, prepare 52 ms, migrate 330 ms from the request)": the destination's preparation as the controller saw it.
                return new Sample("stratus", dirty ? "dirty" : "idle", run, total, Field("downtime"), Field("total"), Field("prepare"), Field("ms,") >> 20, 0);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await ExecAsync(_stratus, "down", "--data-dir", _data);
            try
            {
                Directory.Delete(_data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
