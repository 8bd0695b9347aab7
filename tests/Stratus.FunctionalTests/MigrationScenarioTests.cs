using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 6's acceptance with real processes and real VMs: `./stratus up --hosts 2` (a controller and
/// two stratus-agent processes sharing one storage pool), a tiny guest live-migrated while a client
/// polls its HTTP page every 50 ms (following the forward as it moves), a migration rolled back
/// when the destination agent is killed mid-way, an agent SIGKILLed and restarted (VMs re-adopted),
/// an agent whose connection is cut (VMs keep running), and a host put into maintenance with 4 VMs.
/// </summary>
public sealed class MigrationScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("smig-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunInAsync(Url, TimeSpan.FromMinutes(5), _data, args);

    private static async Task<string> WaitPageAsync(int port, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (await ScenarioKit.PageAsync(port) is { } page)
            {
                return page;
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"no HTTP answer on port {port} within {timeout}");
    }

    private static double Uptime(string page) =>
        double.Parse(page.Split('\n').First(l => l.StartsWith("uptime_s=", StringComparison.Ordinal))[9..], CultureInfo.InvariantCulture);

    private async Task<JsonElement> ShowAsync(string name) => (await S("server", "show", name, "-o", "json")).Ok().Json();

    /// <summary>QEMU processes running the VM, with the agent directory each was started from.</summary>
    private static List<(int Pid, string Cmdline)> Qemu(string id) =>
        [.. Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)).Select(pid => ReadProc(pid!))
            .Where(p => p.Cmdline.Contains("qemu-system", StringComparison.Ordinal) && p.Cmdline.Contains(id, StringComparison.Ordinal) && !p.Zombie)
            .Select(p => (p.Pid, p.Cmdline))];

    private static (int Pid, string Cmdline, bool Zombie) ReadProc(string pid)
    {
        try
        {
            var cmd = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
            var zombie = File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
            return (int.Parse(pid, CultureInfo.InvariantCulture), cmd, zombie);
        }
        catch (IOException)
        {
            return (0, "", true);
        }
    }

    private int AgentPid(string host) => int.Parse(File.ReadAllText(Path.Combine(_data, "agents", host, "agent.pid")).Trim(), CultureInfo.InvariantCulture);

    private static string OtherHost(string host) => host == "host-1" ? "host-2" : "host-1";

    [Fact]
    public async Task TwoAgents_LiveMigration_Rollback_AgentRestart_Maintenance()
    {
        var report = new List<string>();
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "2", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        var hosts = (await S("host", "list", "-o", "json")).Ok().Json().EnumerateArray().ToList();
        Assert.Equal(2, hosts.Count);
        foreach (var h in hosts)
        {
            Assert.Equal(AgentPid(h.GetProperty("name").GetString()!), h.GetProperty("agent_pid").GetInt32());
            Assert.Contains(h.GetProperty("accelerator").GetString(), new[] { "kvm", "tcg" });
        }

        // ---- live migration while a client polls the page every 50 ms, following the forward.
        var web = (await S("server", "create", "web", "--flavor", "tiny", "--image", "tiny", "--forward", "0:80", "--wait", "-o", "json")).Ok().Json();
        var id = web.GetProperty("id").GetString()!;
        Assert.Equal("shared", web.GetProperty("storage_pool").GetString());
        var source = web.GetProperty("host_name").GetString() ?? (await ShowAsync("web")).GetProperty("host_name").GetString()!;
        var port = ScenarioKit.HttpPort(web);
        await WaitPageAsync(port, TimeSpan.FromSeconds(120));
        var sourceDir = Path.Combine(_data, "agents", source);
        Assert.Contains(Qemu(id), p => p.Cmdline.Contains(sourceDir, StringComparison.Ordinal));

        using var stopPolling = new CancellationTokenSource();
        var followPort = port;
        var gaps = new List<double>();
        var uptimes = new List<double>();
        var follower = Task.Run(async () =>
        {
            while (!stopPolling.IsCancellationRequested)
            {
                try
                {
                    using var c = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
                    c.DefaultRequestHeaders.Authorization = new("Bearer", Stratus.Client.Credentials.ReadBootstrapKey(_data));
                    var s = JsonDocument.Parse(await c.GetStringAsync($"{Url}/v1/servers/{id}")).RootElement;
                    Volatile.Write(ref followPort, ScenarioKit.HttpPort(s));
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                }
                await Task.Delay(100);
            }
        });
        var poller = Task.Run(async () =>
        {
            var lastAnswer = Stopwatch.StartNew();
            var longest = 0.0;
            while (!stopPolling.IsCancellationRequested)
            {
                var page = await ScenarioKit.PageAsync(Volatile.Read(ref followPort));
                // Only the guest's own page counts as an answer (a port just bound by a destination that is
                // still receiving the VM can accept a connection and return nothing).
                if (page is not null && page.Contains("uptime_s=", StringComparison.Ordinal))
                {
                    longest = Math.Max(longest, lastAnswer.Elapsed.TotalMilliseconds);
                    lastAnswer.Restart();
                    lock (uptimes)
                    {
                        uptimes.Add(Uptime(page));
                    }
                }
                await Task.Delay(50);
            }
            gaps.Add(longest);
        });
        await Task.Delay(1000);
        var migrated = (await S("server", "migrate", "web", "--live", "--wait", "-o", "json")).Ok().Json();
        await Task.Delay(1500);
        await stopPolling.CancelAsync();
        await Task.WhenAll(poller, follower);

        var destination = migrated.GetProperty("host_name").GetString()!;
        Assert.Equal(OtherHost(source), destination);
        Assert.NotEqual(port, ScenarioKit.HttpPort(migrated)); // the destination bound its own forward
        var page = await WaitPageAsync(ScenarioKit.HttpPort(migrated), TimeSpan.FromSeconds(10));
        Assert.Contains($"id={id}", page, StringComparison.Ordinal);
        // The guest's memory survived: uptime kept counting (never went back).
        lock (uptimes)
        {
            Assert.True(uptimes.Count > 10, $"only {uptimes.Count} answers while polling");
            for (var i = 1; i < uptimes.Count; i++)
            {
                Assert.True(uptimes[i] >= uptimes[i - 1], $"uptime went back from {uptimes[i - 1]} to {uptimes[i]}: the guest restarted");
            }
        }
        var qemu = Qemu(id);
        Assert.Single(qemu);
        Assert.Contains(Path.Combine(_data, "agents", destination), qemu[0].Cmdline, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(sourceDir, "qemu", "vms", id)), "the source kept the VM's directory");
        var actions = (await S("server", "actions", "web", "-o", "json")).Ok().Json().EnumerateArray().ToList();
        var live = actions.Last(a => a.GetProperty("action").GetString() == "live-migrate");
        Assert.Equal("success", live.GetProperty("result").GetString());
        report.Add($"live migration: longest gap without an HTTP answer {gaps[0]:0} ms; {live.GetProperty("message").GetString()}");

        // ---- a migration that cannot complete: the destination agent is killed mid-way → rolled back.
        var back = OtherHost(destination);
        var slowPort = ScenarioKit.HttpPort(migrated);
        (await S("server", "migrate", "web", "--live", "--bandwidth-mibps", "1")).Ok();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await ShowAsync("web")).GetProperty("migration") is not { ValueKind: JsonValueKind.Object } m || m.GetProperty("phase").GetString() != "migrating")
        {
            Assert.True(DateTime.UtcNow < deadline, "the migration never reached its migrating phase");
            await Task.Delay(100);
        }
        var killed = AgentPid(back);
        Process.GetProcessById(killed).Kill();
        deadline = DateTime.UtcNow.AddSeconds(60);
        JsonElement after;
        while ((after = await ShowAsync("web")).GetProperty("task").ValueKind != JsonValueKind.Null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the failed migration was not rolled back");
            await Task.Delay(200);
        }
        Assert.Equal(destination, after.GetProperty("host_name").GetString());
        Assert.Equal("active", after.GetProperty("vm_state").GetString());
        Assert.NotNull(await WaitPageAsync(slowPort, TimeSpan.FromSeconds(10)));
        actions = (await S("server", "actions", "web", "-o", "json")).Ok().Json().EnumerateArray().ToList();
        var failed = actions.Last(a => a.GetProperty("action").GetString() == "live-migrate");
        Assert.Equal("error", failed.GetProperty("result").GetString());
        Assert.Contains("rolled back", failed.GetProperty("message").GetString(), StringComparison.Ordinal);
        report.Add($"rollback: {failed.GetProperty("message").GetString()}");

        // The killed agent comes back by hand (as on a real server) and clears what it had prepared.
        await ScenarioKit.StartAgentAsync(_data, back, null);
        await WaitHostsConnectedAsync(2);
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (Qemu(id).Count != 1 || Directory.Exists(Path.Combine(_data, "agents", back, "qemu", "vms", id)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the destination left {Qemu(id).Count - 1} QEMU process(es) or its VM directory behind");
            await Task.Delay(200);
        }

        // ---- SIGKILL of the agent running the VM, then a restart: the VM keeps running and is re-adopted.
        var pidBefore = Qemu(id)[0].Pid;
        Process.GetProcessById(AgentPid(destination)).Kill();
        await Task.Delay(1500);
        Assert.NotNull(await ScenarioKit.PageAsync(slowPort));
        // Restarted through a proxy we can cut, to show a severed stream does not stop its VMs either.
        using var proxy = new CuttableProxy(AgentTcpEndpoint());
        await ScenarioKit.StartAgentAsync(_data, destination, $"http://127.0.0.1:{proxy.Port}");
        await WaitHostsConnectedAsync(2);
        await Task.Delay(2000);
        Assert.Equal(pidBefore, Assert.Single(Qemu(id)).Pid);
        var readopted = await ShowAsync("web");
        Assert.Equal("active", readopted.GetProperty("vm_state").GetString());
        Assert.Equal(JsonValueKind.Null, readopted.GetProperty("task").ValueKind);
        proxy.Cut();
        await Task.Delay(3000);
        Assert.NotNull(await ScenarioKit.PageAsync(slowPort));
        Assert.Equal(pidBefore, Assert.Single(Qemu(id)).Pid);
        await WaitHostsConnectedAsync(2); // it reconnected through the proxy
        Assert.True(proxy.Connections >= 2, "the agent did not reconnect after the cut");
        Assert.Equal("active", (await ShowAsync("web")).GetProperty("vm_state").GetString());
        report.Add($"agent SIGKILL + restart: QEMU pid {pidBefore} adopted; stream cut → reconnected ({proxy.Connections} connections), VM kept running");

        // ---- resized live (a vCPU and a DIMM hot-plugged into the running QEMU), then moved live: the destination
        // recreates the same devices from what the source's agent reported.
        (await S("flavor", "create", "tiny-2", "--vcpus", "2", "--ram", "512", "--disk", "1")).Ok();
        (await S("server", "resize", "web", "--flavor", "tiny-2", "--live")).Ok();
        var grownPage = await WaitPageAsync(slowPort, TimeSpan.FromSeconds(10));
        Assert.Contains("cpus=2\n", grownPage, StringComparison.Ordinal);
        var resizedMove = (await S("server", "migrate", "web", "--live", "--wait", "-o", "json")).Ok().Json();
        var movedPage = await WaitPageAsync(ScenarioKit.HttpPort(resizedMove), TimeSpan.FromSeconds(10));
        Assert.Contains("cpus=2\n", movedPage, StringComparison.Ordinal);
        Assert.True(Uptime(movedPage) >= Uptime(grownPage), "the resized guest rebooted when it moved");
        Assert.NotEqual(destination, resizedMove.GetProperty("host_name").GetString());
        var resizedLog = (await S("server", "actions", "web", "-o", "json")).Ok().Json().EnumerateArray().Last(a => a.GetProperty("action").GetString() == "live-migrate");
        Assert.Equal("success", resizedLog.GetProperty("result").GetString());
        report.Add($"resized live to tiny-2, then moved live: {resizedLog.GetProperty("message").GetString()}");

        // ---- maintenance: 4 VMs on one host all move live, none stops.
        (await S("server", "delete", "web", "--wait")).Ok();
        var target = "host-1";
        (await S("host", "maintenance", OtherHost(target), "--wait")).Ok();
        var vms = new List<(string Name, int Port)>();
        for (var i = 1; i <= 4; i++)
        {
            var s = (await S("server", "create", $"m{i}", "--flavor", "tiny", "--image", "tiny", "--forward", "0:80", "--wait", "-o", "json")).Ok().Json();
            Assert.Equal(target, s.GetProperty("host_name").GetString());
            vms.Add(($"m{i}", ScenarioKit.HttpPort(s)));
        }
        (await S("host", "enable", OtherHost(target))).Ok();
        var uptimeBefore = new Dictionary<string, double>();
        foreach (var (name, p) in vms)
        {
            uptimeBefore[name] = Uptime(await WaitPageAsync(p, TimeSpan.FromSeconds(120)));
        }
        var sw = Stopwatch.StartNew();
        (await S("host", "maintenance", target, "--wait")).Ok();
        report.Add($"maintenance of a host with 4 VMs: {sw.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(0, (await S("host", "show", target, "-o", "json")).Ok().Json().GetProperty("servers").GetInt32());
        Assert.Equal("maintenance", (await S("host", "show", target, "-o", "json")).Ok().Json().GetProperty("state").GetString());
        foreach (var (name, _) in vms)
        {
            var s = await ShowAsync(name);
            Assert.Equal(OtherHost(target), s.GetProperty("host_name").GetString());
            Assert.Equal("active", s.GetProperty("vm_state").GetString());
            var up = Uptime(await WaitPageAsync(ScenarioKit.HttpPort(s), TimeSpan.FromSeconds(10)));
            Assert.True(up >= uptimeBefore[name], $"{name}: uptime {up} s after maintenance, {uptimeBefore[name]} s before: it restarted");
            var log = (await S("server", "actions", name, "-o", "json")).Ok().Json().EnumerateArray().ToList();
            Assert.DoesNotContain(log, a => a.GetProperty("action").GetString() is "stop" or "start" or "reboot");
        }
        // The scheduler never places on a host in maintenance.
        var newcomer = (await S("server", "create", "late", "--flavor", "tiny", "--image", "tiny", "--wait", "-o", "json")).Ok().Json();
        Assert.Equal(OtherHost(target), newcomer.GetProperty("host_name").GetString());
        (await S("host", "enable", target)).Ok();

        if (Environment.GetEnvironmentVariable("STRATUS_MIGRATION_REPORT") is { Length: > 0 } file)
        {
            await File.WriteAllLinesAsync(file, report);
        }
        foreach (var line in report)
        {
            Console.WriteLine(line);
        }
    }

    private string AgentTcpEndpoint()
    {
        using var c = new HttpClient();
        var h = JsonDocument.Parse(c.GetStringAsync($"{Url}/v1/health").GetAwaiter().GetResult()).RootElement;
        return h.GetProperty("agent_endpoint").GetString()!;
    }

    private async Task WaitHostsConnectedAsync(int n)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        using var c = new HttpClient();
        while (true)
        {
            var h = JsonDocument.Parse(await c.GetStringAsync($"{Url}/v1/health")).RootElement;
            if (h.GetProperty("hosts_connected").GetInt32() == n)
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, $"{n} agents did not connect");
            await Task.Delay(200);
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            await Cli.RunAsync(Url, "down", "--data-dir", _data);
        }
        finally
        {
            try
            {
                Directory.Delete(_data, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
