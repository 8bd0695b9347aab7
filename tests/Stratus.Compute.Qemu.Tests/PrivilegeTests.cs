using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>What /proc says about a process and what a uid may do, for the privilege tests.</summary>
internal static class Privileges
{
    /// <summary>The value of a /proc/PID/status line ("Uid", "CapEff", ...), tabs turned into spaces.</summary>
    public static string Status(int pid, string key) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":", StringComparison.Ordinal))[(key.Length + 1)..].Trim().Replace('\t', ' ');

    public static (int Uid, int Gid) Account(string user)
    {
        var fields = RunTool("getent", "passwd", user).Output.Trim().Split(':');
        return (int.Parse(fields[2], CultureInfo.InvariantCulture), int.Parse(fields[3], CultureInfo.InvariantCulture));
    }

    /// <summary>Whether <c>test <paramref name="test"/> <paramref name="path"/></c> succeeds for uid/gid (no groups).</summary>
    public static bool AllowedAs(int uid, int gid, string test, string path) =>
        RunTool("setpriv", $"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "/usr/bin/test", test, path).Code == 0;

    /// <summary>Every descriptor of <paramref name="pid"/> that is a regular file: its path and whether it is open for writing.</summary>
    public static List<(string Path, bool Writable)> Files(int pid) =>
        [.. Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd")
            .Select(fd => (Fd: Path.GetFileName(fd), Target: new FileInfo(fd).LinkTarget ?? ""))
            .Where(f => f.Target.StartsWith('/') && !f.Target.StartsWith("/dev/", StringComparison.Ordinal))
            .Select(f =>
            {
                var flags = Convert.ToInt32(File.ReadLines($"/proc/{pid}/fdinfo/{f.Fd}").First(l => l.StartsWith("flags:", StringComparison.Ordinal))[6..].Trim(), 8);
                return (f.Target, (flags & 3) != 0);
            })];

    private static (int Code, string Output) RunTool(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }
}

