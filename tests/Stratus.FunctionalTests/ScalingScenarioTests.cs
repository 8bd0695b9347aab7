using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 10's scaling-group acceptance with real VMs, through `./stratus`: a group of tiny guests (min 1, max 2) with
/// a CPU policy; an HTTP load generator against the members' status pages (each request runs a CGI script in the
/// guest) drives their CPU up and the group scales out within the policy's window, the new member answering HTTP;
/// the load stops and the group scales back in (newest first), never beyond min/max; a member whose QEMU is killed by
/// hand is replaced. Prints the scale-out reaction times recorded in docs/SPECIFICATION.md.
/// </summary>
public sealed class ScalingScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("ss-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunInAsync(Url, TimeSpan.FromMinutes(3), _data, args);

    private async Task<JsonElement> GroupAsync() => (await S("scaling-group", "show", "web", "-o", "json")).Ok().Json();

    private async Task<List<JsonElement>> MembersAsync() => [.. (await S("scaling-group", "members", "web", "-o", "json")).Ok().Json().EnumerateArray()];

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, TimeSpan timeout)
        where T : class
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (await probe() is { } done)
            {
                return done;
            }
            Assert.True(sw.Elapsed < timeout, $"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            await Task.Delay(250);
        }
    }

    private static int Port(JsonElement member) =>
        member.GetProperty("forwards").EnumerateArray().First(f => f.GetProperty("guest_port").GetInt32() == 80).GetProperty("host_port").GetInt32();

    /// <summary>Active members that answer HTTP on their forward, by name.</summary>
    private async Task<Dictionary<string, int>> AnsweringAsync()
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var m in await MembersAsync())
        {
            if (m.GetProperty("vm_state").GetString() == "active" && m.GetProperty("health").GetString() != "draining" && Port(m) > 0
                && await ScenarioKit.PageAsync(Port(m)) is not null)
            {
                result[m.GetProperty("name").GetString()!] = Port(m);
            }
        }
        return result;
    }

    [Fact]
    public async Task ScalingGroup_HttpLoad_ScalesOutAndIn_KilledMemberReplaced_RealVms()
    {
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "1", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture),
            "--metrics-interval", "1", "--scaling-interval", "0.5")).Ok();
        (await S("scaling-group", "create", "web", "--flavor", "tiny", "--image", "tiny", "--min", "1", "--max", "2", "--desired", "1",
            "--port", "80", "--health-path", "/", "--health-grace", "20", "--health-timeout", "3", "--unhealthy-after", "5",
            "--scale-out-above", "60", "--scale-in-below", "25", "--window", "6", "--cooldown", "8", "--warmup", "6", "-o", "json")).Ok();
        var first = await EventuallyAsync(async () => await AnsweringAsync() is { Count: 1 } a ? a : null, "web-1 answering HTTP", TimeSpan.FromSeconds(120));
        Assert.Equal("web-1", first.Keys.Single());
        // The load starts once web-1's warmup (its boot) is over, so the reaction measured is to the load alone.
        var activeSince = (await MembersAsync())[0].GetProperty("active_since").GetDateTimeOffset();
        var warm = activeSince.AddSeconds(7) - DateTimeOffset.UtcNow;
        if (warm > TimeSpan.Zero)
        {
            await Task.Delay(warm);
        }
        Assert.DoesNotContain((await GroupAsync()).GetProperty("events").EnumerateArray(), e => e.GetProperty("kind").GetString() == "scale_out");

        // Load: four clients fetching web-1's page back to back (each request forks a CGI shell in the guest).
        using var stopLoad = new CancellationTokenSource();
        var requests = 0L;
        var targets = new List<int>(first.Values);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var loadStarted = DateTimeOffset.UtcNow;
        var load = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            while (!stopLoad.IsCancellationRequested)
            {
                int port;
                lock (targets)
                {
                    port = targets[i % targets.Count];
                }
                try
                {
                    await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"), stopLoad.Token);
                    Interlocked.Increment(ref requests);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                }
            }
        })).ToList();

        var scaleOut = await EventuallyAsync(async () => (await GroupAsync()).GetProperty("events").EnumerateArray()
            .Where(e => e.GetProperty("kind").GetString() == "scale_out")
            .Select(e => new Event(e.GetProperty("at").GetDateTimeOffset(), e.GetProperty("message").GetString()!)).FirstOrDefault(), "a scale-out", TimeSpan.FromSeconds(90));
        var decidedAt = scaleOut.At;
        var two = await EventuallyAsync(async () => await AnsweringAsync() is { Count: 2 } a ? a : null, "web-2 answering HTTP", TimeSpan.FromSeconds(120));
        var answeringAt = DateTimeOffset.UtcNow;
        Assert.Contains("web-2", two.Keys);
        lock (targets)
        {
            targets.Add(two["web-2"]); // the load spreads over both members now
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"SCALING load start → scale-out decision {(decidedAt - loadStarted).TotalSeconds:0.0} s; decision → web-2 answering HTTP {(answeringAt - decidedAt).TotalSeconds:0.0} s; " +
            $"load start → answering {(answeringAt - loadStarted).TotalSeconds:0.0} s; {scaleOut.Message}; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));

        // At max: the policy still fires under load but the group stays at 2.
        await Task.Delay(TimeSpan.FromSeconds(10));
        var atMax = await GroupAsync();
        Assert.Equal(2, atMax.GetProperty("desired").GetInt32());
        Assert.True(atMax.GetProperty("current").GetInt32() <= 2);

        // Load stops: back to min, newest first.
        await stopLoad.CancelAsync();
        await Task.WhenAll(load);
        var stoppedAt = DateTimeOffset.UtcNow;
        await EventuallyAsync(async () => await GroupAsync() is var g && g.GetProperty("desired").GetInt32() == 1 && g.GetProperty("current").GetInt32() == 1
            && g.GetProperty("draining").GetInt32() == 0 ? "in" : null, "scale-in to 1", TimeSpan.FromSeconds(120));
        var left = await MembersAsync();
        Assert.Equal("web-1", Assert.Single(left).GetProperty("name").GetString());
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"SCALING load stop → back at 1 member {(DateTimeOffset.UtcNow - stoppedAt).TotalSeconds:0.0} s; {Interlocked.Read(ref requests)} requests served"));
        var events = (await S("scaling-group", "events", "web", "-o", "json")).Ok().Json().EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Contains("scale_in", events);

        // A member killed by hand (its QEMU SIGKILLed) is replaced.
        var victim = left[0].GetProperty("id").GetString()!;
        var pids = ScenarioKit.QemuByVm([victim])[victim];
        Assert.Single(pids);
        Process.GetProcessById(pids[0]).Kill();
        var replaced = await EventuallyAsync(async () => await AnsweringAsync() is { Count: 1 } a && !a.ContainsKey("web-1") ? a : null, "a replacement answering HTTP",
            TimeSpan.FromSeconds(120));
        Console.WriteLine($"SCALING killed web-1 replaced by {replaced.Keys.Single()}");
        Assert.Contains((await S("scaling-group", "events", "web", "-o", "json")).Ok().Json().EnumerateArray(),
            e => e.GetProperty("kind").GetString() == "member_failed" && e.GetProperty("message").GetString()!.Contains("web-1", StringComparison.Ordinal));

        // The replacement's boot load is not demand: past its warmup and a window, still one scale-out in all.
        await Task.Delay(TimeSpan.FromSeconds(8));
        Assert.Single((await S("scaling-group", "events", "web", "-o", "json")).Ok().Json().EnumerateArray(), e => e.GetProperty("kind").GetString() == "scale_out");
    }

    private sealed record Event(DateTimeOffset At, string Message);

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
