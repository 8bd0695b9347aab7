using Stratus.Client;
using Stratus.Controller.Identity;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>Credentials: expiry, revocation, forgery, brute force; quotas under concurrency; secrets never stored.</summary>
public sealed class IdentityTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new()
    {
        Configure = o => o.Identity = new IdentityOptions { PasswordIterations = 1000, SessionLifetime = TimeSpan.FromSeconds(2), FirstLockout = TimeSpan.FromSeconds(1) },
    };

    public Task InitializeAsync() => _cloud.InitializeAsync();

    public Task DisposeAsync() => _cloud.DisposeAsync();

    private async Task<int> StatusAsync(string? token, string path = "v1/servers")
    {
        using var h = _cloud.NewHttp();
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            req.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
        }
        using var res = await h.SendAsync(req);
        return (int)res.StatusCode;
    }

    private async Task<string> UserAsync(string name, string project, string role = "member")
    {
        if ((await _cloud.Client.ListProjectsAsync()).All(p => p.Name != project))
        {
            await _cloud.Client.CreateProjectAsync(new CreateProjectRequest(project, null));
        }
        await _cloud.Client.CreateUserAsync(new CreateUserRequest(name, "secret-" + name, project, role));
        return (await _cloud.Client.LoginAsync(new LoginRequest(name, "secret-" + name, project))).Token;
    }

    [Fact]
    public async Task SessionToken_ExpiresAfterItsLifetime()
    {
        var token = await UserAsync("expiring", "p-exp");
        Assert.Equal(200, await StatusAsync(token));
        await Task.Delay(TimeSpan.FromSeconds(2.3));
        Assert.Equal(401, await StatusAsync(token));
    }

    [Fact]
    public async Task RevokedKey_IsRefusedAtOnce_AndLogoutRevokesTheSession()
    {
        var session = await UserAsync("revoker", "p-rev");
        using var c = StratusClient.Create(_cloud.Http.BaseAddress!, null, session);
        var key = await c.CreateKeyAsync(new CreateApiKeyRequest("ci", null));
        Assert.Equal(200, await StatusAsync(key.Token));
        await c.RevokeKeyAsync(key.Id);
        Assert.Equal(401, await StatusAsync(key.Token));
        Assert.Equal(200, await StatusAsync(session));
        await c.LogoutAsync();
        Assert.Equal(401, await StatusAsync(session));
    }

    [Fact]
    public async Task ForgedTruncatedAndMalformedTokens_AreRefused()
    {
        var good = await UserAsync("forger", "p-forge");
        Assert.Equal(200, await StatusAsync(good));
        var flipped = good[..^1] + (good[^1] == 'A' ? 'B' : 'A');
        string[] bad =
        [
            IdentityService.NewSecret(),             // well-formed, never issued
            good[..^1],                              // truncated
            good + "x",                              // extended
            flipped,                                 // one character changed
            good.ToUpperInvariant(),                 // case changed
            "stratus_" + new string('A', 22),
            "",
            "null",
            "' OR 1=1 --",
            new string('a', 8000),
        ];
        foreach (var t in bad)
        {
            Assert.Equal(401, await StatusAsync(t));
        }
        // Control characters: refused as a credential (401), or by the HTTP server before authentication (400 for NUL).
        Assert.Equal(401, await StatusAsync("stratus_" + new string('\u0001', 22)));
        Assert.Equal(400, await StatusAsync("stratus_" + new string('\u0000', 22)));
        Assert.Equal(401, await StatusAsync(null));
        // Another scheme carrying a valid secret is not a bearer credential either.
        using var h = _cloud.NewHttp();
        using var req = new HttpRequestMessage(HttpMethod.Get, "v1/servers");
        req.Headers.TryAddWithoutValidation("Authorization", "Basic " + Convert.ToBase64String("admin:admin"u8.ToArray()));
        Assert.Equal(401, (int)(await h.SendAsync(req)).StatusCode);
    }

    [Fact]
    public async Task BruteForceLogins_AreSlowedDown_EvenWithTheRightPassword()
    {
        await UserAsync("target", "p-brute");
        using var anon = StratusClient.Create(_cloud.Http.BaseAddress!);
        var statuses = new List<int>();
        for (var i = 0; i < 7; i++)
        {
            var e = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest("target", "wrong-" + i, "p-brute")));
            statuses.Add(e.Status);
        }
        Assert.Equal([401, 401, 401, 401, 401, 401, 429], statuses);
        var locked = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest("target", "secret-target", "p-brute")));
        Assert.Equal(429, locked.Status);
        Assert.Equal("too_many_attempts", locked.Code);
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        Assert.False(string.IsNullOrEmpty((await anon.LoginAsync(new LoginRequest("target", "secret-target", "p-brute"))).Token));
    }

    [Fact]
    public async Task RoleTakenAway_TokenStopsWorking()
    {
        var token = await UserAsync("leaver", "p-leave");
        Assert.Equal(200, await StatusAsync(token));
        await _cloud.Client.SetRoleAsync("leaver", new RoleRequest("p-leave", null));
        Assert.Equal(401, await StatusAsync(token));
    }

    [Fact]
    public async Task Quota_Holds_Under50ConcurrentCreatesAtTheLimit()
    {
        var token = await UserAsync("racer", "p-race");
        using var c = StratusClient.Create(_cloud.Http.BaseAddress!, null, token);
        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
        {
            try
            {
                await c.CreateServerAsync(new CreateServerRequest($"race-{i}", "tiny", "tiny", null, null, null, null));
                return "created";
            }
            catch (StratusApiException e)
            {
                return e.Code;
            }
        })));
        Assert.Equal(10, results.Count(r => r == "created"));
        Assert.Equal(40, results.Count(r => r == "quota_exceeded"));
        var q = await c.GetQuotaAsync("p-race");
        Assert.Equal(10, q.Usage.Instances);
        Assert.Equal(10, q.Limits.Instances);
        Assert.Equal(10, (await c.ListServersAsync()).Count);
        // Deleting one makes room for exactly one more.
        var first = (await c.ListServersAsync())[0];
        await c.DeleteServerAsync(first.Id);
        await _cloud.WaitAsync(first.Id, "deleted");
        await c.CreateServerAsync(new CreateServerRequest("race-again", "tiny", "tiny", null, null, null, null));
        var over = await Assert.ThrowsAsync<StratusApiException>(() => c.CreateServerAsync(new CreateServerRequest("race-over", "tiny", "tiny", null, null, null, null)));
        Assert.Equal("quota_exceeded", over.Code);
        Assert.Contains("instances 10 + 1 > 10", over.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BatchOverQuota_CreatesNothing_AndVcpuQuotaCounts()
    {
        var token = await UserAsync("batcher", "p-batch");
        await _cloud.Client.SetQuotaAsync("p-batch", new QuotasDto(null, 3, null, null, null, null));
        using var c = StratusClient.Create(_cloud.Http.BaseAddress!, null, token);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => c.CreateServerAsync(new CreateServerRequest("b", "tiny", "tiny", null, null, null, null) { Count = 4 }));
        Assert.Equal("quota_exceeded", e.Code);
        Assert.Empty(await c.ListServersAsync());
        await c.CreateServerAsync(new CreateServerRequest("b", "tiny", "tiny", null, null, null, null) { Count = 3 });
        Assert.Equal(3, (await c.ListServersAsync()).Count);
    }

    [Fact]
    public async Task SecretsAreStoredOnlyAsHashes_AndTheBootstrapFileIsPrivate()
    {
        var token = await UserAsync("hashed", "p-hash");
        using var c = StratusClient.Create(_cloud.Http.BaseAddress!, null, token);
        var key = await c.CreateKeyAsync(new CreateApiKeyRequest(null, 30));
        var dump = await _cloud.Store.DumpAsync(CancellationToken.None);
        Assert.DoesNotContain(token, dump, StringComparison.Ordinal);
        Assert.DoesNotContain(key.Token, dump, StringComparison.Ordinal);
        Assert.DoesNotContain(_cloud.AdminToken, dump, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-hashed", dump, StringComparison.Ordinal);
        Assert.Contains(IdentityService.Sha256Hex(key.Token), dump, StringComparison.Ordinal);
        Assert.Contains("pbkdf2-sha256$", dump, StringComparison.Ordinal);
        var mode = OperatingSystem.IsWindows() ? UnixFileMode.UserRead | UnixFileMode.UserWrite : File.GetUnixFileMode(Path.Combine(_cloud.DataDir, "admin-credentials.json"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Fact]
    public async Task LoginErrors_AreClear()
    {
        await UserAsync("two-homes", "p-home1");
        await _cloud.Client.CreateProjectAsync(new CreateProjectRequest("p-home2", null));
        await _cloud.Client.SetRoleAsync("two-homes", new RoleRequest("p-home2", "reader"));
        using var anon = StratusClient.Create(_cloud.Http.BaseAddress!);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest("two-homes", "secret-two-homes", null)));
        Assert.Equal("project_required", e.Code);
        var r = await anon.LoginAsync(new LoginRequest("two-homes", "secret-two-homes", "p-home2"));
        Assert.Equal("reader", r.Role);
        var none = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest("two-homes", "secret-two-homes", "admin")));
        Assert.Equal(403, none.Status);
        var missing = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest(null, null, null)));
        Assert.Equal(400, missing.Status);
        var unknown = await Assert.ThrowsAsync<StratusApiException>(() => anon.LoginAsync(new LoginRequest("nobody", "whatever1", null)));
        Assert.Equal(401, unknown.Status);
    }
}
