using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Stratus.Client;
using Stratus.Core.Billing;
using Stratus.Core.Ids;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// /v1/invoices, /v1/usage, /v1/prices, /v1/budgets on a whole cloud: metering follows the real agent path, the CSV is
/// the JSON invoice line for line, budgets warn and block over HTTP, and every bad request is a 4xx problem that
/// changes nothing. (The exact amounts on virtual time are Stratus.Controller.Tests' InvoiceTests.)
/// </summary>
public sealed class BillingApiTests(TestCloud cloud) : IClassFixture<TestCloud>
{
    private const string Unknown = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

    public sealed record Case(string Name, string Method, string Path, string? Body, int Status, string Code);

    public static TheoryData<string> Cases() => new(Table.Select(c => c.Name));

    public static readonly IReadOnlyList<Case> Table =
    [
        new("invoice unknown project", "GET", $"v1/invoices?project={Unknown}", null, 400, "validation_failed"),
        new("invoice project not an id", "GET", "v1/invoices?project=no-such-project", null, 400, "validation_failed"),
        new("invoice from after to", "GET", "v1/invoices?from=2026-03-02&to=2026-03-01", null, 400, "validation_failed"),
        new("invoice from equals to", "GET", "v1/invoices?from=2026-03-01&to=2026-03-01", null, 400, "validation_failed"),
        new("invoice bad date", "GET", "v1/invoices?from=yesterday&to=2026-03-01", null, 400, "validation_failed"),
        new("invoice impossible date", "GET", "v1/invoices?from=2026-02-30&to=2026-03-01", null, 400, "validation_failed"),
        new("invoice time without zone", "GET", "v1/invoices?from=2026-03-01T10:00:00&to=2026-03-02", null, 400, "validation_failed"),
        new("invoice only from", "GET", "v1/invoices?from=2026-03-01", null, 400, "validation_failed"),
        new("invoice month and from", "GET", "v1/invoices?month=2026-03&from=2026-03-01", null, 400, "validation_failed"),
        new("invoice bad month", "GET", "v1/invoices?month=2026-13", null, 400, "validation_failed"),
        new("invoice bad format", "GET", "v1/invoices?format=xml", null, 400, "validation_failed"),
        new("invoice unknown parameter", "GET", "v1/invoices?colour=red", null, 400, "validation_failed"),
        new("usage unknown project", "GET", $"v1/usage?project={Unknown}", null, 400, "validation_failed"),
        new("usage unknown parameter", "GET", "v1/usage?from=2026-03-01", null, 400, "validation_failed"),
        new("prices negative", "PUT", "v1/prices", """{"vcpu_hour":-0.01,"memory_gib_hour":0.01,"disk_gib_hour":0.01}""", 400, "validation_failed"),
        new("prices missing", "PUT", "v1/prices", """{"vcpu_hour":0.01}""", 400, "validation_failed"),
        new("prices too large", "PUT", "v1/prices", """{"vcpu_hour":1000000.01,"memory_gib_hour":0,"disk_gib_hour":0}""", 400, "validation_failed"),
        new("prices too many decimals", "PUT", "v1/prices", """{"vcpu_hour":0.000000001,"memory_gib_hour":0,"disk_gib_hour":0}""", 400, "validation_failed"),
        new("prices as strings", "PUT", "v1/prices", """{"vcpu_hour":"0.01","memory_gib_hour":0,"disk_gib_hour":0}""", 400, "invalid_json"),
        new("prices bad currency", "PUT", "v1/prices", """{"currency":"dollars","vcpu_hour":0,"memory_gib_hour":0,"disk_gib_hour":0}""", 400, "validation_failed"),
        new("prices unknown flavor", "PUT", "v1/prices", """{"vcpu_hour":0,"memory_gib_hour":0,"disk_gib_hour":0,"flavors":[{"flavor":"huge","hour":1}]}""", 400, "validation_failed"),
        new("prices negative flavor", "PUT", "v1/prices", """{"vcpu_hour":0,"memory_gib_hour":0,"disk_gib_hour":0,"flavors":[{"flavor":"tiny","hour":-1}]}""", 400, "validation_failed"),
        new("prices in the past", "PUT", "v1/prices", """{"vcpu_hour":0,"memory_gib_hour":0,"disk_gib_hour":0,"effective_from":"2020-01-01T00:00:00Z"}""", 400, "validation_failed"),
        new("prices unknown field", "PUT", "v1/prices", """{"vcpu_hour":0,"memory_gib_hour":0,"disk_gib_hour":0,"gpu_hour":1}""", 400, "invalid_json"),
        new("budget negative", "PUT", "v1/budgets", """{"amount":-1}""", 400, "validation_failed"),
        new("budget fractional cents", "PUT", "v1/budgets", """{"amount":10.005}""", 400, "validation_failed"),
        new("budget warn zero", "PUT", "v1/budgets", """{"amount":10,"warn_percent":0}""", 400, "validation_failed"),
        new("budget unknown project", "PUT", "v1/budgets", $$"""{"project":"{{Unknown}}","amount":10}""", 400, "validation_failed"),
        new("budget without amount", "PUT", "v1/budgets", """{"block":true}""", 400, "validation_failed"),
        new("budget none to show", "GET", "v1/budgets", null, 404, "not_found"),
        new("budget none to delete", "DELETE", "v1/budgets", null, 404, "not_found"),
        new("budget show unknown project", "GET", $"v1/budgets?project={Unknown}", null, 400, "validation_failed"),
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadRequest_Refused_StableCodeAndStoreUnchanged(string name)
    {
        var c = Table.Single(t => t.Name == name);
        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var (status, body) = await SendAsync(c.Method, c.Path, c.Body);
        Assert.Equal(c.Status, status);
        using var doc = JsonDocument.Parse(body);
        Assert.Equal(c.Code, doc.RootElement.GetProperty("code").GetString());
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Validation_ManyErrors_AllReportedAtOnce()
    {
        var (status, body) = await SendAsync("PUT", "v1/prices",
            """{"currency":"usd","vcpu_hour":-1,"memory_gib_hour":-1,"flavors":[{"flavor":"nope","hour":-2}],"effective_from":"2001-01-01T00:00:00Z"}""");
        Assert.Equal(400, status);
        using var doc = JsonDocument.Parse(body);
        var fields = doc.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("field").GetString()).ToList();
        Assert.Equal(new[] { "currency", "vcpu_hour", "memory_gib_hour", "disk_gib_hour", "flavors[0].flavor", "flavors[0].hour", "effective_from" }, fields);
        var (s2, b2) = await SendAsync("GET", $"v1/invoices?project={Unknown}&from=nope&to=2026-01-01", null);
        Assert.Equal(400, s2);
        using var d2 = JsonDocument.Parse(b2);
        Assert.Equal(new[] { "project", "from" }, d2.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("field").GetString()).ToList());
    }

