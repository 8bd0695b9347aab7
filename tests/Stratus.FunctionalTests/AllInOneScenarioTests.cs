using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 2's acceptance scenario with real processes: `./stratus up --detach --driver simulated
/// --hosts 3`, 20 servers created with --wait, every action, `down`, and `up` again on the same
/// data directory brings the same servers back active.
/// </summary>
public sealed class AllInOneScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("stratus-func-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunAsync(Url, args);

    [Fact]
    public async Task UpCreateActDownUp_TwentyServers_SurviveRestartActive()
    {
        (await S("up", "--detach", "--driver", "simulated", "--hosts", "3", "--data-dir", _data, "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();

        var hosts = (await S("host", "list", "-o", "json")).Ok().Json();
        Assert.Equal(3, hosts.GetArrayLength());

        // A second cloud on the same port is refused at once, before it starts anything (it used to wait for "its"
        // controller and talk to this one).
        var other = Directory.CreateTempSubdirectory("stratus-func-").FullName;
        try
        {
            var clash = await S("up", "--detach", "--driver", "simulated", "--hosts", "1", "--data-dir", other, "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(1, clash.ExitCode);
            Assert.Contains($"port {_port} on 127.0.0.1 is already in use", clash.Stderr, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(other, "stratusd.pid")));
            Assert.Equal(3, (await S("host", "list", "-o", "json")).Ok().Json().GetArrayLength());
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }

        // 21 servers, each created with --wait by its own CLI process, all at once.
        var creates = Enumerable.Range(1, 21).Select(i => S("server", "create", $"web-{i}", "--flavor", "tiny", "--image", "tiny", "--wait", "-o", "json")).ToList();
        var created = await Task.WhenAll(creates);
        foreach (var c in created)
        {
            var s = c.Ok().Json();
            Assert.Equal("active", s.GetProperty("vm_state").GetString());
            Assert.Equal(JsonValueKind.Null, s.GetProperty("task").ValueKind);
        }
        Assert.Contains("(spawning)", created[0].Stderr, StringComparison.Ordinal); // --wait showed progress

        var list = (await S("server", "list", "-o", "json")).Ok().Json();
        Assert.Equal(21, list.GetArrayLength());
        var perHost = list.EnumerateArray().GroupBy(s => s.GetProperty("host_id").GetString()).Select(g => g.Count()).ToList();
        Assert.Equal(3, perHost.Count);
        Assert.All(perHost, n => Assert.InRange(n, 6, 8)); // spread

        (await S("server", "stop", "web-1", "--wait")).Ok();
        (await S("server", "start", "web-1", "--wait")).Ok();
        (await S("server", "reboot", "web-2", "--wait")).Ok();
        (await S("server", "reboot", "web-2", "--hard", "--wait")).Ok();
        (await S("server", "pause", "web-3", "--wait")).Ok();
        (await S("server", "resume", "web-3", "--wait")).Ok();
        (await S("server", "delete", "web-21", "--wait")).Ok();
        var bad = await S("server", "start", "web-4");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Single(bad.Stderr.Trim().Split('\n'));
        Assert.Contains("illegal_state", bad.Stderr, StringComparison.Ordinal);

        string[] Log(Cli.Result r) => r.Json().EnumerateArray().Select(a => $"{a.GetProperty("action").GetString()}:{a.GetProperty("result").GetString()}").ToArray();
        Assert.Equal(["create:success", "stop:success", "start:success"], Log((await S("server", "actions", "web-1", "-o", "json")).Ok()));
        Assert.Equal(["create:success", "reboot:success", "reboot --hard:success"], Log((await S("server", "actions", "web-2", "-o", "json")).Ok()));
        Assert.Equal(["create:success", "pause:success", "resume:success"], Log((await S("server", "actions", "web-3", "-o", "json")).Ok()));
        var before = (await S("server", "list", "-o", "json")).Ok().Json().EnumerateArray()
            .ToDictionary(s => s.GetProperty("id").GetString()!, s => s.GetProperty("host_id").GetString());
        Assert.Equal(20, before.Count);

        var down = (await Cli.RunAsync(Url, TimeSpan.FromSeconds(40), "down", "--data-dir", _data)).Ok();
        Assert.Contains("stopped", down.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(0, (await S("server", "list")).ExitCode); // nothing answers any more

        (await S("up", "--detach", "--driver", "simulated", "--hosts", "3", "--data-dir", _data, "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        var after = (await S("server", "list", "-o", "json")).Ok().Json().EnumerateArray().ToList();
        Assert.Equal(before.Keys.Order(), after.Select(s => s.GetProperty("id").GetString()!).Order());
        Assert.All(after, s =>
        {
            Assert.Equal("active", s.GetProperty("vm_state").GetString());
            Assert.Equal("running", s.GetProperty("power_state").GetString());
            Assert.Equal(before[s.GetProperty("id").GetString()!], s.GetProperty("host_id").GetString());
        });
    }

    public async Task DisposeAsync()
    {
        await Cli.RunAsync(Url, TimeSpan.FromSeconds(40), "down", "--data-dir", _data);
        try
        {
            Directory.Delete(_data, true);
        }
        catch (IOException)
        {
        }
    }
}
