using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Stratus.Client;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api.Tests;

/// <summary>
/// Every route × every kind of caller, each expectation written out. Callers: anonymous; reader, member
/// and admin of project A (which owns the objects the routes name); a member of project B (foreign); a
/// reader of the admin project (operator); the cloud admin. Allowed writes get a malformed body, so they
/// answer 400 and change nothing; deletes act on a fresh object made for each call.
/// </summary>
public sealed class AuthorizationMatrixTests : IClassFixture<AuthorizationMatrixTests.World>
{
    /// <summary>Expected status per caller; <see cref="Ok"/> means "let through" (any answer but 401/403/404 and 5xx).</summary>
    public sealed record Row(string Method, string Path, string? Body, int Anon, int Reader, int Member, int PAdmin, int Foreign, int Operator, int CAdmin);

    private const int Ok = -1;

    /// <summary>Let through to the server, whose snapshot does not exist: 404 "snapshot not found" (not "server not found").</summary>
    private const int NoSnap = -2;

    /// <summary>Let through to the project, which has no budget (any more): 404 "budget not found".</summary>
    private const int NoBudget = -3;
    private const string Bad = """{"bogus":1}""";

    public static readonly IReadOnlyList<Row> Matrix =
    [
        //                                                                     anon reader member padmin foreign oper cadmin
        new("GET", "v1/health", null,                                           200, 200, 200, 200, 200, 200, 200),
        new("GET", "v1/openapi.json", null,                                     200, 200, 200, 200, 200, 200, 200),
        new("GET", "v1/auth/whoami", null,                                      401, 200, 200, 200, 200, 200, 200),
        new("GET", "v1/auth/keys", null,                                        401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/auth/keys", Bad,                                        401, 400, 400, 400, 400, 400, 400),
        new("DELETE", "v1/auth/keys/{nothing}", null,                           401, 404, 404, 404, 404, 404, 404),
        new("GET", "v1/projects", null,                                         401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/projects", Bad,                                         401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/projects/{projA}", null,                                 401, 200, 200, 200, 404, 404, 200),
        new("GET", "v1/projects/{projA}/quota", null,                           401, 200, 200, 200, 404, 404, 200),
        new("PUT", "v1/projects/{projA}/quota", Bad,                            401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/users", null,                                            401, 403, 403, 200, 403, 403, 200),
        new("POST", "v1/users", Bad,                                            401, 403, 403, 400, 403, 403, 400),
        new("GET", "v1/users/{readerA}", null,                                  401, 403, 403, 200, 403, 403, 200),
        new("PUT", "v1/users/{readerA}/roles", Bad,                             401, 403, 403, 400, 403, 403, 400),

        new("GET", "v1/flavors", null,                                          401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/flavors", Bad,                                          401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/flavors/tiny", null,                                     401, 200, 200, 200, 200, 200, 200),
        new("DELETE", "v1/flavors/{nothing}", null,                             401, 403, 403, 403, 403, 403, 404),

        new("GET", "v1/images", null,                                           401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/images", Bad,                                           401, 403, 403, 403, 403, 403, 400),
        new("POST", "v1/images/upload", Bad,                                    401, 403, 415, 415, 415, 403, 415),
        new("GET", "v1/images/tiny", null,                                      401, 200, 200, 200, 200, 200, 200),
        new("DELETE", "v1/images/tiny", null,                                   401, 403, 403, 403, 403, 403, 409),

        new("GET", "v1/servers", null,                                          401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/servers", Bad,                                          401, 403, 400, 400, 400, 403, 400),
        new("GET", "v1/servers/{srvA}", null,                                   401, 200, 200, 200, 404, 404, 200),
        new("GET", "v1/servers/srv-a", null,                                    401, 200, 200, 200, 404, 404, 200),
        new("DELETE", "v1/servers/{freshServer}", null,                         401, 403, 202, 202, 404, 403, 202),
        new("POST", "v1/servers/{srvA}/actions", Bad,                           401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/servers/{srvA}/actions", null,                           401, 200, 200, 200, 404, 404, 200),
        new("PUT", "v1/servers/{srvA}/ha", Bad,                                 401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/servers/{srvA}/placement", null,                         401, 403, 403, 403, 403, 404, 200),
        new("GET", "v1/servers/{srvA}/stats", null,                             401, 200, 200, 200, 404, 404, 200),
        new("GET", "v1/servers/{srvA}/console", null,                           401, 403, Ok, Ok, 404, 403, Ok),
        new("POST", "v1/servers/{srvA}/migrate", Bad,                           401, 403, 403, 403, 403, 403, 400),
        new("POST", "v1/servers/{srvA}/migrate/abort", null,                    401, 403, 403, 403, 403, 403, Ok),
        new("POST", "v1/servers/{srvA}/resize", Bad,                            401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/servers/{srvA}/resize/plan", null,                       401, 400, 400, 400, 404, 404, 400),
        new("POST", "v1/servers/{srvA}/resize/confirm", null,                   401, 403, 409, 409, 404, 403, 409),
        new("POST", "v1/servers/{srvA}/resize/revert", null,                    401, 403, 409, 409, 404, 403, 409),
        new("POST", "v1/servers/{srvA}/snapshots", Bad,                         401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/servers/{srvA}/snapshots", null,                         401, Ok, Ok, Ok, 404, 404, Ok),
        new("POST", "v1/servers/{srvA}/snapshots/nosnap/revert", null,          401, 403, NoSnap, NoSnap, 404, 403, NoSnap),
        new("DELETE", "v1/servers/{srvA}/snapshots/nosnap", null,               401, 403, NoSnap, NoSnap, 404, 403, NoSnap),
        new("POST", "v1/servers/{srvA}/backups", Bad,                           401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/backups", null,                                          401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/backups/{backupA}/restore", Bad,                        401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/backups/{backupA}", null,                                401, 200, 200, 200, 404, 404, 200),
        new("POST", "v1/backups/{backupA}/verify", null,                        401, 403, Ok, Ok, 404, 403, Ok),
        new("DELETE", "v1/backups/{freshBackup}", null,                         401, 403, Ok, Ok, 404, 403, Ok),
        new("GET", "v1/servers/{srvA}/backup-policy", null,                     401, 200, 200, 200, 404, 404, 200),
        new("PUT", "v1/servers/{srvA}/backup-policy", Bad,                      401, 403, 400, 400, 404, 403, 400),

        new("GET", "v1/groups", null,                                           401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/groups", Bad,                                           401, 403, 400, 400, 400, 403, 400),
        new("GET", "v1/groups/grp-a", null,                                     401, 200, 200, 200, 404, 404, 200),
        new("DELETE", "v1/groups/{freshGroup}", null,                           401, 403, 204, 204, 404, 403, 204),
        new("GET", "v1/scaling-groups", null,                                   401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/scaling-groups", Bad,                                   401, 403, 400, 400, 400, 403, 400),
        new("GET", "v1/scaling-groups/sg-a", null,                              401, 200, 200, 200, 404, 404, 200),
        new("PATCH", "v1/scaling-groups/sg-a", Bad,                             401, 403, 400, 400, 404, 403, 400),
        new("DELETE", "v1/scaling-groups/{freshScalingGroup}", null,            401, 403, 202, 202, 404, 403, 202),
        new("GET", "v1/scaling-groups/sg-a/policies", null,                     401, 200, 200, 200, 404, 404, 200),
        new("PUT", "v1/scaling-groups/sg-a/policies", Bad,                      401, 403, 400, 400, 404, 403, 400),
        new("GET", "v1/scaling-groups/sg-a/members", null,                      401, 200, 200, 200, 404, 404, 200),
        new("GET", "v1/scaling-groups/sg-a/events", null,                       401, 200, 200, 200, 404, 404, 200),
        new("GET", "v1/keypairs", null,                                         401, 200, 200, 200, 200, 200, 200),
        new("POST", "v1/keypairs", Bad,                                         401, 403, 400, 400, 400, 403, 400),
        new("GET", "v1/keypairs/kp-a", null,                                    401, 200, 200, 200, 404, 404, 200),
        new("DELETE", "v1/keypairs/{freshKeypair}", null,                       401, 403, 204, 204, 404, 403, 204),

        new("GET", "v1/hosts", null,                                            401, 403, 403, 403, 403, 200, 200),
        new("GET", "v1/hosts/host-1", null,                                     401, 403, 403, 403, 403, 200, 200),
        new("GET", "v1/hosts/host-1/stats", null,                               401, 403, 403, 403, 403, 200, 200),
        new("POST", "v1/hosts/nohost/maintenance", null,                        401, 403, 403, 403, 403, 403, 404),
        new("POST", "v1/hosts/nohost/enable", null,                             401, 403, 403, 403, 403, 403, 404),
        new("POST", "v1/hosts/tokens", Bad,                                     401, 403, 403, 403, 403, 403, 400),
        new("PUT", "v1/hosts/host-1/traits", Bad,                               401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/aggregates", null,                                       401, 403, 403, 403, 403, 200, 200),
        new("POST", "v1/aggregates", Bad,                                       401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/aggregates/noagg", null,                                 401, 403, 403, 403, 403, 404, 404),
        new("PATCH", "v1/aggregates/noagg", Bad,                                401, 403, 403, 403, 403, 403, 400),
        new("DELETE", "v1/aggregates/noagg", null,                              401, 403, 403, 403, 403, 403, 404),
        new("POST", "v1/aggregates/noagg/hosts", Bad,                           401, 403, 403, 403, 403, 403, 400),
        new("DELETE", "v1/aggregates/noagg/hosts/host-1", null,                 401, 403, 403, 403, 403, 403, 404),
        new("GET", "v1/ha", null,                                               401, 403, 403, 403, 403, 200, 200),
        new("GET", "v1/incidents", null,                                        401, 403, 403, 403, 403, 200, 200),
        new("GET", "v1/incidents/{nothing}", null,                              401, 403, 403, 403, 403, 404, 404),
        new("GET", "v1/consolidation", null,                                    401, 403, 403, 403, 403, 200, 200),
        new("POST", "v1/consolidation/pause", null,                             401, 403, 403, 403, 403, 403, 204),
        new("POST", "v1/consolidation/resume", null,                            401, 403, 403, 403, 403, 403, 204),
        new("GET", "v1/energy", null,                                           401, 403, 403, 403, 403, 200, 200),
        new("GET", "v1/invoices?project={projA}&month=2026-01", null,           401, 200, 200, 200, 400, 400, 200),
        new("GET", "v1/invoices?project=proj-a&month=2026-01", null,            401, 200, 200, 200, 400, 400, 200),
        new("GET", "v1/usage?project={projA}", null,                            401, 200, 200, 200, 400, 400, 200),
        new("GET", "v1/usage/reconcile", null,                                  401, 403, 403, 403, 403, 403, 200),
        new("POST", "v1/usage/reconcile", null,                                 401, 403, 403, 403, 403, 403, 200),
        new("GET", "v1/prices", null,                                           401, 200, 200, 200, 200, 200, 200),
        new("GET", "v1/prices/history", null,                                   401, 200, 200, 200, 200, 200, 200),
        new("PUT", "v1/prices", Bad,                                            401, 403, 403, 403, 403, 403, 400),
        new("GET", "v1/budgets?project={projA}", null,                          401, 200, 200, 200, 400, 400, 200),
        new("PUT", "v1/budgets", Bad,                                           401, 403, 403, 400, 403, 403, 400),
        new("DELETE", "v1/budgets?project={projA}", null,                       401, 403, 403, 204, 403, 403, NoBudget), // padmin deleted it
        new("GET", "v1/audit", null,                                            401, 403, 403, 403, 403, 403, 200),
        new("GET", "v1/audit/verify", null,                                     401, 403, 403, 403, 403, 403, 200),
    ];

    /// <summary>Routes the matrix does not send (they change the caller's own session or speak gRPC); tested elsewhere.</summary>
    private static readonly string[] Elsewhere = ["POST /v1/auth/login", "POST /v1/auth/logout", "POST /stratus.agent.v1.AgentChannel/Connect"];

    private readonly World _w;

    public AuthorizationMatrixTests(World w) => _w = w;

    [Fact]
    public void EveryRoute_HasAPolicy_AndTheMatrixCoversEveryPolicy()
    {
        var routes = _w.Cloud.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => AccessPolicy.KeyOf(e, m)!))
            .ToHashSet();
        var unguarded = routes.Where(r => !AccessPolicy.Routes.ContainsKey(r)).ToList();
        Assert.True(unguarded.Count == 0, "routes without a policy: " + string.Join(", ", unguarded));
        var stale = AccessPolicy.Routes.Keys.Where(k => !routes.Contains(k)).ToList();
        Assert.True(stale.Count == 0, "policies without a route: " + string.Join(", ", stale));
        var covered = Matrix.Select(r => $"{r.Method} /{Template(r.Path.Split('?')[0])}").Concat(Elsewhere).ToHashSet();
        var untested = AccessPolicy.Routes.Keys.Where(k => !covered.Contains(k)).ToList();
        Assert.True(untested.Count == 0, "policies the matrix does not exercise: " + string.Join(", ", untested));
    }

    /// <summary>The route template a matrix path exercises (its concrete references put back as parameters).</summary>
    private static string Template(string path)
    {
        var parts = path.Split('/');
        string[] named = ["servers", "groups", "scaling-groups", "keypairs", "flavors", "images", "projects", "users", "hosts", "aggregates", "backups", "incidents"];
        for (var i = 1; i < parts.Length; i++)
        {
            var prev = parts[i - 1];
            if (prev == "hosts" && i > 2 && parts[i - 2] is not "v1")
            {
                parts[i] = "{host}";
            }
            else if (named.Contains(prev) && parts[i] is not ("upload" or "tokens"))
            {
                parts[i] = prev == "incidents" ? "{id}" : "{reference}";
            }
            else if (prev == "keys")
            {
                parts[i] = "{id}";
            }
            else if (prev == "snapshots")
            {
                parts[i] = "{name}";
            }
        }
        return string.Join('/', parts);
    }

    [Fact]
    public async Task EveryRoute_EveryCaller_AnswersAsWrittenOut()
    {
        var failures = new List<string>();
        var cases = 0;
        foreach (var row in Matrix)
        {
            foreach (var (caller, expected) in _w.Callers.Zip(new[] { row.Anon, row.Reader, row.Member, row.PAdmin, row.Foreign, row.Operator, row.CAdmin }))
            {
                var path = await _w.ResolveAsync(row.Path);
                var before = row.Method == "GET" ? null : await _w.Store.DumpAsync(CancellationToken.None);
                var (status, body) = await _w.SendAsync(caller.Token, row.Method, path, row.Body);
                cases++;
                if (row.Path == "v1/servers/{freshServer}" && status == 202)
                {
                    await _w.Cloud.WaitAsync(path.Split('/')[^1], "deleted");
                }
                if (row.Path == "v1/scaling-groups/{freshScalingGroup}" && status == 202)
                {
                    await _w.WaitScalingGroupGoneAsync(path.Split('/')[^1]); // the loop removes it: settled before the next case compares the store
                }
                var good = expected switch
                {
                    Ok => status is not (401 or 403 or 404) and < 500,
                    NoSnap => status == 404 && body.Contains("snapshot not found", StringComparison.Ordinal),
                    NoBudget => status == 404 && body.Contains("budget not found", StringComparison.Ordinal),
                    _ => status == expected,
                };
                if (!good)
                {
                    failures.Add($"{row.Method} {row.Path} as {caller.Name}: expected {(expected == Ok ? "let through" : expected)}, got {status} {body[..Math.Min(200, body.Length)]}");
                }
                if (status is 401 or 403 or 404 && before is not null && await _w.Store.DumpAsync(CancellationToken.None) != before)
                {
                    failures.Add($"{row.Method} {row.Path} as {caller.Name}: refused with {status} but the store changed");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases} cases wrong:\n" + string.Join('\n', failures));
        Assert.True(cases >= Matrix.Count * 7);
    }

    [Fact]
    public async Task Lists_ShowNoOtherProjectsObjects()
    {
        var foreign = _w.Callers.Single(c => c.Name == "foreign");
        var secrets = new[] { "srv-a", "kp-a", "grp-a", "sg-a", _w.ServerA, _w.BackupA, _w.ProjectA, "reader-a", "member-a" };
        foreach (var path in new[] { "v1/servers", "v1/keypairs", "v1/groups", "v1/scaling-groups", "v1/images", "v1/backups", "v1/projects", "v1/auth/keys", "v1/servers?name=srv-a" })
        {
            var (status, body) = await _w.SendAsync(foreign.Token, "GET", path, null);
            Assert.Equal(200, status);
            foreach (var s in secrets)
            {
                Assert.False(body.Contains(s, StringComparison.Ordinal), $"GET {path} as a member of project B shows '{s}' of project A: {body}");
            }
        }
        // The owner does see them: the check above is not vacuous.
        var member = _w.Callers.Single(c => c.Name == "member");
        Assert.Contains("srv-a", (await _w.SendAsync(member.Token, "GET", "v1/servers", null)).Body, StringComparison.Ordinal);
        Assert.Contains("kp-a", (await _w.SendAsync(member.Token, "GET", "v1/keypairs", null)).Body, StringComparison.Ordinal);
        Assert.Contains(_w.BackupA, (await _w.SendAsync(member.Token, "GET", "v1/backups", null)).Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SameServerName_InTwoProjects_EachSeesItsOwn()
    {
        var b = _w.Callers.Single(c => c.Name == "foreign");
        var (status, body) = await _w.SendAsync(b.Token, "POST", "v1/servers", """{"name":"srv-a","flavor":"tiny","image":"tiny"}""");
        Assert.Equal(202, status);
        var idB = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        Assert.NotEqual(_w.ServerA, idB);
        Assert.Contains(idB, (await _w.SendAsync(b.Token, "GET", "v1/servers/srv-a", null)).Body, StringComparison.Ordinal);
        var member = _w.Callers.Single(c => c.Name == "member");
        Assert.Contains(_w.ServerA, (await _w.SendAsync(member.Token, "GET", "v1/servers/srv-a", null)).Body, StringComparison.Ordinal);
        Assert.Equal(404, (await _w.SendAsync(member.Token, "GET", $"v1/servers/{idB}", null)).Status);
        Assert.Equal(202, (await _w.SendAsync(b.Token, "DELETE", $"v1/servers/{idB}", null)).Status);
        await _w.Cloud.WaitAsync(idB, "deleted"); // settled: the matrix compares the store around each refusal
    }

    public sealed record CallerInfo(string Name, string? Token);

    /// <summary>Two projects, their users and A's objects, in one in-process cloud shared by the tests above.</summary>
    public sealed class World : IAsyncLifetime
    {
        public TestCloud Cloud { get; } = new() { Configure = o => o.Identity = new Controller.Identity.IdentityOptions { PasswordIterations = 1000 } };

        public IStateStore Store => Cloud.Store;

        public List<CallerInfo> Callers { get; } = [];

        public string ProjectA { get; private set; } = "";

        public string ServerA { get; private set; } = "";

        public string BackupA { get; private set; } = "";

        private string _readerA = "";
        private int _fresh;
        private string _memberToken = "";

        private const string Pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJX9baGEfNikbGHnStwiWauljzPbfr0osdn3AI/h9W6N test";

        public async Task InitializeAsync()
        {
            await Cloud.InitializeAsync();
            var admin = Cloud.Client;
            var a = await admin.CreateProjectAsync(new CreateProjectRequest("proj-a", null));
            await admin.CreateProjectAsync(new CreateProjectRequest("proj-b", null));
            ProjectA = a.Id;
            async Task<string> UserAsync(string name, string project, string role)
            {
                var u = await admin.CreateUserAsync(new CreateUserRequest(name, "password-" + name, project, role));
                if (name == "reader-a")
                {
                    _readerA = u.Id;
                }
                return (await admin.LoginAsync(new LoginRequest(name, "password-" + name, project))).Token;
            }
            Callers.Add(new("anonymous", null));
            Callers.Add(new("reader", await UserAsync("reader-a", "proj-a", "reader")));
            Callers.Add(new("member", _memberToken = await UserAsync("member-a", "proj-a", "member")));
            Callers.Add(new("padmin", await UserAsync("admin-a", "proj-a", "admin")));
            Callers.Add(new("foreign", await UserAsync("member-b", "proj-b", "member")));
            Callers.Add(new("operator", await UserAsync("oper", "admin", "reader")));
            Callers.Add(new("cadmin", Cloud.AdminToken));

            using var m = StratusClient.Create(Cloud.Http.BaseAddress!, null, _memberToken);
            var s = await m.CreateServerAsync(new CreateServerRequest("srv-a", "tiny", "tiny", null, null, null, null));
            ServerA = s.Id;
            await m.ImportKeypairAsync(new ImportKeypairRequest("kp-a", Pub));
            await m.CreateGroupAsync(new CreateGroupRequest("grp-a", "anti-affinity", null));
            await m.CreateScalingGroupAsync(new CreateScalingGroupRequest("sg-a", "tiny", "tiny", 0, 2, 0)); // no members: the loop leaves it alone
            var inst = (await Store.GetInstanceAsync(new InstanceId(Guid.Parse(ServerA)), CancellationToken.None))!;
            var backup = new BackupRecord(Guid.NewGuid(), inst.Id, inst.Name, inst.FlavorId, inst.ImageId, "full", null, "available",
                Path.Combine(Cloud.DataDir, "nowhere"), 0, null, "{}", null, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);
            await Store.UpsertBackupAsync(backup, CancellationToken.None);
            BackupA = backup.Id.ToString("D");
            using (var budget = Cloud.NewHttp(Cloud.AdminToken))
            {
                var put = await budget.PutAsync("v1/budgets", new StringContent($$"""{"project":"{{ProjectA}}","amount":100}""", Encoding.UTF8, "application/json"));
                Assert.Equal(System.Net.HttpStatusCode.OK, put.StatusCode);
            }
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while ((await m.GetServerAsync(ServerA)).VmState != "active")
            {
                Assert.True(DateTime.UtcNow < deadline, "srv-a did not become active");
                await Task.Delay(20);
            }
        }

        /// <summary>Replaces the placeholders of a matrix path; fresh objects are made (in project A) for each call.</summary>
        public async Task<string> ResolveAsync(string path)
        {
            using var m = StratusClient.Create(Cloud.Http.BaseAddress!, null, _memberToken);
            var n = Interlocked.Increment(ref _fresh);
            if (path.Contains("{freshServer}", StringComparison.Ordinal))
            {
                var fresh = await m.CreateServerAsync(new CreateServerRequest($"fresh-{n}", "tiny", "tiny", null, null, null, null));
                await Cloud.WaitAsync(fresh.Id, "active"); // settled, so only the request under test can change the store
                path = path.Replace("{freshServer}", fresh.Id, StringComparison.Ordinal);
            }
            if (path.Contains("{freshGroup}", StringComparison.Ordinal))
            {
                path = path.Replace("{freshGroup}", (await m.CreateGroupAsync(new CreateGroupRequest($"fresh-g{n}", "affinity", null))).Id, StringComparison.Ordinal);
            }
            if (path.Contains("{freshScalingGroup}", StringComparison.Ordinal))
            {
                path = path.Replace("{freshScalingGroup}", (await m.CreateScalingGroupAsync(new CreateScalingGroupRequest($"fresh-sg{n}", "tiny", "tiny", 0, 1, 0))).Id, StringComparison.Ordinal);
            }
            if (path.Contains("{freshKeypair}", StringComparison.Ordinal))
            {
                path = path.Replace("{freshKeypair}", (await m.ImportKeypairAsync(new ImportKeypairRequest($"fresh-k{n}", Pub))).Id, StringComparison.Ordinal);
            }
            if (path.Contains("{freshBackup}", StringComparison.Ordinal))
            {
                var inst = (await Store.GetInstanceAsync(new InstanceId(Guid.Parse(ServerA)), CancellationToken.None))!;
                var b = new BackupRecord(Guid.NewGuid(), inst.Id, inst.Name, inst.FlavorId, inst.ImageId, "full", null, "available",
                    Path.Combine(Cloud.DataDir, "nowhere-" + n), 0, null, "{}", null, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);
                await Store.UpsertBackupAsync(b, CancellationToken.None);
                path = path.Replace("{freshBackup}", b.Id.ToString("D"), StringComparison.Ordinal);
            }
            return path.Replace("{srvA}", ServerA, StringComparison.Ordinal).Replace("{projA}", ProjectA, StringComparison.Ordinal)
                .Replace("{readerA}", _readerA, StringComparison.Ordinal).Replace("{backupA}", BackupA, StringComparison.Ordinal)
                .Replace("{nothing}", Guid.NewGuid().ToString("D"), StringComparison.Ordinal);
        }

        public async Task WaitScalingGroupGoneAsync(string id)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (await Store.GetScalingGroupAsync(Guid.Parse(id), CancellationToken.None) is not null)
            {
                Assert.True(DateTime.UtcNow < deadline, $"scaling group {id} was not removed");
                await Task.Delay(20);
            }
        }

        public async Task<(int Status, string Body)> SendAsync(string? token, string method, string path, string? body)
        {
            using var h = Cloud.NewHttp(token);
            using var req = new HttpRequestMessage(new HttpMethod(method), path);
            if (body is not null)
            {
                req.Content = new StringContent(body, Encoding.UTF8);
                req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }
            using var res = await h.SendAsync(req);
            return ((int)res.StatusCode, await res.Content.ReadAsStringAsync());
        }

        public Task DisposeAsync() => Cloud.DisposeAsync();
    }
}
