using System.CommandLine;
using System.Globalization;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`invoice show`, `usage show|reconcile`, `price show|history|set`, `budget show|set|delete`.</summary>
public static class BillingCommands
{
    private static Option<string?> ProjectOption() => new("--project") { Description = "Project id (default: the admin project)" };

    public static Command Invoice(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api)
    {
        var project = ProjectOption();
        var from = new Option<string?>("--from") { Description = "Start: YYYY-MM-DD (midnight UTC) or ISO 8601 with a zone" };
        var to = new Option<string?>("--to") { Description = "End (exclusive), as --from" };
        var month = new Option<string?>("--month") { Description = "A calendar month YYYY-MM instead of --from/--to (default: the current month)" };
        var o = new Option<string>("--output", "-o") { Description = "table, json or csv", DefaultValueFactory = _ => "table" };
        o.AcceptOnlyFromAmong("table", "json", "csv");
        var show = new Command("show", "A project's invoice for a period: one line per server and resource, amounts rounded to the cent") { project, from, to, month, o };
        show.SetAction((r, ct) => api(r, async c =>
        {
            var (p, f, t, m) = (r.GetValue(project), r.GetValue(from), r.GetValue(to), r.GetValue(month));
            if (r.GetValue(o) == "csv")
            {
                Console.Out.Write(await c.InvoiceCsvAsync(p, f, t, m, ct));
                return;
            }
            var inv = await c.InvoiceAsync(p, f, t, m, ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(inv);
                return;
            }
            Output.Table(["SERVER", "FLAVOR", "RESOURCE", "QUANTITY", "UNIT", "UNIT_PRICE", "AMOUNT"],
                inv.Lines.Select(l => new[] { l.ServerName, l.Flavor, l.Resource, l.Quantity.ToString("0.######", Output.Inv), l.Unit, Num(l.UnitPrice), Num(l.Amount) }));
            Console.Out.WriteLine(string.Create(Output.Inv,
                $"total {inv.Total:0.00} {inv.Currency}, project {inv.Project}, {inv.From:u} – {inv.To:u}{(inv.Final ? "" : $" (so far: metered until {inv.MeteredUntil:u})")}"));
        }));
        return new Command("invoice", "Invoices per project and period") { show };
    }

    public static Command Usage(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var project = ProjectOption();
        var so = output();
        var show = new Command("show", "This month's usage so far: per server its running and stopped time and cost, and the budget") { project, so };
        show.SetAction((r, ct) => api(r, async c =>
        {
            var u = await c.UsageAsync(r.GetValue(project), ct);
            if (Output.IsJson(r.GetValue(so)))
            {
                Output.Json(u);
                return;
            }
            Output.Table(["SERVER", "FLAVOR", "NOW", "RUNNING_H", "STOPPED_H", "AMOUNT"],
                u.Servers.Select(s => new[] { s.ServerName, s.Flavor, s.State ?? "-", Hours(s.RunningSeconds), Hours(s.StoppedSeconds), Num(s.Amount) }));
            Console.Out.WriteLine(string.Create(Output.Inv, $"total {u.Total:0.00} {u.Currency} from {u.From:u} until {u.MeteredUntil:u}"));
            if (u.Budget is { } b)
            {
                Console.Out.WriteLine(BudgetLine(b));
            }
        }));
        var repair = new Option<bool>("--repair") { Description = "Set every discrepancy right from now (closes wrong intervals, opens missing ones)" };
        var ro = output();
        var reconcile = new Command("reconcile", "Check the open usage intervals against the allocations ledger") { repair, ro };
        reconcile.SetAction((r, ct) => api(r, async c =>
        {
            var rec = await c.ReconcileUsageAsync(r.GetValue(repair), ct);
            if (Output.IsJson(r.GetValue(ro)))
            {
                Output.Json(rec);
                return;
            }
            if (rec.Discrepancies.Count == 0)
            {
                Console.Out.WriteLine("the meter agrees with the ledger");
                return;
            }
            Output.Table(["SERVER", "KIND", "DETAIL"], rec.Discrepancies.Select(d => new[] { d.ServerName, d.Kind, d.Detail }));
            Console.Out.WriteLine(rec.Repaired ? "repaired from now" : "not repaired (use --repair)");
        }));
        return new Command("usage", "Metered usage of servers") { show, reconcile };
    }

