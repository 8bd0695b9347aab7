using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Driver behaviour that needs QEMU but no guest OS (firmware-only VMs start in well under a second).</summary>
public sealed class QemuDriverTests : IAsyncLifetime
{
    private readonly string _dataDir = TestEnvironment.NewDataDirectory();
    private readonly List<QemuDriver> _drivers = [];
    private readonly List<InstanceId> _created = [];

    private QemuDriver NewDriver()
    {
        TestEnvironment.RequireQemu();
        var options = TestEnvironment.Options(_dataDir);
        options.GracefulStopTimeout = TimeSpan.FromSeconds(1);
        var driver = new QemuDriver(options);
        _drivers.Add(driver);
        return driver;
    }

    private async Task<VmStatus> CreateBareAsync(QemuDriver driver, IReadOnlyList<PortForward>? forwards = null)
    {
        var spec = TestEnvironment.BareSpec(InstanceId.New(), forwards);
        _created.Add(spec.Id);
        return await driver.CreateAsync(spec, CancellationToken.None);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Detach every test driver first: QEMU serves one QMP client at a time.
        foreach (var d in _drivers)
        {
            await d.DisposeAsync();
        }

        await using var cleaner = new QemuDriver(TestEnvironment.Options(_dataDir));
        foreach (var id in _created)
        {
            await cleaner.DestroyAsync(id, CancellationToken.None);
        }

        TestEnvironment.DeleteDirectory(_dataDir);
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

    [Fact]
    public async Task Create_Vm_CommandLineNamesInstanceAndSandboxes()
    {
        var driver = NewDriver();
        var status = await CreateBareAsync(driver);
        var pid = status.Pid!.Value;
        var cmdline = (await File.ReadAllTextAsync($"/proc/{pid}/cmdline")).Split('\0');
        Assert.Contains($"stratus-{status.Id},process=stratus-{status.Id}", cmdline);
        Assert.Equal(status.Id.ToString(), cmdline[Array.IndexOf(cmdline, "-uuid") + 1]);
        Assert.Contains("on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny", cmdline);
        Assert.EndsWith("qemu-system-x86_64", cmdline[0], StringComparison.Ordinal);
        Assert.StartsWith("stratus-", (await File.ReadAllTextAsync($"/proc/{pid}/comm")).Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_Vm_RunsInsideItsCgroupWithLimits()
    {
        var driver = NewDriver();
        Assert.NotNull(driver.Cgroups);
        var status = await CreateBareAsync(driver);
        var pids = await driver.Cgroups!.ReadProcessesAsync(status.Id.ToString(), CancellationToken.None);
        Assert.Contains(status.Pid!.Value, pids);
        var usage = await driver.ReadUsageAsync(status.Id, CancellationToken.None);
        Assert.True(usage!.Value.CpuUsageNanoseconds > 0);
        Assert.True(usage.Value.MemoryBytes > 0);
        if (driver.Cgroups.Version == 1)
        {
            var quota = await File.ReadAllTextAsync($"/sys/fs/cgroup/cpu/stratus-test/{status.Id}/cpu.cfs_quota_us");
            Assert.Equal("100000", quota.Trim());
            var limit = long.Parse(await File.ReadAllTextAsync($"/sys/fs/cgroup/memory/stratus-test/{status.Id}/memory.limit_in_bytes"), CultureInfo.InvariantCulture);
            Assert.Equal((64L + await driver.MemoryOverheadMibAsync(CancellationToken.None)) * 1024 * 1024, limit);
        }
    }

    [Fact]
    public async Task Destroy_RunningVm_LeavesNoProcessCgroupDiskOrPort()
    {
        var driver = NewDriver();
        var spec = TestEnvironment.BareSpec(InstanceId.New(), [new PortForward(0, 22)]) with { DiskGib = 1 };
        _created.Add(spec.Id);
        var status = await driver.CreateAsync(spec, CancellationToken.None);
        var port = status.Forwards.Single().HostPort;
        Assert.NotEqual(0, port);
        Assert.False(PortIsFree(port));
        var dir = Path.Combine(_dataDir, "vms", spec.Id.ToString());
        Assert.True(File.Exists(Path.Combine(dir, "disk.qcow2")));
        Assert.True(driver.Cgroups!.Exists(spec.Id.ToString()));

        await driver.DestroyAsync(spec.Id, CancellationToken.None);

        Assert.Empty(TestEnvironment.QemuPidsOf(spec.Id));
        Assert.False(driver.Cgroups.Exists(spec.Id.ToString()));
        Assert.False(Directory.Exists(dir));
        Assert.True(PortIsFree(port));
        Assert.Null(await driver.GetStatusAsync(spec.Id, CancellationToken.None));
    }

    [Fact]
    public async Task Create_HostPortInUse_ThrowsPortInUseAndLeavesNothing()
    {
        var driver = NewDriver();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var busy = ((IPEndPoint)listener.LocalEndpoint).Port;
        var spec = TestEnvironment.BareSpec(InstanceId.New(), [new PortForward(busy, 80)]);

        var e = await Assert.ThrowsAsync<ComputeException>(() => driver.CreateAsync(spec, CancellationToken.None));

        Assert.Equal("port_in_use", e.Code);
        Assert.Null(await driver.GetStatusAsync(spec.Id, CancellationToken.None));
        Assert.False(Directory.Exists(Path.Combine(_dataDir, "vms", spec.Id.ToString())));
        Assert.Empty(TestEnvironment.QemuPidsOf(spec.Id));
        Assert.False(driver.Cgroups?.Exists(spec.Id.ToString()) ?? false);
    }

    [Fact]
    public async Task Create_BadMetadata_RefusedAndLeavesNothing()
    {
        var driver = NewDriver();
        var badKey = TestEnvironment.BareSpec(InstanceId.New()) with { PublicKeys = ["ssh-ed25519"] };
        Assert.Equal("invalid_public_key", (await Assert.ThrowsAsync<ComputeException>(() => driver.CreateAsync(badKey, CancellationToken.None))).Code);
        var bigUserData = TestEnvironment.BareSpec(InstanceId.New()) with { UserData = new string('x', 65 * 1024) };
        Assert.Equal("user_data_too_large", (await Assert.ThrowsAsync<ComputeException>(() => driver.CreateAsync(bigUserData, CancellationToken.None))).Code);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(_dataDir, "vms")));
    }

    [Fact]
    public async Task Create_ImageNotWhatSpecSays_RefusedAndLeavesNothing()
    {
        var driver = NewDriver();
        var raw = Path.Combine(_dataDir, "raw-named.qcow2");
        await File.WriteAllBytesAsync(raw, new byte[1024 * 1024]);
        var spec = TestEnvironment.BareSpec(InstanceId.New()) with { ImagePath = raw, ImageFormat = "qcow2", DiskGib = 1 };
        var e = await Assert.ThrowsAsync<ComputeException>(() => driver.CreateAsync(spec, CancellationToken.None));
        Assert.Equal("image_invalid", e.Code);
        Assert.False(Directory.Exists(Path.Combine(_dataDir, "vms", spec.Id.ToString())));
    }

    [Fact]
    public async Task StopStart_ChosenHostPort_IsKeptForTheVmsLife()
    {
        var driver = NewDriver();
        var status = await CreateBareAsync(driver, [new PortForward(0, 80)]);
        var port = status.Forwards.Single().HostPort;
        await driver.StopAsync(status.Id, TimeSpan.Zero, CancellationToken.None);
        var started = await driver.StartAsync(status.Id, CancellationToken.None);
        Assert.Equal(port, started.Forwards.Single().HostPort);
        Assert.NotEqual(status.Pid, started.Pid);

        // A second VM asking for "any port" never gets the first VM's port, even while that VM is stopped.
        await driver.StopAsync(status.Id, TimeSpan.Zero, CancellationToken.None);
        var other = await CreateBareAsync(driver, [new PortForward(0, 80)]);
        Assert.NotEqual(port, other.Forwards.Single().HostPort);
    }

    [Fact]
    public async Task QemuKilled_Unexpectedly_RaisesCrashedEvent()
    {
        var driver = NewDriver();
        var events = new List<VmEvent>();
        var seen = new TaskCompletionSource<VmEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        driver.VmChanged += e =>
        {
            lock (events)
            {
                events.Add(e);
            }

            seen.TrySetResult(e);
        };
        var status = await CreateBareAsync(driver);
        using (var p = Process.GetProcessById(status.Pid!.Value))
        {
            p.Kill();
        }

        var ev = await seen.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(status.Id, ev.Id);
        Assert.Equal(PowerState.Crashed, ev.Power);
        Assert.Equal(PowerState.Crashed, (await driver.GetStatusAsync(status.Id, CancellationToken.None))!.Power);

        // A requested stop raises nothing.
        var restarted = await driver.StartAsync(status.Id, CancellationToken.None);
        Assert.Equal(PowerState.Running, restarted.Power);
        await driver.StopAsync(status.Id, TimeSpan.Zero, CancellationToken.None);
        lock (events)
        {
            Assert.Single(events);
        }
    }

    [Fact]
    public async Task Adoption_QemuDiedWhileDetached_ReportsCrashedAndRestarts()
    {
        var a = NewDriver();
        var status = await CreateBareAsync(a);
        var stopped = await CreateBareAsync(a);
        await a.StopAsync(stopped.Id, TimeSpan.Zero, CancellationToken.None);
        await a.DisposeAsync();
        Assert.Equal([status.Pid!.Value], TestEnvironment.QemuPidsOf(status.Id));
        using (var p = Process.GetProcessById(status.Pid.Value))
        {
            p.Kill();
            await p.WaitForExitAsync();
        }

        var b = NewDriver();
        var list = await b.ListAsync(CancellationToken.None);
        Assert.Equal(PowerState.Crashed, list.Single(s => s.Id == status.Id).Power);
        Assert.Equal(PowerState.Shutdown, list.Single(s => s.Id == stopped.Id).Power);

        // The crash is remembered by the next driver too, until the VM is started again.
        await b.DisposeAsync();
        var c = NewDriver();
        Assert.Equal(PowerState.Crashed, (await c.GetStatusAsync(status.Id, CancellationToken.None))!.Power);
        var again = await c.StartAsync(status.Id, CancellationToken.None);
        Assert.Equal(PowerState.Running, again.Power);
    }

    [Fact]
    public async Task DetectInventory_ThisHost_MatchesProcAndProbe()
    {
        var driver = NewDriver();
        var inventory = await driver.DetectInventoryAsync(CancellationToken.None);
        Assert.Equal(Environment.ProcessorCount, inventory.Cores);
        Assert.InRange(inventory.MemoryMib, 256, 16L * 1024 * 1024);
        Assert.True(inventory.DiskGib > 0);
        Assert.Contains(inventory.Accelerator, new[] { "kvm", "tcg" });
        Assert.Equal(driver.Cgroups?.Version ?? 0, inventory.CgroupVersion);
        Assert.NotEqual("unknown", inventory.CpuModel);
    }

    [Fact]
    public void Options_Invalid_ListsEveryError()
    {
        var options = new QemuDriverOptions { DataDirectory = "relative", TcgTbSizeMib = 1, CpuPeriodMicroseconds = 5 };
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains("DataDirectory", e.Message, StringComparison.Ordinal);
        Assert.Contains("TcgTbSizeMib", e.Message, StringComparison.Ordinal);
        Assert.Contains("CpuPeriodMicroseconds", e.Message, StringComparison.Ordinal);
    }
}
