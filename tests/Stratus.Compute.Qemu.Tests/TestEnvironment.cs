using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http;
using Stratus.Compute;
using Stratus.Core.Ids;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Where the tiny guest and QEMU are, and helpers every QEMU test shares.</summary>
internal static class TestEnvironment
{
    private static readonly SemaphoreSlim GuestGate = new(1, 1);
    private static string? _guestDir;

    /// <summary>Fails (never skips) when QEMU is missing: CI installs it.</summary>
    public static void RequireQemu()
    {
        foreach (var tool in new[] { "qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy" })
        {
            if (FindOnPath(tool) is null)
            {
                Assert.Fail($"{tool} is not installed: these tests boot real VMs. Install qemu-system-x86 qemu-utils dosfstools mtools (apt-get install).");
            }
        }
    }

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"])
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    /// <summary>The tiny guest's build output: $STRATUS_TINY_GUEST_DIR, else &lt;repo&gt;/tools/guest/out/tiny (built with
    /// tools/guest/build.sh when missing). Fails with a clear message when neither works.</summary>
    public static async Task<string> TinyGuestAsync()
    {
        await GuestGate.WaitAsync();
        try
        {
            if (_guestDir is not null)
            {
                return _guestDir;
            }

            var env = Environment.GetEnvironmentVariable("STRATUS_TINY_GUEST_DIR");
            var candidates = new List<string>();
            if (!string.IsNullOrEmpty(env))
            {
                candidates.Add(env);
            }

            var repo = RepoRoot();
            if (repo is not null)
            {
                candidates.Add(Path.Combine(repo, "tools", "guest", "out", "tiny"));
            }

            foreach (var dir in candidates)
            {
                if (File.Exists(Path.Combine(dir, "vmlinuz")) && File.Exists(Path.Combine(dir, "initrd.img")))
                {
                    return _guestDir = dir;
                }
            }

            var build = repo is null ? null : Path.Combine(repo, "tools", "guest", "build.sh");
            if (build is null || !File.Exists(build))
            {
                Assert.Fail("The tiny guest is missing: set STRATUS_TINY_GUEST_DIR or build it with tools/guest/build.sh (looked in " + string.Join(", ", candidates) + ").");
            }

            var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(build);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            var outDir = Path.Combine(repo!, "tools", "guest", "out", "tiny");
            if (p.ExitCode != 0 || !File.Exists(Path.Combine(outDir, "vmlinuz")))
            {
                Assert.Fail($"tools/guest/build.sh failed ({p.ExitCode}): {await stderr}{await stdout}");
            }

            return _guestDir = outDir;
        }
        finally
        {
            GuestGate.Release();
        }
    }

    private static string? RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName;
    }

    /// <summary>A fresh, short data directory (unix socket paths must stay under 108 bytes).</summary>
    public static string NewDataDirectory()
    {
        var dir = Path.Combine("/tmp", "sq-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static QemuDriverOptions Options(string dataDir) => new()
    {
        DataDirectory = dataDir,
        GracefulStopTimeout = TimeSpan.FromSeconds(20),
        CgroupParent = "stratus-test",
    };

    /// <summary>A spec for the tiny guest (kernel + initrd direct boot, its blank data disk as the root disk image).</summary>
    public static async Task<VmSpec> TinySpecAsync(InstanceId id, string? userData, int vcpus = 1, long memoryMib = 128, IReadOnlyList<PortForward>? forwards = null, bool capped = true)
    {
        var guest = await TinyGuestAsync();
        var cmdline = File.Exists(Path.Combine(guest, "cmdline")) ? (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim() : "console=ttyS0";
        var disk = Path.Combine(guest, "disk.qcow2");
        return new VmSpec(id, "tiny-" + id.Value.ToString("N")[..6], vcpus, memoryMib, 1,
            File.Exists(disk) ? disk : null, File.Exists(disk) ? "qcow2" : null,
            Path.Combine(guest, "vmlinuz"), Path.Combine(guest, "initrd.img"), cmdline, userData, [],
            forwards ?? [new PortForward(0, 80)], vcpus, memoryMib, capped);
    }

    /// <summary>A VM with no kernel and no disk: QEMU runs its firmware only. Enough for lifecycle and QMP tests.</summary>
    public static VmSpec BareSpec(InstanceId id, IReadOnlyList<PortForward>? forwards = null) =>
        new(id, "bare", 1, 64, 0, null, null, null, null, null, null, [], forwards ?? [], 1, 64);

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    /// <summary>GET http://127.0.0.1:port/path once; null when it does not answer.</summary>
    public static async Task<string?> TryGetAsync(int port, TimeSpan timeout, string path = "/")
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}{path}"), cts.Token);
            return response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadAsStringAsync(cts.Token) : null;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            return null;
        }
    }

    /// <summary>Polls the page until it answers (bounded). A new probe starts every 100 ms while earlier ones still wait:
    /// before the guest's network is up, slirp holds a connection open without answering, so one probe at a time
    /// would measure boot times in steps of its timeout.</summary>
    public static async Task<string> WaitForHttpAsync(int port, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        var probes = new List<Task<string?>>();
        while (deadline.Elapsed < timeout)
        {
            probes.Add(TryGetAsync(port, TimeSpan.FromSeconds(3)));
            var tick = Task.Delay(100);
            while (!tick.IsCompleted)
            {
                var done = await Task.WhenAny(probes.Append<Task>(tick));
                if (done is Task<string?> probe)
                {
                    probes.Remove(probe);
                    if (await probe is { } page)
                    {
                        return page;
                    }
                }
            }
        }

        Assert.Fail($"http://127.0.0.1:{port}/ did not answer within {timeout.TotalSeconds} s");
        return "";
    }

    /// <summary>Polls the console until it contains <paramref name="text"/> (bounded).</summary>
    public static async Task<string> WaitForConsoleAsync(IComputeDriver driver, InstanceId id, string text, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        var console = "";
        while (deadline.Elapsed < timeout)
        {
            console = await driver.ReadConsoleAsync(id, 256 * 1024, CancellationToken.None);
            if (console.Contains(text, StringComparison.Ordinal))
            {
                return console;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"console of {id} never showed '{text}' within {timeout.TotalSeconds} s; tail: {console[^Math.Min(console.Length, 1500)..]}");
        return console;
    }

    /// <summary>pids of live QEMU processes whose command line names <paramref name="id"/>.</summary>
    public static IReadOnlyList<int> QemuPidsOf(InstanceId id) =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && QemuDriver.IsQemuOf(pid, id))
            .ToList();

    public static void DeleteDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}