/// <summary>The booted tiny guest's QEMU runs as the unprivileged user and holds only its own files.</summary>
[Collection("tiny guest")]
public sealed class BootedGuestPrivilegeTests(TinyGuestFixture guest)
{
    [Fact]
    public async Task BootedVm_QemuProcess_RunsUnprivilegedAndCannotWriteOutsideItsFiles()
    {
        await guest.EnsureServingAsync();
        var pid = (await guest.Driver.GetStatusAsync(guest.Id, CancellationToken.None))!.Pid!.Value;
        var (uid, gid) = Privileges.Account("stratus-qemu");
        Assert.NotEqual(0, uid);

        // Real, effective, saved and file-system ids; no groups, no capabilities left, sandboxed.
        Assert.Equal($"{uid} {uid} {uid} {uid}", Privileges.Status(pid, "Uid"));
        Assert.Equal($"{gid} {gid} {gid} {gid}", Privileges.Status(pid, "Gid"));
        Assert.Equal("", Privileges.Status(pid, "Groups"));
        Assert.Equal("0000000000000000", Privileges.Status(pid, "CapEff"));
        Assert.Equal("0000000000000000", Privileges.Status(pid, "CapPrm"));
        Assert.Equal("0000000000000000", Privileges.Status(pid, "CapBnd"));
        Assert.Equal("1", Privileges.Status(pid, "NoNewPrivs"));
        Assert.Equal("2", Privileges.Status(pid, "Seccomp"));
        Assert.Equal("stratus-qemu", (await guest.Driver.DetectInventoryAsync(CancellationToken.None)).HypervisorUser);

        // What QEMU holds open: the overlay, the console and its own log for writing; everything else read-only.
        var vmDir = Path.Combine(guest.DataDirectory, "vms", guest.Id.ToString());
        var overlay = Path.Combine(vmDir, "disk.qcow2");
        var baseImage = Path.Combine(await TestEnvironment.TinyGuestAsync(), "disk.qcow2");
        var files = Privileges.Files(pid);
        Assert.Equal(
            new[] { overlay, Path.Combine(vmDir, "console.log"), Path.Combine(vmDir, "qemu.log") }.Order(StringComparer.Ordinal),
            files.Where(f => f.Writable).Select(f => f.Path).Distinct().Order(StringComparer.Ordinal));
        Assert.Contains((baseImage, false), files);
        Assert.Contains((Path.Combine(await TestEnvironment.TinyGuestAsync(), "vmlinuz"), false), files);

        // By path, the uid reaches nothing of the VM's: not the base image, the overlay, the VM directory or the data directory.
        Assert.False(Privileges.AllowedAs(uid, gid, "-w", baseImage));
        Assert.False(Privileges.AllowedAs(uid, gid, "-r", overlay));
        Assert.False(Privileges.AllowedAs(uid, gid, "-w", overlay));
        Assert.False(Privileges.AllowedAs(uid, gid, "-w", vmDir));
        Assert.False(Privileges.AllowedAs(uid, gid, "-x", vmDir));
        Assert.False(Privileges.AllowedAs(uid, gid, "-w", guest.DataDirectory));
        // The check itself works: the uid may write a directory that everyone may.
        Assert.True(Privileges.AllowedAs(uid, gid, "-w", "/tmp"));
        // The guest still has its disk (user-data counted its boots there) and serves.
        Assert.Contains($"id={guest.Id}", await TestEnvironment.WaitForHttpAsync(guest.HostPort, TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
    }
}

/// <summary>Who QEMU runs as when privileges cannot or should not be dropped (firmware-only VMs).</summary>
public sealed class PrivilegeFallbackTests : IAsyncLifetime
{
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();
    private readonly List<QemuDriver> _drivers = [];

    private QemuDriver NewDriver(Action<QemuDriverOptions> configure, ILogger<QemuDriver>? logger = null)
    {
        TestEnvironment.RequireQemu();
        var options = TestEnvironment.Options(_dataDir);
        options.GracefulStopTimeout = TimeSpan.Zero;
        configure(options);
        var driver = new QemuDriver(options, logger);
        _drivers.Add(driver);
        return driver;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var d in _drivers)
        {
            foreach (var vm in await d.ListAsync(CancellationToken.None))
            {
                await d.DestroyAsync(vm.Id, CancellationToken.None);
            }

            await d.DisposeAsync();
        }

        TestEnvironment.DeleteDirectory(_dataDir);
    }

    [Fact]
    public async Task PrivilegeDropFails_QemuRunsAsRoot_WarnsOnce()
    {
        var logger = new ListLogger();
        // /bin/false in setpriv's place: the trial launch exits 1 before any QEMU starts, as on a host that refuses setuid.
        var driver = NewDriver(o => o.SetprivBinary = "/bin/false", logger);

        var first = await driver.CreateAsync(TestEnvironment.BareSpec(InstanceId.New()), CancellationToken.None);
        var second = await driver.CreateAsync(TestEnvironment.BareSpec(InstanceId.New()), CancellationToken.None);

        Assert.Equal("0 0 0 0", Privileges.Status(first.Pid!.Value, "Uid"));
        Assert.Equal("0 0 0 0", Privileges.Status(second.Pid!.Value, "Uid"));
        var identity = await driver.DetectQemuIdentityAsync(CancellationToken.None);
        Assert.False(identity.DropsPrivileges);
        Assert.Equal("root", identity.User);
        Assert.Contains("exit code 1", identity.FallbackReason, StringComparison.Ordinal);
        var inventory = await driver.DetectInventoryAsync(CancellationToken.None);
        Assert.StartsWith("root (fallback: false exit code 1", inventory.HypervisorUser, StringComparison.Ordinal);
        var warning = Assert.Single(logger.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal(4007, warning.EventId);
        Assert.Contains("QEMU runs as root", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuUserUnset_QemuRunsAsRoot_WithoutWarning()
    {
        var logger = new ListLogger();
        var driver = NewDriver(o => o.QemuUser = null, logger);

        var status = await driver.CreateAsync(TestEnvironment.BareSpec(InstanceId.New()), CancellationToken.None);

        Assert.Equal("0 0 0 0", Privileges.Status(status.Pid!.Value, "Uid"));
        Assert.Equal("root", (await driver.DetectInventoryAsync(CancellationToken.None)).HypervisorUser);
        Assert.DoesNotContain(logger.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task ForwardBelowUnprivilegedPorts_UnprivilegedQemuBindsItWithOnlyThatCapability()
    {
        var start = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_unprivileged_port_start").Trim(), CultureInfo.InvariantCulture);
        Assert.True(start > 1, "this host lets every user bind every port: nothing to test");
        var port = Enumerable.Range(Math.Max(1, start - 200), Math.Min(start - 1, 200)).Reverse().First(PortIsFree);
        var driver = NewDriver(_ => { });

        var status = await driver.CreateAsync(TestEnvironment.BareSpec(InstanceId.New(), [new PortForward(port, 80)]), CancellationToken.None);

        var pid = status.Pid!.Value;
        Assert.Equal(PowerState.Running, status.Power);
        Assert.NotEqual("0 0 0 0", Privileges.Status(pid, "Uid"));
        Assert.False(PortIsFree(port));
        // CAP_NET_BIND_SERVICE (bit 10) and nothing else.
        Assert.Equal("0000000000000400", Privileges.Status(pid, "CapEff"));
        Assert.Equal("0000000000000400", Privileges.Status(pid, "CapBnd"));
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private sealed class ListLogger : ILogger<QemuDriver>
    {
        public ConcurrentQueue<(LogLevel Level, int EventId, string Message)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue((logLevel, eventId.Id, formatter(state, exception)));
    }
}

/// <summary>What dropping privileges costs at launch, for docs/SPECIFICATION.md: create→running of a firmware-only VM with
/// QEMU as stratus-qemu (setpriv exec + descriptors) against QEMU as root (descriptors only), interleaved in rotating
/// order; and one uncached trial launch. Timings are compared as a ratio within the run.</summary>
[Trait("Category", "Slow")]
public sealed class PrivilegeMeasurementTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private const int Rounds = 9;
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();
    private QemuDriver _unprivileged = null!;
    private QemuDriver _root = null!;

    public Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        _unprivileged = new QemuDriver(TestEnvironment.Options(Path.Combine(_dataDir, "u")));
        var root = TestEnvironment.Options(Path.Combine(_dataDir, "r"));
        root.QemuUser = null;
        _root = new QemuDriver(root);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _unprivileged.DisposeAsync();
        await _root.DisposeAsync();
        TestEnvironment.DeleteDirectory(_dataDir);
    }

    [Fact]
    public async Task Launch_UnprivilegedVsRoot_PrintsMediansAndRatio()
    {
        // /bin/setpriv is the same binary under a name no other test uses: its trial launch is not cached yet.
        var probeOptions = TestEnvironment.Options(Path.Combine(_dataDir, "p"));
        probeOptions.SetprivBinary = "/bin/setpriv";
        await using var probing = new QemuDriver(probeOptions);
        await probing.DetectAcceleratorAsync(CancellationToken.None);
        var probeClock = Stopwatch.StartNew();
        var identity = await probing.DetectQemuIdentityAsync(CancellationToken.None);
        var probe = probeClock.Elapsed;
        Assert.True(identity.DropsPrivileges, identity.ToString());
        await _unprivileged.DetectQemuIdentityAsync(CancellationToken.None);
        await _root.DetectQemuIdentityAsync(CancellationToken.None);

        var times = new Dictionary<QemuDriver, List<double>> { [_unprivileged] = [], [_root] = [] };
        for (var round = -1; round < Rounds; round++)
        {
            foreach (var driver in round % 2 == 0 ? new[] { _unprivileged, _root } : [_root, _unprivileged])
            {
                var spec = TestEnvironment.BareSpec(InstanceId.New());
                var clock = Stopwatch.StartNew();
                var status = await driver.CreateAsync(spec, CancellationToken.None);
                if (round >= 0)
                {
                    // Round -1 warms up (JIT, first use of each driver) and is not counted.
                    times[driver].Add(clock.Elapsed.TotalMilliseconds);
                }

                Assert.Equal(PowerState.Running, status.Power);
                Assert.Equal(driver == _root, Privileges.Status(status.Pid!.Value, "Uid") == "0 0 0 0");
                await driver.DestroyAsync(spec.Id, CancellationToken.None);
            }
        }

        static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
        var u = Median(times[_unprivileged]);
        var r = Median(times[_root]);
        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"create→running, firmware-only VM, {Rounds} rounds, load {load}: stratus-qemu median {u:0} ms ({string.Join(", ", times[_unprivileged].Select(t => t.ToString("0", CultureInfo.InvariantCulture)))}), " +
            $"root median {r:0} ms ({string.Join(", ", times[_root].Select(t => t.ToString("0", CultureInfo.InvariantCulture)))}), ratio {u / r:0.00}; uncached trial launch {probe.TotalMilliseconds:0} ms"));
        Assert.InRange(u / r, 0.25, 4.0);
    }
}
