using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Benchmarks.ControlPlane;
using Stratus.Client;
using Stratus.Controller.Identity;
using Stratus.Core.Identity;
using Stratus.Storage.Sqlite;

namespace Stratus.Benchmarks.Auth;

/// <summary>
/// The cost of authentication, measured side by side in one run:
/// (1) over HTTP against the real controller process: a route without a credential (<c>GET /v1/health</c>) sent without and
///     with an API key (a credential that comes is always authenticated, so the same handler runs both ways), sequential
///     requests interleaved on one connection each, median and p99 — the difference is what authentication adds; and
///     <c>GET /v1/auth/whoami</c>, a route that needs the credential and the policy check;
/// (2) in process: <see cref="IdentityService.AuthenticateAsync"/> with the credential remembered (the common case) and
///     forgotten each time (hash + store lookups), and one password login (PBKDF2, 600 000 iterations).
/// Usage: <c>auth [--requests 5000]</c>; prints one JSON object.
/// </summary>
public static class AuthBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var i = Array.IndexOf(args, "--requests");
        var n = i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 5000;
        var root = ControlPlaneBench.FindRoot();
        var data = Directory.CreateTempSubdirectory("stratus-authbench-").FullName;
        var port = ControlPlaneBench.FreePort();
        var url = new Uri($"http://127.0.0.1:{port}/");
        await ControlPlaneBench.RunAsync(root, "up", "--detach", "--embedded", "--driver", "simulated", "--hosts", "1", "--data-dir", data,
            "--port", port.ToString(CultureInfo.InvariantCulture), "--rate-limit", "0"); // one client as fast as it can: no per-user limit
        var result = new Dictionary<string, object?> { ["requests"] = n };
        try
        {
            var key = Credentials.ReadBootstrapKey(data)!;
            using var anon = new HttpClient { BaseAddress = url };
            using var authed = new HttpClient { BaseAddress = url };
            authed.DefaultRequestHeaders.Authorization = new("Bearer", key);
            for (var w = 0; w < 500; w++)
            {
                (await anon.GetAsync("v1/health")).EnsureSuccessStatusCode();
                (await authed.GetAsync("v1/health")).EnsureSuccessStatusCode();
                (await authed.GetAsync("v1/auth/whoami")).EnsureSuccessStatusCode();
            }
            // Interleaved, so both see the same machine noise.
            var open = new List<double>(n);
            var auth = new List<double>(n);
            var who = new List<double>(n);
            for (var k = 0; k < n; k++)
            {
                var t = Stopwatch.GetTimestamp();
                (await anon.GetAsync("v1/health")).EnsureSuccessStatusCode();
                open.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
                t = Stopwatch.GetTimestamp();
                (await authed.GetAsync("v1/health")).EnsureSuccessStatusCode();
                auth.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
                t = Stopwatch.GetTimestamp();
                (await authed.GetAsync("v1/auth/whoami")).EnsureSuccessStatusCode();
                who.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
            }
            result["http_health_no_auth_us"] = Stats(open);
            result["http_health_api_key_us"] = Stats(auth);
            result["http_whoami_api_key_us"] = Stats(who);
            result["http_auth_added_median_us"] = Math.Round(Percentile(auth, 50) - Percentile(open, 50), 1);
        }
        finally
        {
            await ControlPlaneBench.RunAsync(root, "down", "--data-dir", data);
        }

        // In process: the authentication call itself.
        var db = Path.Combine(data, "inproc.db");
        await using var store = new SqliteStateStore(db);
        await store.MigrateAsync(CancellationToken.None);
        var identity = new IdentityService(store, new IdentityOptions(), TimeProvider.System, NullLogger<IdentityService>.Instance);
        await identity.BootstrapAdminAsync(Path.Combine(data, "inproc-credentials.json"), CancellationToken.None);
        var secret = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(data, "inproc-credentials.json"))).RootElement.GetProperty("api_key").GetString()!;
        var password = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(data, "inproc-credentials.json"))).RootElement.GetProperty("password").GetString()!;
        for (var w = 0; w < 2000; w++)
        {
            _ = await identity.AuthenticateAsync(secret, CancellationToken.None);
        }
        var warm = new List<double>(n);
        var cold = new List<double>(n);
        for (var k = 0; k < n; k++)
        {
            var t = Stopwatch.GetTimestamp();
            _ = await identity.AuthenticateAsync(secret, CancellationToken.None) ?? throw new InvalidOperationException("not authenticated");
            warm.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
            identity.ForgetAll();
            t = Stopwatch.GetTimestamp();
            _ = await identity.AuthenticateAsync(secret, CancellationToken.None) ?? throw new InvalidOperationException("not authenticated");
            cold.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
        }
        result["authenticate_remembered_us"] = Stats(warm);
        result["authenticate_store_lookup_us"] = Stats(cold);
        var login = new List<double>();
        for (var k = 0; k < 5; k++)
        {
            var t = Stopwatch.GetTimestamp();
            var o = await identity.LoginAsync(new Core.Wire.LoginRequest("admin", password, Project.AdminName), "bench", CancellationToken.None);
            login.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            if (!o.Ok)
            {
                throw new InvalidOperationException(o.Problem!.Detail);
            }
        }
        result["password_login_ms"] = Stats(login);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(data, true);
        Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static Dictionary<string, double> Stats(List<double> xs) => new()
    {
        ["median"] = Math.Round(Percentile(xs, 50), 1),
        ["p99"] = Math.Round(Percentile(xs, 99), 1),
    };

    private static double Percentile(List<double> xs, double p)
    {
        var s = xs.Order().ToList();
        return s[Math.Min(s.Count - 1, (int)Math.Round(p / 100 * (s.Count - 1)))];
    }
}
