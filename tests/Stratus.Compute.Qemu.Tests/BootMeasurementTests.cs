using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Stratus.Compute;
using Stratus.Core.Ids;
using Xunit.Abstractions;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>
/// Boot figures for docs/qemu-driver.md, measured in one run: the driver's create→running and create→HTTP for the tiny
/// guest against a plain <c>qemu-system-x86_64</c> boot of the same kernel, initrd, command line, memory, disk overlay and
/// config drive (built beforehand, so the difference is what the driver adds); then five VMs at once.
/// Timings are compared as ratios within the run, never against absolute limits.
/// </summary>
[Trait("Category", "Slow")]
public sealed class BootMeasurementTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly int Rounds = int.TryParse(Environment.GetEnvironmentVariable("STRATUS_BOOT_ROUNDS"), out var r) ? r : 3;
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();
    private readonly List<(string Kind, double Seconds)> _guestUp = [];
    private QemuDriver _driver = null!;

    /// <summary>The guest's own uptime when its userspace was ready (it prints "userspace up at X s").</summary>
    private static double GuestUp(string console)
    {
        var m = System.Text.RegularExpressions.Regex.Match(console, @"userspace up at ([0-9.]+)s");
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;
    }

    public Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        _driver = new QemuDriver(TestEnvironment.Options(_dataDir));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var vm in await _driver.ListAsync(CancellationToken.None))
        {
            await _driver.DestroyAsync(vm.Id, CancellationToken.None);
        }

        await _driver.DisposeAsync();
        TestEnvironment.DeleteDirectory(_dataDir);
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    /// <summary>Plain QEMU, same guest and devices, no driver: exec → first HTTP answer.</summary>
    private async Task<TimeSpan> PlainBootAsync(VmSpec spec, string overlay, string cidata)
    {
        var port = FreePort();
        var psi = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[]
                 {
                     "-nodefaults", "-no-user-config", "-nographic", "-accel", "tcg,tb-size=64", "-smp", "1", "-m", $"{spec.MemoryMib}M",
                     "-kernel", spec.KernelPath!, "-initrd", spec.InitrdPath!, "-append", spec.KernelCmdline!,
                     "-serial", "file:" + Path.Combine(_dataDir, "plain-console.log"),
                     "-drive", $"file={overlay},format=qcow2,if=virtio", "-drive", $"file={cidata},format=raw,if=virtio,readonly=on",
                     "-netdev", $"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80", "-device", "virtio-net-pci,netdev=n0",
                     "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
                 })
        {
            psi.ArgumentList.Add(a);
        }

        var clock = Stopwatch.StartNew();
        using var qemu = Process.Start(psi)!;
        try
        {
            await TestEnvironment.WaitForHttpAsync(port, TimeSpan.FromSeconds(90));
            var elapsed = clock.Elapsed;
            var console = Path.Combine(_dataDir, "plain-console.log");
            var plainConsole = await File.ReadAllTextAsync(console);
            _guestUp.Add(("plain", GuestUp(plainConsole)));
            if (Environment.GetEnvironmentVariable("STRATUS_DUMP_CONSOLE") == "1") output.WriteLine(plainConsole);
            File.Delete(console);
            return elapsed;
        }
        finally
        {
            qemu.Kill();
            await qemu.WaitForExitAsync();
        }
    }

    /// <summary>Driver: create → running (QMP says so) → HTTP answer through the forward. </summary>
    private async Task<(double Running, double Http)> DriverBootAsync(bool capped, int round)
    {
        var id = InstanceId.New();
        var spec = await TestEnvironment.TinySpecAsync(id, null, capped: capped);
        var clock = Stopwatch.StartNew();
        var status = await _driver.CreateAsync(spec, CancellationToken.None);
        var running = clock.Elapsed.TotalMilliseconds;
        var page = await TestEnvironment.WaitForHttpAsync(status.Forwards.Single().HostPort, TimeSpan.FromSeconds(90));
        var http = clock.Elapsed.TotalMilliseconds;
        Assert.Contains($"id={id}", page, StringComparison.Ordinal);
        var consoleText = await _driver.ReadConsoleAsync(id, 1 << 20, CancellationToken.None);
        _guestUp.Add((capped ? "capped" : "uncapped", GuestUp(consoleText)));
        if (Environment.GetEnvironmentVariable("STRATUS_DUMP_CONSOLE") == "1") output.WriteLine(consoleText);
        await _driver.DestroyAsync(id, CancellationToken.None);
        return (running, http);
    }

    [Fact]
    public async Task Boot_DriverAgainstPlainQemu_AddsLittleAndFiveVmsRunAtOnce()
    {
        // The accelerator probe (a bounded trial boot) runs once per host, when the agent reports its inventory.
        await _driver.DetectInventoryAsync(CancellationToken.None);
        var plain = new List<double>();
        var toRunning = new List<double>();
        var toHttp = new List<double>();
        var toHttpUncapped = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            // The order rotates every round so load drift on a shared machine favours no variant.
            for (var step = 0; step < 3; step++)
            {
                switch ((step + round) % 3)
                {
                    case 0:
                        var capped = await DriverBootAsync(capped: true, round);
                        toRunning.Add(capped.Running);
                        toHttp.Add(capped.Http);
                        break;
                    case 1:
                        toHttpUncapped.Add((await DriverBootAsync(capped: false, round)).Http);
                        break;
                    default:
                        // Plain: a fresh overlay and a config drive built the same way, prepared before the clock starts.
                        var spec = await TestEnvironment.TinySpecAsync(InstanceId.New(), null);
                        var overlay = Path.Combine(_dataDir, $"plain-{round}.qcow2");
                        await new QemuImg().CreateOverlayAsync(overlay, spec.ImagePath!, "qcow2", 1L << 30, CancellationToken.None);
                        var cidata = Path.Combine(_dataDir, $"plain-cidata-{round}.img");
                        await ConfigDrive.BuildAsync(spec, cidata, CancellationToken.None);
                        plain.Add((await PlainBootAsync(spec, overlay, cidata)).TotalMilliseconds);
                        break;
                }
            }
        }

        var medianPlain = Median(plain);
        var medianHttp = Median(toHttp);
        var ratio = medianHttp / medianPlain;
        string List(List<double> v) => Invariant($"{string.Join(", ", v.Select(x => x.ToString("0", CultureInfo.InvariantCulture)))} (median {Median(v):0})");
        output.WriteLine($"plain qemu exec→HTTP ms: {List(plain)}");
        output.WriteLine($"driver create→running ms: {List(toRunning)}");
        output.WriteLine($"driver create→HTTP ms (CPU capped at 1 vCPU): {List(toHttp)}");
        output.WriteLine($"driver create→HTTP ms (uncapped): {List(toHttpUncapped)}");
        output.WriteLine("guest uptime at userspace-ready s: " + string.Join(", ", _guestUp.Select(g => Invariant($"{g.Kind} {g.Seconds:0.00}"))));
        output.WriteLine(Invariant($"ratio driver/plain create→HTTP: capped {ratio:0.000} (+{medianHttp - medianPlain:0} ms), uncapped {Median(toHttpUncapped) / medianPlain:0.000} (+{Median(toHttpUncapped) - medianPlain:0} ms)"));

        // Five VMs at once.
        var self = Process.GetCurrentProcess();
        self.Refresh();
        var hostRssBefore = self.WorkingSet64;
        var clock5 = Stopwatch.StartNew();
        var specs = new List<VmSpec>();
        for (var i = 0; i < 5; i++)
        {
            specs.Add(await TestEnvironment.TinySpecAsync(InstanceId.New(), null));
        }

        var statuses = await Task.WhenAll(specs.Select(s => _driver.CreateAsync(s, CancellationToken.None)));
        var pages = await Task.WhenAll(statuses.Select(s => TestEnvironment.WaitForHttpAsync(s.Forwards.Single().HostPort, TimeSpan.FromSeconds(120))));
        var allUp = clock5.Elapsed;
        for (var i = 0; i < 5; i++)
        {
            Assert.Contains($"id={statuses[i].Id}", pages[i], StringComparison.Ordinal);
        }

        Assert.Equal(5, statuses.Select(s => s.Forwards.Single().HostPort).Distinct().Count());
        self.Refresh();
        var rss = statuses.Select(s => RssKib(s.Pid!.Value) / 1024.0).ToList();
        var cgroupMib = new List<double>();
        foreach (var s in statuses)
        {
            cgroupMib.Add((await _driver.ReadUsageAsync(s.Id, CancellationToken.None))!.Value.MemoryBytes / 1048576.0);
        }

        output.WriteLine(Invariant($"five 128 MiB VMs created at once: all answering HTTP after {allUp.TotalMilliseconds:0} ms"));
        output.WriteLine(Invariant($"QEMU RSS per VM MiB: {string.Join(", ", rss.Select(v => v.ToString("0", CultureInfo.InvariantCulture)))}; cgroup memory MiB: {string.Join(", ", cgroupMib.Select(v => v.ToString("0", CultureInfo.InvariantCulture)))}; limit {128 + await _driver.MemoryOverheadMibAsync(CancellationToken.None)} MiB"));
        output.WriteLine(Invariant($"test host (driver) RSS change for five VMs: {(self.WorkingSet64 - hostRssBefore) / 1048576.0:0.0} MiB"));
        Assert.InRange(ratio, 0.5, 2.0);
    }

    private static long RssKib(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
