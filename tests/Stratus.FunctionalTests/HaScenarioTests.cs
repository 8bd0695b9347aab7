using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 7's failure scenarios with real processes and real VMs (`./stratus up --hosts 3`, qemu driver,
/// shared pool): a host failure (its agent and every QEMU it runs SIGKILLed) with 3 HA VMs, which run
/// again elsewhere exactly once; an agent crash alone (its QEMUs live on: nothing restarted, then
/// re-adopted); an agent cut off from the controller (its HA VMs fence before they start elsewhere).
/// A watcher samples the process table every 50 ms throughout: no VM ever has two QEMU processes.
/// </summary>
[Collection("ha-alone")]
public sealed class HaScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sha-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunInAsync(Url, TimeSpan.FromMinutes(5), _data, args);

    private async Task<JsonElement> ShowAsync(string name) => (await S("server", "show", name, "-o", "json")).Ok().Json();

    private static Dictionary<string, List<int>> QemuByVm(IEnumerable<string> ids) => ScenarioKit.QemuByVm(ids);

    private int AgentPid(string host) => int.Parse(File.ReadAllText(Path.Combine(_data, "agents", host, "agent.pid")).Trim(), CultureInfo.InvariantCulture);

    private async Task WaitAsync(Func<Task<bool>> done, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!await done())
        {
            Assert.True(sw.Elapsed < timeout, $"{what} did not happen within {timeout.TotalSeconds:0} s");
            await Task.Delay(200);
        }
    }

    private async Task<Dictionary<string, JsonElement>> ServersAsync(IEnumerable<string> names)
    {
        var all = (await S("server", "list", "-o", "json")).Ok().Json().EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        return names.ToDictionary(n => n, n => all[n]);
    }

    [Fact]
    public async Task HostFailure_AgentCrash_CutOff_NeverTwice()
    {
        var report = new List<string>();
        var figures = new Dictionary<string, object>();
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "3", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        (await S("host", "maintenance", "host-2")).Ok();
        (await S("host", "maintenance", "host-3")).Ok();
        var names = new[] { "ha1", "ha2", "ha3" };
        var ids = new Dictionary<string, string>();
        foreach (var (n, i) in names.Select((n, i) => (n, i)))
        {
            var s = (await S("server", "create", n, "--flavor", "tiny", "--image", "tiny", "--ha", "--ha-priority", (10 * i).ToString(CultureInfo.InvariantCulture),
                "--forward", "0:80", "--wait", "-o", "json")).Ok().Json();
            Assert.Equal("host-1", s.GetProperty("host_name").GetString());
            Assert.True(s.GetProperty("ha").GetBoolean());
            ids[n] = s.GetProperty("id").GetString()!;
        }
        (await S("host", "enable", "host-2")).Ok();
        (await S("host", "enable", "host-3")).Ok();
        foreach (var n in names)
        {
            await WaitAsync(async () => await ScenarioKit.PageAsync(ScenarioKit.HttpPort(await ShowAsync(n))) is not null, TimeSpan.FromSeconds(120), $"{n} answering");
        }

        // The watcher: at no instant two QEMU processes for one VM.
        var worst = new ConcurrentDictionary<string, int>();
        using var stopWatch = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            while (!stopWatch.IsCancellationRequested)
            {
                foreach (var (id, pids) in QemuByVm(ids.Values))
                {
                    worst.AddOrUpdate(id, pids.Count, (_, w) => Math.Max(w, pids.Count));
                }
                await Task.Delay(50);
            }
        });

        // ---- 1. host failure: host-1's agent and every QEMU it runs are SIGKILLed together.
        var victims = QemuByVm(ids.Values).SelectMany(kv => kv.Value).Append(AgentPid("host-1")).ToList();
        var clock = Stopwatch.StartNew();
        foreach (var pid in victims)
        {
            Process.GetProcessById(pid).Kill();
        }
        await WaitAsync(async () => (await ServersAsync(names)).Values.All(s =>
            s.GetProperty("host_name").GetString() != "host-1" && s.GetProperty("task").ValueKind == JsonValueKind.Null && s.GetProperty("vm_state").GetString() == "active"),
            TimeSpan.FromSeconds(90), "recovery of 3 HA servers");
        var recovered = clock.Elapsed;
        foreach (var n in names)
        {
            var s = await ShowAsync(n);
            await WaitAsync(async () => await ScenarioKit.PageAsync(ScenarioKit.HttpPort(s)) is not null, TimeSpan.FromSeconds(90), $"{n} answering after recovery");
        }
        var answering = clock.Elapsed;
        Assert.All(QemuByVm(ids.Values), kv => Assert.Single(kv.Value));
        var incident = (await S("incident", "list", "-o", "json")).Ok().Json().EnumerateArray().First();
        var timeline = incident.GetProperty("timeline").EnumerateArray().ToList();
        Assert.Contains(timeline, e => e.GetProperty("kind").GetString() == "detected");
        var fenced = timeline.First(e => e.GetProperty("kind").GetString() == "fenced");
        Assert.Equal(3, timeline.Count(e => e.GetProperty("kind").GetString() == "restarted"));
        var detectedAt = timeline[0].GetProperty("at").GetDateTimeOffset();
        figures["host_failure_declared_after_suspicion_s"] = Math.Round((fenced.GetProperty("at").GetDateTimeOffset() - detectedAt).TotalSeconds, 1);
        figures["host_failure_all_active_s"] = Math.Round(recovered.TotalSeconds, 1);
        figures["host_failure_all_answering_s"] = Math.Round(answering.TotalSeconds, 1);
        figures["recovered_vm_after_suspicion_s"] = timeline.Where(e => e.GetProperty("kind").GetString() == "restarted")
            .Select(e => Math.Round((e.GetProperty("at").GetDateTimeOffset() - detectedAt).TotalSeconds, 1)).ToList();
        report.Add($"host failure, 3 HA VMs: all active elsewhere {recovered.TotalSeconds:0.0} s after the SIGKILL, all answering HTTP after {answering.TotalSeconds:0.0} s; " +
            $"declared failed {(fenced.GetProperty("at").GetDateTimeOffset() - detectedAt).TotalSeconds:0.0} s after suspicion ({fenced.GetProperty("message").GetString()})");

        // ---- 2. an agent crash alone: its QEMUs keep running, nothing restarts elsewhere, the new agent re-adopts them.
        var placement = await ServersAsync(names);
        var crashHost = placement.Values.GroupBy(s => s.GetProperty("host_name").GetString()!).OrderByDescending(g => g.Count()).First().Key;
        var onCrashHost = placement.Where(kv => kv.Value.GetProperty("host_name").GetString() == crashHost).Select(kv => kv.Key).ToList();
        var pidsBefore = QemuByVm(onCrashHost.Select(n => ids[n])).ToDictionary(kv => kv.Key, kv => Assert.Single(kv.Value));
        Process.GetProcessById(AgentPid(crashHost)).Kill();
        await Task.Delay(TimeSpan.FromSeconds(18)); // well past suspicion (5 s) and the storage witness (8 s)
        placement = await ServersAsync(names);
        foreach (var n in onCrashHost)
        {
            Assert.Equal(crashHost, placement[n].GetProperty("host_name").GetString());
            Assert.Equal(pidsBefore[ids[n]], Assert.Single(QemuByVm([ids[n]])[ids[n]]));
            Assert.NotNull(await ScenarioKit.PageAsync(ScenarioKit.HttpPort(placement[n])));
        }
        using var proxy = new CuttableProxy(JsonDocument.Parse(await Http.GetStringAsync($"{Url}/v1/health")).RootElement.GetProperty("agent_endpoint").GetString()!);
        await ScenarioKit.StartAgentAsync(_data, crashHost, $"http://127.0.0.1:{proxy.Port}");
        await WaitAsync(async () => (await ServersAsync(onCrashHost)).Values.All(s => s.GetProperty("vm_state").GetString() == "active")
            && JsonDocument.Parse(await Http.GetStringAsync($"{Url}/v1/health")).RootElement.GetProperty("hosts_connected").GetInt32() == 2,
            TimeSpan.FromSeconds(60), "re-adoption after the agent restart");
        foreach (var n in onCrashHost)
        {
            Assert.Equal(pidsBefore[ids[n]], Assert.Single(QemuByVm([ids[n]])[ids[n]]));
        }
        report.Add($"agent crash alone on {crashHost} ({onCrashHost.Count} HA VM(s)): nothing restarted elsewhere in 18 s, same QEMU pids re-adopted");

        // ---- 3. the same agent cut off from the controller while it keeps running: its HA VMs fence first.
        clock.Restart();
        proxy.Block();
        var other = crashHost == "host-2" ? "host-3" : "host-2";
        await WaitAsync(async () => (await ServersAsync(onCrashHost)).Values.All(s =>
            s.GetProperty("host_name").GetString() == other && s.GetProperty("task").ValueKind == JsonValueKind.Null && s.GetProperty("vm_state").GetString() == "active"),
            TimeSpan.FromSeconds(90), "recovery of the cut-off host's HA servers");
        var cutRecovered = clock.Elapsed;
        figures["cut_off_recovered_s"] = Math.Round(cutRecovered.TotalSeconds, 1);
        figures["agent_crash_vms_kept"] = onCrashHost.Count;
        Assert.True(File.Exists(Path.Combine(_data, "shared", ".ha", crashHost + ".fenced")), "the cut-off agent wrote no fence record");
        foreach (var n in onCrashHost)
        {
            var s = await ShowAsync(n);
            await WaitAsync(async () => await ScenarioKit.PageAsync(ScenarioKit.HttpPort(s)) is not null, TimeSpan.FromSeconds(90), $"{n} answering after the cut");
        }
        proxy.Unblock();
        await Task.Delay(TimeSpan.FromSeconds(8)); // the agent reconnects with a stale epoch and releases what it no longer owns
        await stopWatch.CancelAsync();
        await watcher;
        var final = QemuByVm(ids.Values);
        figures["vms_lost"] = final.Count(kv => kv.Value.Count == 0);
        figures["vms_run_twice"] = worst.Count(kv => kv.Value > 1);
        if (Environment.GetEnvironmentVariable("STRATUS_HA_FIGURES") is { Length: > 0 } figuresFile)
        {
            await File.AppendAllTextAsync(figuresFile, JsonSerializer.Serialize(figures) + "\n");
        }
        Assert.All(final, kv => Assert.Single(kv.Value));
        Assert.All(worst, kv => Assert.True(kv.Value <= 1, $"VM {kv.Key} had {kv.Value} QEMU processes at one instant"));
        report.Add($"agent cut off on {crashHost}: fenced, its HA VMs active on {other} {cutRecovered.TotalSeconds:0.0} s after the cut; never two QEMUs for one VM (watcher, 50 ms)");

        if (Environment.GetEnvironmentVariable("STRATUS_HA_REPORT") is { Length: > 0 } file)
        {
            await File.WriteAllLinesAsync(file, report);
        }
        foreach (var line in report)
        {
            Console.WriteLine(line);
        }
    }

    public Task DisposeAsync() => ScenarioKit.TearDownAsync(Url, _data, "ha-logs");
}

/// <summary>The HA scenario times leases and heartbeats in seconds: it runs alone, not beside other real-VM scenarios on 2 cores.</summary>
[CollectionDefinition("ha-alone", DisableParallelization = true)]
public sealed class HaAloneCollection;
