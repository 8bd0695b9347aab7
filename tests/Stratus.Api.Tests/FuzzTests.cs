using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Stratus.Core.Wire;
using Xunit.Abstractions;

namespace Stratus.Api.Tests;

/// <summary>
/// 10,000 generated malformed, oversized or hostile requests against every route (wrong types, huge numbers, deep
/// nesting, unicode tricks, path traversal and SQL fragments in names and references, bad content types, forged
/// credentials): none may answer 5xx, the controller keeps serving, and every refused request leaves the store as it was.
/// The generator is seeded, so a failure names a case that can be replayed.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 2, Configure = o => o.Identity = new Controller.Identity.IdentityOptions { PasswordIterations = 1000 } };

    public Task InitializeAsync() => _cloud.InitializeAsync();

    public Task DisposeAsync() => _cloud.DisposeAsync();

    private static int Cases => int.TryParse(Environment.GetEnvironmentVariable("STRATUS_FUZZ_CASES"), out var n) ? n : 10_000;

    private static readonly string[] Hostile =
    [
        "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2f", "/etc/shadow", "C:\\Windows\\system32", "....//....//",
        "' OR '1'='1", "'; DROP TABLE instances; --", "1; DELETE FROM users", "\" OR \"\"=\"", "admin'--", "%00", "\0",
        "\u202eevil", "\u200b", "ｓｅｒｖｅｒ", "café", "e\u0301", "😀😀😀", "\ud800", "null", "undefined", "NaN", "-1", "0", "1e309",
        "99999999999999999999999", "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-000000000000", "{}", "[]", "<script>alert(1)</script>",
        "${jndi:ldap://x}", "{{7*7}}", "%s%s%s%n", "a b", "tiny", "host-1", "admin", "srv", new string('x', 300), new string('é', 70),
    ];

    private static readonly string[] Fields =
    [
        "name", "flavor", "image", "user_data", "key_name", "zone", "forwards", "count", "all_or_nothing", "group", "traits", "storage_pool", "ha", "ha_priority",
        "vcpus", "ram_mib", "disk_gib", "is_public", "path", "disk_format", "action", "type", "public_key", "policy", "max_per_host", "host", "live", "user", "password",
        "project", "role", "quotas", "instances", "amount", "warn_percent", "block", "keep", "with_memory", "expires_in_days", "metadata", "currency", "vcpu_hour",
    ];

    [Fact]
    public async Task TenThousandHostileRequests_NoServerError_StoreUnchangedWhenRefused()
    {
        // Something to aim at: a server, a keypair, a group, a project with a member.
        var c = _cloud.Client;
        var srv = await c.CreateServerAsync(new CreateServerRequest("srv", "tiny", "tiny", null, null, null, null));
        await _cloud.WaitAsync(srv.Id, "active");
        await c.CreateProjectAsync(new CreateProjectRequest("fuzz-p", null));
        await c.CreateUserAsync(new CreateUserRequest("fuzz-u", "fuzz-password", "fuzz-p", "member"));
        var member = (await c.LoginAsync(new LoginRequest("fuzz-u", "fuzz-password", "fuzz-p"))).Token;
        // Logout ends the fuzzer's own session on purpose (tested in IdentityTests); the agents' stream is gRPC.
        var routes = AccessPolicy.Routes.Keys.Where(k => !k.Contains("AgentChannel", StringComparison.Ordinal) && k != "POST /v1/auth/logout").ToArray();
        var rng = new Random(20261126);
        var refs = new[] { srv.Id, "srv", "tiny", "host-1", "fuzz-p", "fuzz-u", Guid.NewGuid().ToString() };
        var baseline = await _cloud.Store.DumpAsync(CancellationToken.None);
        var counts = new Dictionary<int, int>();
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Cases && failures.Count < 20; i++)
        {
            var route = routes[rng.Next(routes.Length)];
            var method = rng.Next(10) == 0 ? Pick(rng, ["GET", "POST", "PUT", "PATCH", "DELETE"]) : route.Split(' ')[0];
            var path = Fill(rng, route.Split(' ')[1], refs) + Query(rng);
            var (body, type) = Body(rng);
            var token = rng.Next(20) switch
            {
                0 => null,
                1 => "stratus_" + Convert.ToBase64String(Encoding.UTF8.GetBytes(Pick(rng, Hostile))),
                2 or 3 or 4 => member,
                _ => _cloud.AdminToken,
            };
            using var req = new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/'));
            if (token is not null)
            {
                req.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
            }
            if (body is not null)
            {
                req.Content = new ByteArrayContent(body);
                if (type is not null)
                {
                    req.Content.Headers.TryAddWithoutValidation("Content-Type", type);
                }
                req.Headers.ExpectContinue = body.Length > 64 * 1024;
            }
            int status;
            string text;
            var outcomeKnown = true;
            try
            {
                using var h = _cloud.NewHttp();
                using var res = await h.SendAsync(req);
                status = (int)res.StatusCode;
                text = await res.Content.ReadAsStringAsync();
            }
            catch (HttpRequestException e) when (body is { Length: > 1024 * 1024 })
            {
                // The server answered before reading the whole body and closed the connection: a refusal (413), or a
                // handler that never reads a body and acted. The outcome is unknown to the client; only "no crash" is checked.
                status = 0;
                text = e.Message;
                outcomeKnown = false;
            }
            catch (UriFormatException)
            {
                continue; // not a request a client can send
            }
            counts[status] = counts.GetValueOrDefault(status) + 1;
            var desc = $"#{i} {method} {path[..Math.Min(path.Length, 160)]} body={Preview(body)} type={type}";
            if (status >= 500)
            {
                failures.Add($"{desc} → {status}: {text[..Math.Min(text.Length, 300)]}");
                continue;
            }
            if (!outcomeKnown)
            {
                baseline = await SettledDumpAsync();
                continue;
            }
            if (method == "GET")
            {
                continue;
            }
            var now = await _cloud.Store.DumpAsync(CancellationToken.None);
            if (status >= 400 && now != baseline)
            {
                failures.Add($"{desc} → {status} but the store changed");
            }
            // An accepted request may change the store, and the reconciler keeps acting on it for a moment (a delete, a
            // placement): the next refusal is compared with the settled store.
            baseline = status < 400 ? await SettledDumpAsync() : now;
        }
        output.WriteLine($"{Cases} cases in {clock.Elapsed.TotalSeconds:0.0} s; statuses: {string.Join(", ", counts.OrderBy(k => k.Key).Select(k => $"{k.Key}×{k.Value}"))}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        Assert.True((await c.HealthAsync()).Ready); // still serving
        Assert.True(counts.Where(k => k.Key >= 400).Sum(k => k.Value) > Cases / 2, "most generated requests should be refused, or the fuzzer is too tame");
    }

    private async Task<string> SettledDumpAsync()
    {
        var last = await _cloud.Store.DumpAsync(CancellationToken.None);
        for (var i = 0; i < 100; i++)
        {
            await Task.Delay(60);
            var now = await _cloud.Store.DumpAsync(CancellationToken.None);
            if (now == last && (await _cloud.Store.ListInstancesWithTaskAsync(null, 1, CancellationToken.None)).Count == 0)
            {
                return now;
            }
            last = now;
        }
        return last;
    }

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    private static string Fill(Random rng, string template, string[] refs)
    {
        var parts = template.Split('/');
        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i].StartsWith('{'))
            {
                parts[i] = rng.Next(3) == 0 ? Uri.EscapeDataString(Pick(rng, Hostile)) : Pick(rng, refs);
            }
        }
        return string.Join('/', parts);
    }

    private static string Query(Random rng) => rng.Next(4) switch
    {
        0 => "",
        1 => $"?{Pick(rng, Fields)}={Uri.EscapeDataString(Pick(rng, Hostile))}",
        2 => $"?limit={Pick(rng, new[] { "-1", "0", "1001", "abc", "99999999999999999999", "1" })}&marker={Uri.EscapeDataString(Pick(rng, Hostile))}",
        _ => $"?since={Uri.EscapeDataString(Pick(rng, Hostile))}&until=1m&resolution={Pick(rng, new[] { "raw", "1m", "1h", "5m", "" })}&project={Uri.EscapeDataString(Pick(rng, Hostile))}",
    };

    private static (byte[]? Body, string? Type) Body(Random rng)
    {
        var type = rng.Next(10) switch
        {
            0 => null,
            1 => "text/plain",
            2 => "application/x-www-form-urlencoded",
            3 => "application/json; charset=utf-16",
            4 => "application/octet-stream",
            _ => "application/json",
        };
        return rng.Next(12) switch
        {
            0 => (null, null),
            1 => (Encoding.UTF8.GetBytes(new string('[', 200) + new string(']', 200)), type),
            2 => ([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1], type),
            3 => (Encoding.UTF8.GetBytes("{\"name\":\"" + new string('a', rng.Next(2) == 0 ? 5000 : 1_100_000) + "\"}"), type),
            4 => (Encoding.UTF8.GetBytes(Pick(rng, new[] { "null", "[]", "1", "\"x\"", "true", "{", "}", "{\"a\":", "{\"name\":\"x\",\"name\":\"y\"}" })), type),
            _ => (Encoding.UTF8.GetBytes(RandomObject(rng, 0)), type),
        };
    }

    private static string RandomObject(Random rng, int depth)
    {
        var n = rng.Next(1, 6);
        var sb = new StringBuilder("{");
        for (var i = 0; i < n; i++)
        {
            if (i > 0)
            {
                sb.Append(',');
            }
            sb.Append(System.Text.Json.JsonSerializer.Serialize(Pick(rng, Fields))).Append(':').Append(RandomValue(rng, depth));
        }
        return sb.Append('}').ToString();
    }

    private static string RandomValue(Random rng, int depth) => rng.Next(depth > 3 ? 9 : 11) switch
    {
        0 => System.Text.Json.JsonSerializer.Serialize(Pick(rng, Hostile)),
        1 => Pick(rng, new[] { "-1", "0", "1", "2147483648", "-9223372036854775809", "1e308", "1.5", "99999999999999999999999999", "-0" }),
        2 => Pick(rng, new[] { "true", "false", "null" }),
        3 => "\"tiny\"",
        4 => System.Text.Json.JsonSerializer.Serialize(new string((char)rng.Next(32, 0x3000), rng.Next(0, 100))),
        5 => "[" + string.Join(',', Enumerable.Range(0, rng.Next(0, 4)).Select(_ => RandomValue(rng, depth + 1))) + "]",
        6 => "{\"host_port\":" + Pick(rng, new[] { "-5", "0", "80", "70000", "\"x\"" }) + ",\"guest_port\":" + Pick(rng, new[] { "0", "22", "65536", "null" }) + "}",
        7 => "\"" + Pick(rng, new[] { "stop", "start", "reboot", "explode", "admin", "member", "reader", "root", "anti-affinity" }) + "\"",
        8 => System.Text.Json.JsonSerializer.Serialize(Guid.NewGuid().ToString()),
        _ => RandomObject(rng, depth + 1),
    };

    private static string Preview(byte[]? body) =>
        body is null ? "none" : body.Length > 120 ? $"{body.Length} bytes" : Encoding.UTF8.GetString(body).Replace('\n', ' ');
}
