using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Stratus.Compute;
using Stratus.Core.Ids;
using Xunit.Abstractions;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Live and offline resize of one real tiny guest (one VM boots for the whole scenario: the CI box has 2 cores).</summary>
public sealed partial class ResizeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _data = TestEnvironment.NewDataDirectory();
    private QemuDriver _driver = null!;
    private string _key = null!;
    private InstanceId _id;

    [GeneratedRegex(@"cpus=(\d+)\nmem_kib=(\d+)")]
    private static partial Regex Page();

    public async Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        _driver = new QemuDriver(TestEnvironment.Options(_data));
        _key = Path.Combine(_data, "id_ed25519");
        var (code, text) = await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", _key]);
        Assert.True(code == 0, text);
    }

    public async Task DisposeAsync()
    {
        if (_id != default)
        {
            await _driver.DestroyAsync(_id, CancellationToken.None);
        }
        await _driver.DisposeAsync();
        TestEnvironment.DeleteDirectory(_data);
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, (await stdout) + (await stderr));
    }

    private async Task<string> GuestAsync(int port, string command)
    {
        var sw = Stopwatch.StartNew();
        var last = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            var (code, text) = await RunAsync("ssh",
            [
                "-i", _key, "-p", port.ToString(CultureInfo.InvariantCulture), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "root@127.0.0.1", command,
            ]);
            if (code == 0)
            {
                return text.Trim();
            }
            last = text;
            await Task.Delay(500);
        }
        Assert.Fail($"ssh '{command}' never succeeded: {last}");
        return "";
    }

    private static (int Cpus, long MemKib) Parse(string page)
    {
        var m = Page().Match(page);
        Assert.True(m.Success, page);
        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Resize_RunningTinyGuest_GrowsLiveShrinksByBalloonAndRevertsOffline()
    {
        _id = InstanceId.New();
        var spec = await TestEnvironment.TinySpecAsync(_id, null, vcpus: 1, memoryMib: 256, forwards: [new PortForward(0, 80), new PortForward(0, 22)]);
        spec = spec with { MaxVcpus = 4, MaxMemoryMib = 1024, PublicKeys = [(await File.ReadAllTextAsync(_key + ".pub")).Trim()] };
        var status = await _driver.CreateAsync(spec, CancellationToken.None);
        var http = status.Forwards.Single(f => f.GuestPort == 80).HostPort;
        var ssh = status.Forwards.Single(f => f.GuestPort == 22).HostPort;
        var (cpus0, mem0) = Parse(await TestEnvironment.WaitForHttpAsync(http, TimeSpan.FromSeconds(90)));
        Assert.Equal(1, cpus0);
        Assert.Equal("2097152", await GuestAsync(ssh, "cat /sys/block/vda/size")); // 1 GiB in 512-byte sectors

        // Live growth: 1 → 3 vCPUs, 256 → 512 MiB, 1 → 2 GiB disk; the guest's own page shows it.
        var grown = await _driver.ResizeLiveAsync(_id, new VmResizeTarget(3, 512, 2, 4, 1024), CancellationToken.None);
        output.WriteLine($"grow: guest-visible after {grown.GuestVisibleMs} ms; {string.Join(" | ", grown.Detail)}");
        Assert.True(grown.Live && grown.GuestVerified);
        Assert.Equal(3, grown.GuestCpus);
        Assert.True(grown.GuestMemoryKib - mem0 >= 256 * 1024 * 9 / 10, $"mem_kib {mem0} → {grown.GuestMemoryKib}");
        var (cpus1, mem1) = Parse((await TestEnvironment.TryGetAsync(http, TimeSpan.FromSeconds(5)))!);
        Assert.Equal(3, cpus1);
        Assert.True(mem1 - mem0 >= 256 * 1024 * 9 / 10);
        Assert.Equal(status.Pid, grown.Status.Pid); // no reboot
        // The disk grew online and the guest's block device sees the new capacity.
        var sectors = "";
        for (var i = 0; i < 50 && sectors != "4194304"; i++)
        {
            sectors = await GuestAsync(ssh, "cat /sys/block/vda/size");
        }
        Assert.Equal("4194304", sectors);

        // Live shrink through the balloon: 512 → 256 MiB.
        var shrunk = await _driver.ResizeLiveAsync(_id, new VmResizeTarget(3, 256, 2, 4, 1024), CancellationToken.None);
        output.WriteLine($"balloon: guest-visible after {shrunk.GuestVisibleMs} ms; {string.Join(" | ", shrunk.Detail)}");
        Assert.True(shrunk.GuestVerified);
        Assert.True(mem1 - shrunk.GuestMemoryKib >= 256 * 1024 * 9 / 10, $"mem_kib {mem1} → {shrunk.GuestMemoryKib}");

        // What a live resize never does: remove vCPUs, pass the ceiling, shrink the disk. Nothing changes.
        foreach (var bad in new[] { new VmResizeTarget(2, 256, 2, 4, 1024), new VmResizeTarget(5, 256, 2, 4, 1024), new VmResizeTarget(3, 2048, 2, 4, 1024), new VmResizeTarget(3, 256, 1, 4, 1024) })
        {
            var e = await Assert.ThrowsAsync<ComputeException>(() => _driver.ResizeLiveAsync(_id, bad, CancellationToken.None));
            Assert.Equal("invalid_spec", e.Code);
        }
        Assert.Equal(3, Parse((await TestEnvironment.TryGetAsync(http, TimeSpan.FromSeconds(5)))!).Cpus);
        var live = _driver.SpecOf(_id)!;
        Assert.Equal((3, 256L, 2L), (live.Vcpus, live.MemoryMib, live.DiskGib));

        // Offline: stop, 3 → 2 vCPUs and 3 GiB, then revert brings back exactly the spec and the disk from before.
        await _driver.StopAsync(_id, TimeSpan.FromSeconds(20), CancellationToken.None);
        var cold = await _driver.ResizeStoppedAsync(_id, new VmResizeTarget(2, 384, 3, 4, 1024), CancellationToken.None);
        Assert.False(cold.Live);
        Assert.Equal((2, 384L, 3L), (_driver.SpecOf(_id)!.Vcpus, _driver.SpecOf(_id)!.MemoryMib, _driver.SpecOf(_id)!.DiskGib));
        await _driver.RevertResizeAsync(_id, CancellationToken.None);
        var back = _driver.SpecOf(_id)!;
        Assert.Equal((live.Vcpus, live.MemoryMib, live.DiskGib, live.MaxVcpus, live.MaxMemoryMib), (back.Vcpus, back.MemoryMib, back.DiskGib, back.MaxVcpus, back.MaxMemoryMib));
        var e2 = await Assert.ThrowsAsync<ComputeException>(() => _driver.RevertResizeAsync(_id, CancellationToken.None));
        Assert.Equal("invalid_state", e2.Code);

        // Offline again, confirmed, and booted: the guest comes up with the new size.
        await _driver.ResizeStoppedAsync(_id, new VmResizeTarget(2, 384, 3, 4, 1024), CancellationToken.None);
        await _driver.ConfirmResizeAsync(_id, CancellationToken.None);
        await _driver.StartAsync(_id, CancellationToken.None);
        var (cpus2, _) = Parse(await TestEnvironment.WaitForHttpAsync(http, TimeSpan.FromSeconds(90)));
        Assert.Equal(2, cpus2);
        Assert.Equal("6291456", await GuestAsync(ssh, "cat /sys/block/vda/size"));
    }
}
