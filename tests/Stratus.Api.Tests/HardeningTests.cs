using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Client;
using Stratus.Compute.Simulated;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>The audit chain and its verification, rate limits, security headers, TLS for the API and the agents' stream.</summary>
public sealed class HardeningTests
{
    [Fact]
    public async Task AuditLog_RecordsEveryStateChange_AndVerifyDetectsTampering()
    {
        await using var cloud = await Owned.StartAsync(new TestCloud { Hosts = 1 });
        var c = cloud.Cloud.Client;
        await c.CreateFlavorAsync(new CreateFlavorRequest("audited", 1, 128, 1, true));
        using (var anon = cloud.Cloud.NewHttp())
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anon.DeleteAsync("v1/flavors/audited")).StatusCode);
        }
        await c.DeleteFlavorAsync("audited");
        var entries = (await cloud.Get<ListDto<AuditEntryDto>>("v1/audit?limit=1000")).Items;
        var mine = entries.Where(e => e.Route.StartsWith("/v1/flavors", StringComparison.Ordinal)).ToList();
        Assert.Equal(["POST 201 admin@admin", "DELETE 401 anonymous", "DELETE 204 admin@admin"], mine.Select(e => $"{e.Method} {e.Status} {e.Actor}"));
        Assert.Equal("audited", mine[1].Target);
        Assert.Equal("127.0.0.1", mine[2].Source);
        Assert.DoesNotContain(entries, e => e.Method == "GET");

        var ok = await cloud.Get<AuditVerifyDto>("v1/audit/verify");
        Assert.True(ok.Ok, ok.Problem);
        Assert.Equal(entries.Count, ok.Entries);

        // Change one field of one entry behind the controller's back: verification names that entry.
        var victim = mine[1].Seq;
        await using (var db = new SqliteConnection($"Data Source={Path.Combine(cloud.Cloud.DataDir, "stratus.db")}"))
        {
            await db.OpenAsync();
            await using var cmd = db.CreateCommand();
            cmd.CommandText = "UPDATE audit_log SET status=204 WHERE seq=$s";
            cmd.Parameters.AddWithValue("$s", victim);
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        var bad = await cloud.Get<AuditVerifyDto>("v1/audit/verify");
        Assert.False(bad.Ok);
        Assert.Equal(victim, bad.FirstBadSeq);
        Assert.Contains("changed", bad.Problem, StringComparison.Ordinal);

        // Deleting an entry (even with its hash recomputed) breaks the chain at the next one.
        await using (var db = new SqliteConnection($"Data Source={Path.Combine(cloud.Cloud.DataDir, "stratus.db")}"))
        {
            await db.OpenAsync();
            await using var cmd = db.CreateCommand();
            cmd.CommandText = "UPDATE audit_log SET status=401 WHERE seq=$s; DELETE FROM audit_log WHERE seq=$s - 1";
            cmd.Parameters.AddWithValue("$s", victim);
            await cmd.ExecuteNonQueryAsync();
        }
        var gap = await cloud.Get<AuditVerifyDto>("v1/audit/verify");
        Assert.False(gap.Ok);
        Assert.Equal(victim - 1, gap.FirstBadSeq);
    }

    [Fact]
    public async Task RateLimit_Answers429WithRetryAfter_PerUser()
    {
        await using var cloud = await Owned.StartAsync(new TestCloud { Hosts = 1, Configure = o => { o.RateLimit = 5; o.RateBurst = 10; } });
        using var h = cloud.Cloud.NewHttp(cloud.Cloud.AdminToken);
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 30; i++)
        {
            var r = await h.GetAsync("v1/flavors");
            statuses.Add(r.StatusCode);
            limited ??= r.StatusCode == HttpStatusCode.TooManyRequests ? r : null;
        }
        Assert.True(statuses.Count(s => s == HttpStatusCode.OK) >= 10, string.Join(",", statuses));
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.NotNull(limited!.Headers.RetryAfter);
        Assert.Contains("rate_limited", await limited.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // Health checks are never limited.
        using var anon = cloud.Cloud.NewHttp();
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await anon.GetAsync("v1/health")).StatusCode);
        }
    }

    [Fact]
    public async Task EveryAnswer_CarriesSecurityHeaders()
    {
        await using var cloud = await Owned.StartAsync(new TestCloud { Hosts = 1 });
        using var anon = cloud.Cloud.NewHttp();
        foreach (var path in new[] { "v1/health", "v1/servers", "v1/nowhere" })
        {
            var r = await anon.GetAsync(path);
            Assert.Equal("nosniff", r.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.Equal("DENY", r.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("no-referrer", r.Headers.GetValues("Referrer-Policy").Single());
            Assert.Contains("default-src 'none'", r.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
            Assert.True(r.Headers.CacheControl?.NoStore);
        }
    }

    [Fact]
    public async Task Tls_ApiAndAgentStream_TrustOnlyTheGivenCertificate()
    {
        var dir = Directory.CreateTempSubdirectory("stratus-tls-").FullName;
        var (certFile, keyFile, cert) = SelfSigned(dir);
        await using var cloud = await Owned.StartAsync(new TestCloud { Hosts = 0, WaitReady = false, Configure = o => { o.TlsCert = certFile; o.TlsKey = keyFile; } });
        var url = cloud.Cloud.Http.BaseAddress!;
        Assert.Equal("https", url.Scheme);
        Assert.StartsWith("https://", cloud.Cloud.AgentUrl, StringComparison.Ordinal);

        using var trusting = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, c, _, e) => GrpcControllerClient.TrustedBy(cert, c, e) },
        }) { BaseAddress = url };
        var health = await trusting.GetAsync("v1/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("max-age=31536000", health.Headers.GetValues("Strict-Transport-Security").Single());
        // The system trust store does not know this certificate: a default client refuses it.
        using var strict = new HttpClient { BaseAddress = url };
        await Assert.ThrowsAsync<HttpRequestException>(() => strict.GetAsync("v1/health"));
        // Cleartext on the TLS port gets nowhere.
        using var plain = new HttpClient { BaseAddress = new Uri($"http://{url.Authority}/") };
        await Assert.ThrowsAnyAsync<Exception>(async () => (await plain.GetAsync("v1/health")).EnsureSuccessStatusCode());

        // An agent that trusts the certificate registers over TLS.
        trusting.DefaultRequestHeaders.Authorization = new("Bearer", cloud.Cloud.AdminToken);
        var tokenResponse = await trusting.PostAsync("v1/hosts/tokens", new StringContent("""{"host":"tls-1"}""", System.Text.Encoding.UTF8, "application/json"));
        var token = JsonDocument.Parse(await tokenResponse.Content.ReadAsStringAsync()).RootElement.GetProperty("token").GetString()!;
        using var channel = GrpcControllerClient.CreateChannel(cloud.Cloud.AgentUrl, certFile);
        var agentDir = Path.Combine(dir, "agent");
        var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = agentDir, DelayScale = 0 });
        await using var client = new GrpcControllerClient(channel, token, NullLogger.Instance);
        await using var agent = new AgentRuntime(new AgentOptions { HostName = "tls-1", StateDirectory = agentDir, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
            driver, client, NullLogger.Instance);
        client.Bind(agent);
        await agent.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (JsonDocument.Parse(await trusting.GetStringAsync("v1/health")).RootElement.GetProperty("hosts_connected").GetInt32() < 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "the agent did not connect over TLS");
            await Task.Delay(50);
        }
    }

    private static (string Cert, string Key, X509Certificate2 Certificate) SelfSigned(string dir)
    {
        using var rsa = RSA.Create(2048);
        var req = new CertificateRequest("CN=stratus-test", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var certFile = Path.Combine(dir, "cert.pem");
        var keyFile = Path.Combine(dir, "key.pem");
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        File.WriteAllText(keyFile, rsa.ExportPkcs8PrivateKeyPem());
        return (certFile, keyFile, X509CertificateLoader.LoadCertificate(cert.RawData));
    }

    /// <summary>A cloud started here and disposed with the test.</summary>
    private sealed class Owned(TestCloud cloud) : IAsyncDisposable
    {
        public TestCloud Cloud => cloud;

        public static async Task<Owned> StartAsync(TestCloud cloud)
        {
            await cloud.InitializeAsync();
            return new Owned(cloud);
        }

        public async Task<T> Get<T>(string path)
        {
            using var h = Cloud.NewHttp(Cloud.AdminToken);
            return JsonSerializer.Deserialize<T>(await h.GetStringAsync(path), WireJson.Options)!;
        }

        public async ValueTask DisposeAsync() => await cloud.DisposeAsync();
    }
}