    [Fact]
    public async Task Invoice_ServerRanAndStopped_IntervalsAtTheTransitionsAndCsvEqualsJson()
    {
        // Dear prices so a few seconds show: 1 per vCPU-second, memory and disk 0.36 per GiB-hour.
        await cloud.Client.SetPricesAsync(new PriceSheetRequest(null, 3600m, 0.36m, 0.36m, null, null));
        var s = await cloud.Client.CreateServerAsync(new CreateServerRequest("billed", "tiny", "tiny", null, null, null, null));
        await cloud.WaitAsync(s.Id, "active");
        await Task.Delay(1200);
        await cloud.Client.ActAsync(s.Id, "stop");
        await cloud.WaitAsync(s.Id, "stopped");

        // Billing starts and switches the instant the controller recorded each transition (the action log's finish time).
        var actions = await cloud.Client.ListActionsAsync(s.Id);
        var usage = await cloud.Store.ListServerUsageAsync(new InstanceId(Guid.Parse(s.Id)), CancellationToken.None);
        Assert.Equal(
            new[] { (UsageState.Running, actions.Single(a => a.Action == "create").FinishedAt), (UsageState.Stopped, actions.Single(a => a.Action == "stop").FinishedAt) },
            usage.Select(u => (u.State, (DateTimeOffset?)u.Start)));
        Assert.Equal(usage[1].Start, usage[0].End);

        // A period that is over (it ends now), so every request sees the same invoice while other servers keep running.
        var now = DateTimeOffset.UtcNow;
        var from = now.AddDays(-1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var to = now.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        await Task.Delay(10);
        var inv = await cloud.Client.InvoiceAsync(null, from, to);
        var mine = inv.Lines.Where(l => l.ServerId == s.Id).ToList();
        Assert.Equal(new[] { "vcpu", "memory", "disk" }, mine.Select(l => l.Resource));
        var running = (decimal)(usage[0].End!.Value - usage[0].Start).Ticks / TimeSpan.TicksPerSecond;
        Assert.Equal(running, mine[0].Seconds);
        Assert.Equal(decimal.Round(running, 2, MidpointRounding.AwayFromZero), mine[0].Amount); // 1 vCPU × running seconds × 1 per second
        Assert.Equal(inv.Lines.Sum(l => l.Amount), inv.Total);
        Assert.True(inv.Final);
        Assert.Equal(Metering.AdminProjectId.ToString("D"), inv.Project);

        var csv = (await cloud.Client.InvoiceCsvAsync(null, from, to)).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("project,from,to,server_id,server_name,flavor,resource,unit,seconds,quantity,unit_price,amount,currency", csv[0]);
        Assert.Equal(inv.Lines.Count + 2, csv.Length);
        var rows = csv[1..^1].Select(r => r.Split(',')).ToList();
        Assert.Equal(inv.Lines.Select(l => (l.ServerId, l.Resource, l.Amount.ToString(System.Globalization.CultureInfo.InvariantCulture))),
            rows.Select(r => (r[3], r[6], r[11])));
        Assert.EndsWith($",total,,,,,{inv.Total.ToString(System.Globalization.CultureInfo.InvariantCulture)},{inv.Currency}", csv[^1]);

        using var req = new HttpRequestMessage(HttpMethod.Get, $"v1/invoices?from={from}&to={to}");
        req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        using var resp = await cloud.Http.SendAsync(req);
        Assert.Equal("text/csv", resp.Content.Headers.ContentType?.MediaType);

        var u = await cloud.Client.UsageAsync();
        var row = Assert.Single(u.Servers, x => x.ServerId == s.Id);
        Assert.Equal(("stopped", running), (row.State, row.RunningSeconds));
        Assert.True(row.StoppedSeconds > 0);
    }

    [Fact]
    public async Task Budget_ReachedWithoutBlock_CreateWarns_WithBlock_409AndNothingWritten()
    {
        try
        {
            var b = await cloud.Client.SetBudgetAsync(new BudgetRequest(null, 0m, null, false));
            Assert.Equal(("exceeded", 80, false), (b.State, b.WarnPercent, b.Block));
            var s = await cloud.Client.CreateServerAsync(new CreateServerRequest("over-budget", "tiny", "tiny", null, null, null, null));
            Assert.Contains("reaching its budget of 0.00", s.BudgetWarning);
            Assert.Null((await cloud.WaitAsync(s.Id, "active")).BudgetWarning);

            await cloud.Client.SetBudgetAsync(new BudgetRequest(Metering.AdminProjectId.ToString(), 0m, 50, true));
            var before = await cloud.Store.DumpAsync(CancellationToken.None);
            var e = await Assert.ThrowsAsync<StratusApiException>(() => cloud.Client.CreateServerAsync(new CreateServerRequest("blocked", "tiny", "tiny", null, null, null, null)));
            Assert.Equal((409, "budget_exceeded"), (e.Status, e.Code));
            Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));
            Assert.Equal("exceeded", (await cloud.Client.UsageAsync()).Budget?.State);
        }
        finally
        {
            await cloud.Client.DeleteBudgetAsync();
        }
        var gone = await Assert.ThrowsAsync<StratusApiException>(() => cloud.Client.GetBudgetAsync());
        Assert.Equal(404, gone.Status);
    }

    [Fact]
    public async Task Prices_SetThenShown_AndCurrencyLockedOnceUsageExists()
    {
        var set = await cloud.Client.SetPricesAsync(new PriceSheetRequest("USD", 0.5m, 0.25m, 0.125m, [new FlavorPriceDto("tiny", 0.75m)], null));
        var shown = await cloud.Client.PricesAsync();
        Assert.Equal((0.5m, 0.25m, 0.125m, "tiny", 0.75m), (shown.VcpuHour, shown.MemoryGibHour, shown.DiskGibHour, shown.Flavors.Single().Flavor, shown.Flavors.Single().Hour));
        Assert.Equal(set.EffectiveFrom, shown.EffectiveFrom);
        Assert.Contains(await cloud.Client.PriceHistoryAsync(), h => h.EffectiveFrom == DateTimeOffset.UnixEpoch && h.VcpuHour == PriceSheet.Default.VcpuHour);

        var s = await cloud.Client.CreateServerAsync(new CreateServerRequest("priced", "tiny", "tiny", null, null, null, null));
        await cloud.WaitAsync(s.Id, "active");
        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => cloud.Client.SetPricesAsync(new PriceSheetRequest("EUR", 0.5m, 0.25m, 0.125m, null, null)));
        Assert.Equal((409, "currency_locked"), (e.Status, e.Code));
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Reconcile_InjectedLostInterval_ReportedByGetRepairedByPost()
    {
        var s = await cloud.Client.CreateServerAsync(new CreateServerRequest("lost-meter", "tiny", "tiny", null, null, null, null));
        await cloud.WaitAsync(s.Id, "active");
        Assert.DoesNotContain((await cloud.Client.ReconcileUsageAsync(false)).Discrepancies, d => d.ServerId == s.Id);

        await using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(cloud.DataDir, "stratus.db")}"))
        {
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"DELETE FROM usage_intervals WHERE instance_id='{s.Id}'";
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        var before = await cloud.Store.DumpAsync(CancellationToken.None);
        var check = await cloud.Client.ReconcileUsageAsync(false);
        var found = Assert.Single(check.Discrepancies, d => d.ServerId == s.Id);
        Assert.Equal(("missing", "lost-meter", false), (found.Kind, found.ServerName, check.Repaired));
        Assert.Equal(before, await cloud.Store.DumpAsync(CancellationToken.None));

        var repair = await cloud.Client.ReconcileUsageAsync(true);
        Assert.True(repair.Repaired);
        Assert.Empty((await cloud.Client.ReconcileUsageAsync(false)).Discrepancies);
        var open = Assert.Single(await cloud.Store.ListServerUsageAsync(new InstanceId(Guid.Parse(s.Id)), CancellationToken.None));
        Assert.Equal((repair.CheckedAt, (DateTimeOffset?)null), (open.Start, open.End));
    }

    private async Task<(int Status, string Body)> SendAsync(string method, string path, string? body)
    {
        using var req = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            req.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            req.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
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
