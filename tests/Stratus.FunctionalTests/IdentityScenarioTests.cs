using System.Globalization;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 9 with real processes: `up` bootstraps the admin and records its key for the URL (the CLI works with no
/// credential given), a project and a user are made, `login` keeps the user's token, the user's servers live in
/// their project and count against its quota, other projects' servers are "not found", and the audit chain verifies.
/// </summary>
public sealed class IdentityScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("stratus-id-").FullName;
    private readonly string _config = Directory.CreateTempSubdirectory("stratus-id-cfg-").FullName;
    private readonly string _aliceConfig = Directory.CreateTempSubdirectory("stratus-id-alice-").FullName;
    private readonly int _port = Cli.FreePort();

    private string Url => $"http://127.0.0.1:{_port}";

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>As the operator: the configuration directory `up` records the admin key in.</summary>
    private Task<Cli.Result> Admin(params string[] args) =>
        Cli.RunWithAsync(Url, TimeSpan.FromMinutes(2), null, null, new Dictionary<string, string> { ["STRATUS_CONFIG_DIR"] = _config }, args);

    /// <summary>As alice, from her own configuration directory (no admin key there).</summary>
    private Task<Cli.Result> Alice(string? stdin, params string[] args) =>
        Cli.RunWithAsync(Url, TimeSpan.FromMinutes(2), null, stdin, new Dictionary<string, string> { ["STRATUS_CONFIG_DIR"] = _aliceConfig }, args);

    [Fact]
    public async Task BootstrapLoginQuotaIsolationAudit_FromTheCli()
    {
        (await Admin("up", "--detach", "--driver", "simulated", "--hosts", "1", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        Assert.True(File.Exists(Path.Combine(_config, "credentials.json")));
        Assert.True(OperatingSystem.IsWindows() || File.GetUnixFileMode(Path.Combine(_data, "admin-credentials.json")) == (UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.Contains("cloud admin", (await Admin("whoami")).Ok().Stdout, StringComparison.Ordinal);
        (await Admin("server", "create", "admins-own", "--flavor", "tiny", "--image", "tiny", "--wait")).Ok();

        (await Admin("project", "create", "team-a", "--instances", "2")).Ok();
        (await Alice("correct horse battery\n", "user", "create", "alice", "--project", "team-a", "--role", "member", "--password-stdin", "--token",
            Stratus.Client.Credentials.ReadBootstrapKey(_data)!)).Ok();

        // Without a credential alice is refused; with a wrong password she is refused; then she logs in.
        var anon = await Alice(null, "server", "list");
        Assert.NotEqual(0, anon.ExitCode);
        Assert.Contains("HTTP 401", anon.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, (await Alice("wrong\n", "login", "--user", "alice", "--password-stdin")).ExitCode);
        Assert.Contains("member in project team-a", (await Alice("correct horse battery\n", "login", "--user", "alice", "--password-stdin")).Ok().Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_aliceConfig, "tokens.json")));

        (await Alice(null, "server", "create", "a1", "--flavor", "tiny", "--image", "tiny", "--wait")).Ok();
        (await Alice(null, "server", "create", "a2", "--flavor", "tiny", "--image", "tiny")).Ok();
        var over = await Alice(null, "server", "create", "a3", "--flavor", "tiny", "--image", "tiny");
        Assert.NotEqual(0, over.ExitCode);
        Assert.Contains("quota_exceeded", over.Stderr, StringComparison.Ordinal);
        Assert.Contains("instances", (await Alice(null, "quota", "show")).Ok().Stdout, StringComparison.Ordinal);

        var mine = (await Alice(null, "server", "list", "-o", "json")).Ok().Json();
        Assert.Equal(["a1", "a2"], mine.EnumerateArray().Select(s => s.GetProperty("name").GetString()).Order());
        var foreign = await Alice(null, "server", "show", "admins-own");
        Assert.Contains("HTTP 404", foreign.Stderr, StringComparison.Ordinal);
        var hosts = await Alice(null, "host", "list");
        Assert.Contains("HTTP 403", hosts.Stderr, StringComparison.Ordinal);

        // The admin sees everything; the audit log has alice's refused and accepted requests and verifies.
        var all = (await Admin("server", "list", "-o", "json")).Ok().Json();
        Assert.Equal(3, all.GetArrayLength());
        var audit = (await Admin("audit", "list", "--limit", "1000", "-o", "json")).Ok().Json();
        Assert.Contains(audit.EnumerateArray(), e => e.GetProperty("actor").GetString() == "alice@team-a" && e.GetProperty("status").GetInt32() == 409);
        Assert.Contains("intact", (await Admin("audit", "verify")).Ok().Stdout, StringComparison.Ordinal);

        (await Alice(null, "logout")).Ok();
        Assert.Contains("HTTP 401", (await Alice(null, "server", "list")).Stderr, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        await Admin("down", "--data-dir", _data);
        foreach (var d in new[] { _data, _config, _aliceConfig })
        {
            try
            {
                Directory.Delete(d, true);
            }
            catch (IOException)
            {
            }
        }
    }
}