    public static Command Price(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var so = output();
        var show = new Command("show", "The price sheet in effect now") { so };
        show.SetAction((r, ct) => api(r, async c => PrintSheet(await c.PricesAsync(ct), r.GetValue(so))));
        var ho = output();
        var history = new Command("history", "Every price sheet, by the time it takes effect") { ho };
        history.SetAction((r, ct) => api(r, async c =>
        {
            var all = await c.PriceHistoryAsync(ct);
            Output.Objects(all, r.GetValue(ho), false, ["EFFECTIVE_FROM", "CURRENCY", "VCPU_HOUR", "MEMORY_GIB_HOUR", "DISK_GIB_HOUR", "FLAVORS"],
                s => [s.EffectiveFrom.ToString("u", Output.Inv), s.Currency, Num(s.VcpuHour), Num(s.MemoryGibHour), Num(s.DiskGibHour),
                    string.Join(", ", s.Flavors.Select(f => $"{f.Flavor}={Num(f.Hour)}"))]);
        }));

        var currency = new Option<string?>("--currency") { Description = "ISO 4217 code (only while nothing has been billed yet)" };
        var vcpu = new Option<string?>("--vcpu-hour") { Description = "Price per vCPU-hour of a running server" };
        var mem = new Option<string?>("--memory-gib-hour") { Description = "Price per GiB-hour of memory of a running server" };
        var disk = new Option<string?>("--disk-gib-hour") { Description = "Price per GiB-hour of disk (running or stopped)" };
        var flavor = new Option<string[]>("--flavor") { Description = "NAME=PRICE: price per flavor-hour for that flavor's compute (replaces vCPU and memory), repeatable; NAME= removes it" };
        var clear = new Option<bool>("--clear-flavors") { Description = "Start from no flavor prices" };
        var effective = new Option<string?>("--from") { Description = "When the sheet takes effect: ISO 8601, UTC unless a zone is given (default: now; never in the past)" };
        var o = output();
        var set = new Command("set", "Set prices (unchanged ones are kept from the current sheet)") { currency, vcpu, mem, disk, flavor, clear, effective, o };
        set.SetAction((r, ct) => api(r, async c =>
        {
            var cur = await c.PricesAsync(ct);
            var flavors = r.GetValue(clear) ? new Dictionary<string, decimal>(StringComparer.Ordinal) : cur.Flavors.ToDictionary(f => f.Flavor, f => f.Hour, StringComparer.Ordinal);
            foreach (var f in r.GetValue(flavor) ?? [])
            {
                var eq = f.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new StratusApiException(0, "bad_arguments", $"--flavor '{f}' must be NAME=PRICE");
                }
                if (eq == f.Length - 1)
                {
                    flavors.Remove(f[..eq]);
                }
                else
                {
                    flavors[f[..eq]] = Dec(f[(eq + 1)..], "--flavor");
                }
            }
            DateTimeOffset? from = null;
            if (r.GetValue(effective) is { } e)
            {
                from = DateTimeOffset.TryParse(e, Output.Inv, DateTimeStyles.AssumeUniversal, out var t) ? t
                    : throw new StratusApiException(0, "bad_arguments", $"--from '{e}' must be an ISO 8601 time, e.g. 2026-04-01T00:00:00Z");
            }
            var req = new PriceSheetRequest(r.GetValue(currency) ?? cur.Currency,
                r.GetValue(vcpu) is { } v ? Dec(v, "--vcpu-hour") : cur.VcpuHour,
                r.GetValue(mem) is { } m ? Dec(m, "--memory-gib-hour") : cur.MemoryGibHour,
                r.GetValue(disk) is { } d ? Dec(d, "--disk-gib-hour") : cur.DiskGibHour,
                [.. flavors.Select(kv => new FlavorPriceDto(kv.Key, kv.Value))], from);
            PrintSheet(await c.SetPricesAsync(req, ct), r.GetValue(o));
        }));
        return new Command("price", "Price sheets: what usage costs") { show, history, set };
    }

    public static Command Budget(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var project = ProjectOption();
        var so = output();
        var show = new Command("show", "A project's monthly budget and this month's spending") { project, so };
        show.SetAction((r, ct) => api(r, async c => PrintBudget(await c.GetBudgetAsync(r.GetValue(project), ct), r.GetValue(so))));

        var amount = new Argument<string>("amount") { Description = "Amount per calendar month (UTC), in the price sheet's currency" };
        var sp = ProjectOption();
        var warn = new Option<int?>("--warn-percent") { Description = "Warn at this share of the amount, 1–100 (default 80)" };
        var block = new Option<bool>("--block") { Description = "Refuse new servers once the amount is reached" };
        var o = output();
        var set = new Command("set", "Set a project's monthly budget") { amount, sp, warn, block, o };
        set.SetAction((r, ct) => api(r, async c =>
            PrintBudget(await c.SetBudgetAsync(new BudgetRequest(r.GetValue(sp), Dec(r.GetValue(amount)!, "amount"), r.GetValue(warn), r.GetValue(block)), ct), r.GetValue(o))));

        var dp = ProjectOption();
        var delete = new Command("delete", "Remove a project's budget") { dp };
        delete.SetAction((r, ct) => api(r, c => c.DeleteBudgetAsync(r.GetValue(dp), ct)));
        return new Command("budget", "Budgets per project: warn, optionally block new servers") { show, set, delete };
    }

    private static void PrintSheet(PriceSheetDto s, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(s);
            return;
        }
        Output.Fields([
            ("effective_from", s.EffectiveFrom.ToString("u", Output.Inv)), ("currency", s.Currency),
            ("vcpu_hour", Num(s.VcpuHour)), ("memory_gib_hour", Num(s.MemoryGibHour)), ("disk_gib_hour", Num(s.DiskGibHour)),
            ("flavor_hour", s.Flavors.Count == 0 ? null : string.Join(", ", s.Flavors.Select(f => $"{f.Flavor}={Num(f.Hour)}"))),
        ]);
    }

    private static void PrintBudget(BudgetDto b, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(b);
            return;
        }
        Output.Fields([
            ("project", b.Project), ("amount", $"{Num(b.Amount)} {b.Currency} per month"), ("warn_percent", b.WarnPercent.ToString(Output.Inv)),
            ("block", b.Block ? "yes" : "no"), ("period", $"{b.PeriodStart:u} – {b.PeriodEnd:u}"), ("spent", $"{Num(b.Spent)} {b.Currency}"),
            ("state", b.State), ("message", b.Message),
        ]);
    }

    /// <summary>One line for a budget under a usage table.</summary>
    public static string BudgetLine(BudgetDto b) =>
        $"budget {Num(b.Amount)} {b.Currency}: {b.State}" + (b.Message is { } m ? $" — {m}" : "");

    private static string Num(decimal d) => d.ToString(CultureInfo.InvariantCulture);

    private static string Hours(decimal seconds) => (seconds / 3600m).ToString("0.00", Output.Inv);

    private static decimal Dec(string s, string what) =>
        decimal.TryParse(s, NumberStyles.Number, CultureInfo.InvariantCulture, out var d) ? d
            : throw new StratusApiException(0, "bad_arguments", $"{what} '{s}' is not a number (use a dot for decimals)");
}
