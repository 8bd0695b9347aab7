using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 4's acceptance with real VMs, driven through `./stratus` as a user would: one tiny guest
/// booted under QEMU (TCG here) serves HTTP through its forward, runs its user-data, accepts SSH
/// with the server's key, keeps /data across stop/start, reboots, pauses, survives a SIGKILL of
/// the controller (same QEMU pid adopted), and leaves nothing behind when deleted. Bad images,
/// oversized user-data, a host port in use and a malformed key are refused with 4xx and leave
/// nothing behind.
/// </summary>
public sealed class QemuScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sq-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(3) };

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunInAsync(Url, TimeSpan.FromMinutes(3), _data, args);

    private async Task<string?> PageAsync(int port)
    {
        try
        {
            return await Http.GetStringAsync($"http://127.0.0.1:{port}/");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private async Task<string> WaitPageAsync(int port, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (await PageAsync(port) is { } page)
            {
                return page;
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"no HTTP answer on port {port} within {timeout}");
    }

    private static long Uptime(string page) =>
        long.Parse(page.Split('\n').First(l => l.StartsWith("uptime_s=", StringComparison.Ordinal))[9..], CultureInfo.InvariantCulture);

    private static int[] QemuPids(string id) =>
        Directory.GetDirectories("/proc").Select(d => Path.GetFileName(d)).Where(n => n.All(char.IsAsciiDigit))
            .Where(pid =>
            {
                try
                {
                    var cmd = File.ReadAllText($"/proc/{pid}/cmdline");
                    return cmd.StartsWith("qemu-system", StringComparison.Ordinal) || cmd.Contains("/qemu-system", StringComparison.Ordinal) ? cmd.Contains(id, StringComparison.Ordinal) : false;
                }
                catch (IOException)
                {
                    return false;
                }
            }).Select(int.Parse).ToArray();

    [Fact]
    public async Task TinyGuest_FullLifecycle_RealVm()
    {
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "1", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        var host = (await S("host", "list", "-o", "json")).Ok().Json()[0];
        Assert.Equal("qemu", host.GetProperty("driver").GetString());
        Assert.Contains(host.GetProperty("accelerator").GetString(), new[] { "kvm", "tcg" });
        Assert.Equal("stratus-qemu", host.GetProperty("hypervisor_user").GetString());

        (await S("keypair", "create", "k1")).Ok();
        var userData = Path.Combine(_data, "user-data.sh");
        await File.WriteAllTextAsync(userData, "#!/bin/sh\necho USERDATA-MARKER-7731\n[ -f /data/x ] || echo from-user-data > /data/x\n");
        var created = (await S("server", "create", "web", "--flavor", "tiny", "--image", "tiny", "--user-data", userData, "--key", "k1", "--forward", "0:80", "--wait", "-o", "json")).Ok().Json();
        Assert.Equal("active", created.GetProperty("vm_state").GetString());
        var id = created.GetProperty("id").GetString()!;
        var fwd = created.GetProperty("forwards").EnumerateArray().ToDictionary(f => f.GetProperty("guest_port").GetInt32(), f => f.GetProperty("host_port").GetInt32());
        Assert.True(fwd[80] > 0 && fwd[22] > 0);

        var page = await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(90));
        Assert.Contains($"id={id}", page, StringComparison.Ordinal);
        Assert.Contains("cpus=1", page, StringComparison.Ordinal);
        var console = (await S("server", "console", "web")).Ok().Stdout;
        for (var i = 0; i < 40 && !console.Contains("STRATUS-USERDATA-DONE", StringComparison.Ordinal); i++)
        {
            await Task.Delay(250);
            console = (await S("server", "console", "web")).Ok().Stdout;
        }
        Assert.Contains("USERDATA-MARKER-7731", console, StringComparison.Ordinal);
        Assert.Equal("from-user-data", (await S("server", "ssh", "web", "--", "cat", "/data/x")).Ok().Stdout.Trim());

        // /data survives stop/start (written over SSH: user-data runs at every boot, so it would not prove anything).
        (await S("server", "ssh", "web", "--", "sh", "-c", "'echo kept-7731 > /data/y; sync'")).Ok();
        (await S("server", "stop", "web", "--wait")).Ok();
        Assert.Null(await PageAsync(fwd[80]));
        (await S("server", "start", "web", "--wait")).Ok();
        var afterStart = (await S("server", "show", "web", "-o", "json")).Ok().Json();
        Assert.Equal(fwd[80], afterStart.GetProperty("forwards").EnumerateArray().First(f => f.GetProperty("guest_port").GetInt32() == 80).GetProperty("host_port").GetInt32());
        await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(90));
        Assert.Equal("kept-7731", (await S("server", "ssh", "web", "--", "cat", "/data/y")).Ok().Stdout.Trim());

        // Reboot: the guest's uptime starts again.
        await Task.Delay(2000);
        var before = Uptime(await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(30)));
        (await S("server", "reboot", "web", "--hard", "--wait")).Ok();
        var rebooted = await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(90));
        Assert.True(Uptime(rebooted) < before + 1, $"uptime {Uptime(rebooted)} s after reboot, {before} s before");

        // Pause stops the guest answering; resume brings it back.
        (await S("server", "pause", "web", "--wait")).Ok();
        Assert.Null(await PageAsync(fwd[80]));
        (await S("server", "resume", "web", "--wait")).Ok();
        Assert.NotNull(await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(30)));

        // SIGKILL of the controller: the same QEMU process is adopted and still serves.
        var pids = QemuPids(id);
        Assert.Single(pids);
        var uid = File.ReadLines($"/proc/{pids[0]}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        Assert.DoesNotContain("\t0", uid, StringComparison.Ordinal);
        var controller = int.Parse(File.ReadAllText(Path.Combine(_data, "stratusd.pid")).Trim(), CultureInfo.InvariantCulture);
        Process.GetProcessById(controller).Kill();
        await Task.Delay(500);
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "1", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        Assert.Equal(pids, QemuPids(id));
        Assert.Contains($"id={id}", await WaitPageAsync(fwd[80], TimeSpan.FromSeconds(30)), StringComparison.Ordinal);
        var afterAdopt = (await S("server", "show", "web", "-o", "json")).Ok().Json();
        Assert.Equal("active", afterAdopt.GetProperty("vm_state").GetString());

        // Bad input, each refused with 4xx and nothing left behind.
        await BadInputAsync(fwd[80]);

        // Delete leaves no process, cgroup, disk file or forwarded port.
        (await S("server", "delete", "web", "--wait")).Ok();
        Assert.Empty(QemuPids(id));
        Assert.Empty(Directory.GetDirectories(Path.Combine(_data, "hosts", "host-1", "qemu", "vms")));
        foreach (var controllerDir in new[] { "cpu", "memory", "cpuacct", "" })
        {
            Assert.False(Directory.Exists(Path.Combine("/sys/fs/cgroup", controllerDir, "stratus", id)), $"cgroup {controllerDir} left for {id}");
        }
        Assert.Null(await PageAsync(fwd[80]));
        Assert.Empty(Directory.GetFiles(Path.Combine(_data, "hosts", "host-1", "qemu"), $"*{id}*", SearchOption.AllDirectories));
    }

    private async Task BadInputAsync(int portInUse)
    {
        var images = Path.Combine(_data, "images");
        string[] Entries() => Directory.Exists(images) ? Directory.GetFileSystemEntries(images).Order().ToArray() : [];
        var before = Entries();
        var bad = Path.Combine(_data, "bad");
        Directory.CreateDirectory(bad);
        async Task Refused(string code, params string[] args)
        {
            var r = await S(args);
            Assert.True(r.ExitCode != 0, $"{string.Join(' ', args)} was accepted: {r.Stdout}");
            Assert.Contains(code, r.Stderr, StringComparison.Ordinal);
            Assert.Contains("HTTP 4", r.Stderr, StringComparison.Ordinal);
            Assert.Single(r.Stderr.Trim().Split('\n'));
        }

        // A truncated qcow2: a real one cut in half.
        var good = Path.Combine(bad, "good.qcow2");
        await RunAsync("qemu-img", "create", "-f", "qcow2", good, "64M");
        await RunAsync("qemu-io", "-c", "write -P 0x5a 0 4M", good);
        var bytes = await File.ReadAllBytesAsync(good);
        await File.WriteAllBytesAsync(Path.Combine(bad, "truncated.qcow2"), bytes[..(bytes.Length / 2)]);
        await Refused("image_invalid", "image", "import", "trunc", Path.Combine(bad, "truncated.qcow2"));
        // A corrupt qcow2: valid header, garbage tables.
        var corrupt = bytes.ToArray();
        for (var i = 0x10000; i < Math.Min(corrupt.Length, 0x30000); i++)
        {
            corrupt[i] = 0xff;
        }
        await File.WriteAllBytesAsync(Path.Combine(bad, "corrupt.qcow2"), corrupt);
        await Refused("image_invalid", "image", "import", "corrupt", Path.Combine(bad, "corrupt.qcow2"));
        // A raw file named .qcow2.
        await File.WriteAllBytesAsync(Path.Combine(bad, "raw.qcow2"), new byte[2 * 1024 * 1024]);
        await Refused("format_mismatch", "image", "import", "liar", Path.Combine(bad, "raw.qcow2"));
        // A qcow2 with a backing file.
        await RunAsync("qemu-img", "create", "-f", "qcow2", "-b", good, "-F", "qcow2", Path.Combine(bad, "overlay.qcow2"));
        await Refused("image_has_backing_file", "image", "import", "overlay", Path.Combine(bad, "overlay.qcow2"));
        // A good image is accepted (so the refusals above are about the content).
        var ok = (await S("image", "import", "goodimg", good, "-o", "json")).Ok().Json();
        Assert.Equal("qcow2", ok.GetProperty("disk_format").GetString());
        Assert.StartsWith("sha256:", ok.GetProperty("checksum").GetString(), StringComparison.Ordinal);
        (await S("image", "delete", "goodimg")).Ok();

        // User-data over the limit, a host port in use, a malformed public key.
        var big = Path.Combine(bad, "big.sh");
        await File.WriteAllTextAsync(big, "#!/bin/sh\n" + new string('#', 70 * 1024));
        await Refused("validation_failed", "server", "create", "big", "--flavor", "tiny", "--image", "tiny", "--user-data", big);
        await Refused("port_in_use", "server", "create", "clash", "--flavor", "tiny", "--image", "tiny", "--forward", $"{portInUse}:80");
        using (var l = new TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            var busy = ((IPEndPoint)l.LocalEndpoint).Port;
            await Refused("port_in_use", "server", "create", "clash2", "--flavor", "tiny", "--image", "tiny", "--forward", $"{busy}:80");
        }
        var badKey = Path.Combine(bad, "bad.pub");
        await File.WriteAllTextAsync(badKey, "ssh-ed25519 AAAAtruncated nobody");
        await Refused("validation_failed", "keypair", "import", "badkey", badKey);

        Assert.Equal(before, Entries());
        var names = (await S("server", "list", "-o", "json")).Ok().Json().EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray();
        Assert.Equal(new[] { "web" }, names);
        var imageNames = (await S("image", "list", "-o", "json")).Ok().Json().EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray();
        Assert.Equal(new[] { "tiny" }, imageNames);
    }

    private static async Task RunAsync(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{exe} {string.Join(' ', args)}: {await err}");
    }

    public async Task DisposeAsync()
    {
        await Cli.RunInAsync(Url, TimeSpan.FromSeconds(60), _data, "down", "--data-dir", _data);
        try
        {
            Directory.Delete(_data, true);
        }
        catch (IOException)
        {
        }
    }
}
