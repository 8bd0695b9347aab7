using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CsCheck;

namespace Stratus.Api.Tests;

/// <summary>
/// Malformed and illegal requests: each gets a 4xx problem with a stable code and leaves the
/// store byte-for-byte unchanged (a dump before and after is compared). No request gets a 500.
/// </summary>
public sealed class BadInputTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    public sealed record Case(string Name, string Method, string Path, string? Body, string? ContentType, int Status, string Code);

    private static readonly string Long = new('a', 65);

    public static TheoryData<string> Cases() => new(Table.Select(c => c.Name));

    public static readonly IReadOnlyList<Case> Table =
    [
        new("unknown field", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"tiny","colour":"red"}""", "application/json", 400, "invalid_json"),
        new("invalid json", "POST", "v1/servers", """{"name":"x",""", "application/json", 400, "invalid_json"),
        new("json array", "POST", "v1/servers", "[1,2]", "application/json", 400, "invalid_json"),
        new("json null", "POST", "v1/servers", "null", "application/json", 400, "invalid_json"),
        new("wrong type", "POST", "v1/flavors", """{"name":"f","vcpus":"two","ram_mib":1,"disk_gib":1}""", "application/json", 400, "invalid_json"),
        new("float vcpus", "POST", "v1/flavors", """{"name":"f","vcpus":1.5,"ram_mib":256,"disk_gib":1}""", "application/json", 400, "invalid_json"),
        new("huge number", "POST", "v1/flavors", """{"name":"f","vcpus":99999999999999999999,"ram_mib":256,"disk_gib":1}""", "application/json", 400, "invalid_json"),
        new("no content type", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"tiny"}""", null, 415, "unsupported_media_type"),
        new("text content type", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"tiny"}""", "text/plain", 415, "unsupported_media_type"),
        new("form content type", "POST", "v1/flavors", "name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        new("oversized body", "POST", "v1/servers", "{\"name\":\"x\",\"user_data\":\"" + new string('u', 2 * 1024 * 1024) + "\"}", "application/json", 413, "body_too_large"),
        new("missing everything", "POST", "v1/servers", "{}", "application/json", 400, "validation_failed"),
        new("unknown flavor", "POST", "v1/servers", """{"name":"x","flavor":"nope","image":"tiny"}""", "application/json", 400, "validation_failed"),
        new("unknown image id", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}""", "application/json", 400, "validation_failed"),
        new("name too long", "POST", "v1/servers", $$"""{"name":"{{Long}}","flavor":"tiny","image":"tiny"}""", "application/json", 400, "validation_failed"),
        new("name control char", "POST", "v1/servers", """{"name":"a\u0001b","flavor":"tiny","image":"tiny"}""", "application/json", 400, "validation_failed"),
        new("name path separator", "POST", "v1/servers", """{"name":"../etc","flavor":"tiny","image":"tiny"}""", "application/json", 400, "validation_failed"),
        new("name sql", "POST", "v1/servers", """{"name":"x'; DROP TABLE instances;--","flavor":"tiny","image":"tiny"}""", "application/json", 400, "validation_failed"),
        new("forward bad port", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"tiny","forwards":[{"host_port":80,"guest_port":0}]}""", "application/json", 400, "validation_failed"),
        new("user data too large", "POST", "v1/servers", "{\"name\":\"x\",\"flavor\":\"tiny\",\"image\":\"tiny\",\"user_data\":\"" + new string('u', 70 * 1024) + "\"}", "application/json", 400, "validation_failed"),
        new("zero vcpus", "POST", "v1/flavors", """{"name":"f","vcpus":0,"ram_mib":256,"disk_gib":1}""", "application/json", 400, "validation_failed"),
        new("negative ram", "POST", "v1/flavors", """{"name":"f","vcpus":1,"ram_mib":-5,"disk_gib":1}""", "application/json", 400, "validation_failed"),
        new("absurd disk", "POST", "v1/flavors", """{"name":"f","vcpus":1,"ram_mib":256,"disk_gib":9000000000}""", "application/json", 400, "validation_failed"),
        new("duplicate flavor", "POST", "v1/flavors", """{"name":"tiny","vcpus":1,"ram_mib":256,"disk_gib":1}""", "application/json", 409, "name_in_use"),
        new("image bad format", "POST", "v1/images", """{"name":"i","disk_format":"vmdk"}""", "application/json", 400, "validation_failed"),
        new("image relative path", "POST", "v1/images", """{"name":"i","path":"../../etc/passwd"}""", "application/json", 400, "validation_failed"),
        new("image missing path", "POST", "v1/images", """{"name":"i","path":"/nonexistent/x.qcow2"}""", "application/json", 400, "validation_failed"),
        new("unknown server", "GET", "v1/servers/3f2504e0-4f89-11d3-9a0c-0305e82c3301", null, null, 404, "not_found"),
        new("unknown server by name", "GET", "v1/servers/nobody", null, null, 404, "not_found"),
        new("delete unknown server", "DELETE", "v1/servers/nobody", null, null, 404, "not_found"),
        new("action on unknown", "POST", "v1/servers/nobody/actions", """{"action":"start"}""", "application/json", 404, "not_found"),
        new("unknown action", "POST", "v1/servers/bad-input-anchor/actions", """{"action":"explode"}""", "application/json", 400, "validation_failed"),
        new("reboot type wrong", "POST", "v1/servers/bad-input-anchor/actions", """{"action":"reboot","type":"medium"}""", "application/json", 400, "validation_failed"),
        new("type on stop", "POST", "v1/servers/bad-input-anchor/actions", """{"action":"stop","type":"hard"}""", "application/json", 400, "validation_failed"),
        new("bad limit", "GET", "v1/servers?limit=0", null, null, 400, "validation_failed"),
        new("huge limit", "GET", "v1/servers?limit=100000", null, null, 400, "validation_failed"),
        new("bad marker", "GET", "v1/servers?marker=../../x", null, null, 400, "validation_failed"),
        new("bad state", "GET", "v1/servers?state=running", null, null, 400, "validation_failed"),
        new("unknown filter", "GET", "v1/servers?colour=red", null, null, 400, "validation_failed"),
        new("unknown route", "GET", "v1/teapots", null, null, 404, "not_found"),
        new("wrong method", "PUT", "v1/servers", "{}", "application/json", 405, "method_not_allowed"),
        new("unknown flavor show", "GET", "v1/flavors/none", null, null, 404, "not_found"),
        new("delete unknown image", "DELETE", "v1/images/none", null, null, 404, "not_found"),
        new("delete image in use", "DELETE", "v1/images/tiny", null, null, 409, "image_in_use"),
        new("delete flavor in use", "DELETE", "v1/flavors/tiny", null, null, 409, "flavor_in_use"),
        new("malformed public key", "POST", "v1/keypairs", """{"name":"k1","public_key":"ssh-ed25519 not*base64"}""", "application/json", 400, "validation_failed"),
        new("private key as public", "POST", "v1/keypairs", """{"name":"k1","public_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}""", "application/json", 400, "validation_failed"),
        new("keypair without key", "POST", "v1/keypairs", """{"name":"k1"}""", "application/json", 400, "validation_failed"),
        new("server with unknown key", "POST", "v1/servers", """{"name":"x","flavor":"tiny","image":"tiny","key_name":"nokey"}""", "application/json", 400, "validation_failed"),
        new("delete unknown keypair", "DELETE", "v1/keypairs/nokey", null, null, 404, "not_found"),
        new("stats unknown server", "GET", "v1/servers/nobody/stats", null, null, 404, "not_found"),
        new("stats unknown host", "GET", "v1/hosts/nohost/stats", null, null, 404, "not_found"),
        new("stats bad resolution", "GET", "v1/servers/bad-input-anchor/stats?resolution=5m", null, null, 400, "validation_failed"),
        new("stats bad since", "GET", "v1/servers/bad-input-anchor/stats?since=yesterday", null, null, 400, "validation_failed"),
        new("stats empty since", "GET", "v1/servers/bad-input-anchor/stats?since=", null, null, 400, "validation_failed"),
        new("stats since after until", "GET", "v1/hosts/host-1/stats?since=1m&until=2m", null, null, 400, "validation_failed"),
        new("stats unknown parameter", "GET", "v1/hosts/host-1/stats?colour=red", null, null, 400, "validation_failed"),
        new("stats post", "POST", "v1/servers/bad-input-anchor/stats", "{}", "application/json", 405, "method_not_allowed"),
    ];

    private async Task EnsureTinyInUseAsync()
    {
        if ((await cloud.Client.ListServersAsync(name: "bad-input-anchor")).Count == 0)
        {
            var s = await cloud.Client.CreateServerAsync(new("bad-input-anchor", "tiny", "tiny", null, null, null, null));
            await cloud.WaitAsync(s.Id, "active");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadRequest_Refused_StableCodeAndStoreUnchanged(string name)
    {
        await EnsureTinyInUseAsync();
        var c = Table.Single(t => t.Name == name);
        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var (status, body) = await SendAsync(c.Method, c.Path, c.Body, c.ContentType);
        Assert.Equal(c.Status, status);
        using var doc = JsonDocument.Parse(body);
        Assert.Equal(c.Code, doc.RootElement.GetProperty("code").GetString());
        Assert.Equal(c.Status, doc.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Validation_ManyErrors_AllReportedAtOnce()
    {
        var (status, body) = await SendAsync("POST", "v1/servers", """{"name":"","flavor":"nope","image":"","user_data":null,"forwards":[{"host_port":1,"guest_port":70000}]}""", "application/json");
        Assert.Equal(400, status);
        using var doc = JsonDocument.Parse(body);
        var fields = doc.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("field").GetString()).ToList();
        Assert.Contains("name", fields);
        Assert.Contains("flavor", fields);
        Assert.Contains("image", fields);
        Assert.Contains("forwards[0].guest_port", fields);
        Assert.Contains("forwards[0].host_port", fields);
    }

    [Fact]
    public async Task Generated_RandomBodies_Never5xxNeverChangeState()
    {
        await EnsureTinyInUseAsync();
        var paths = new[] { "v1/servers", "v1/flavors", "v1/images", "v1/servers/bad-input-anchor/actions" };
        var junk = Gen.OneOf(
            Gen.String,
            Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            Gen.Const("null"), Gen.Const("{}"), Gen.Const("[]"), Gen.Const("\"\u202e\""),
            Gen.String.Select(s => JsonSerializer.Serialize(s)));
        var field = Gen.OneOf(Gen.Const("name"), Gen.Const("flavor"), Gen.Const("image"), Gen.Const("vcpus"), Gen.Const("ram_mib"), Gen.Const("disk_gib"),
            Gen.Const("action"), Gen.Const("type"), Gen.Const("forwards"), Gen.Const("user_data"), Gen.String[0, 8]);
        var value = Gen.OneOf(
            Gen.Const("\"../../etc/passwd\""), Gen.Const("\"tiny\""), Gen.Const("-1"), Gen.Const("0"), Gen.Const("1e309"), Gen.Const("9223372036854775808"),
            Gen.Const("\"start\""), Gen.Const("\"x'; DROP TABLE flavors;--\""), Gen.Const("[{\"host_port\":-1}]"), Gen.Const("{\"a\":{\"b\":{}}}"),
            Gen.String.Select(s => JsonSerializer.Serialize(s)), Gen.Long.Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var obj = Gen.Select(field, value).Array[0, 6].Select(kv => "{" + string.Join(",", kv.Select(p => JsonSerializer.Serialize(p.Item1) + ":" + p.Item2)) + "}");
        var body = Gen.Frequency((3, obj), (1, junk));
        var count = 0;
        var refused = 0;
        await Gen.Select(Gen.Int[0, paths.Length - 1], body).SampleAsync(async t =>
        {
            var before = await cloud.Store.DumpAsync(CancellationToken.None);
            var (status, _) = await SendAsync("POST", paths[t.Item1], t.Item2, "application/json");
            Interlocked.Increment(ref count);
            if (status < 400)
            {
                return true; // a generated body can be a valid request; only refusals must leave no trace
            }
            Interlocked.Increment(ref refused);
            return await cloud.Store.DumpAsync(CancellationToken.None) == before;
        }, iter: 3000, threads: 1, seed: "0000ShPUX2MK");
        Assert.Equal(3000, count);
        Assert.True(refused > 2800, $"only {refused} of {count} generated requests were refused");
    }

    private async Task<(int Status, string Body)> SendAsync(string method, string path, string? body, string? contentType)
    {
        using var req = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            req.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            if (contentType is not null)
            {
                req.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            }
            // A large body waits for the server's go-ahead, as careful clients do: the server may refuse it (413) before reading it.
            req.Headers.ExpectContinue = body.Length > 64 * 1024;
        }
        using var resp = await cloud.Http.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True((int)resp.StatusCode < 500, $"{method} {path} answered {(int)resp.StatusCode}: {text}");
        if ((int)resp.StatusCode >= 400)
        {
            Assert.Equal("application/problem+json", resp.Content.Headers.ContentType?.MediaType);
        }
        return ((int)resp.StatusCode, text);
    }
}
