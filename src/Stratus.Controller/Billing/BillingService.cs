using System.Globalization;
using System.Text.RegularExpressions;
using Stratus.Core.Billing;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller.Billing;

/// <summary>Which projects exist.</summary>
public interface IProjectCatalog
{
    Task<bool> ExistsAsync(Guid project, CancellationToken cancellationToken);
}

/// <summary>The projects in the store.</summary>
public sealed class StoreProjectCatalog(IStateStore store) : IProjectCatalog
{
    public async Task<bool> ExistsAsync(Guid project, CancellationToken cancellationToken) => await store.GetProjectAsync(project, cancellationToken) is not null;
}

/// <summary>
/// Invoices, current usage, price sheets and budgets over the usage intervals the store keeps. Every method that reads a
/// project's data takes the project as its first argument (as the request gave it), so scoping it to the caller is one
/// change at the call site. Refused requests write nothing; validation reports every error at once.
/// </summary>
public sealed partial class BillingService(IStateStore store, TimeProvider time, IProjectCatalog projects)
{
    /// <summary>Largest budget accepted.</summary>
    public const decimal MaxBudget = 1_000_000_000m;

    // ---------------- invoices and usage ----------------

    /// <summary>
    /// A project's invoice for [<paramref name="from"/>, <paramref name="to"/>) — each YYYY-MM-DD (midnight UTC) or an
    /// ISO 8601 time with a zone — or for a calendar <paramref name="month"/> (YYYY-MM); the current month when none is given.
    /// </summary>
    public async Task<Outcome<Invoice>> InvoiceAsync(string? project, string? from, string? to, string? month, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var p = await ProjectAsync(project, errors, ct);
        DateTimeOffset start = default, end = default;
        if (month is not null)
        {
            if (from is not null || to is not null)
            {
                errors.Add(new("month", "invalid", "give month, or from and to, not both"));
            }
            else if (!TryParseMonth(month, out start))
            {
                errors.Add(new("month", "invalid", "must be YYYY-MM"));
            }
            else
            {
                end = start.AddMonths(1);
            }
        }
        else if (from is null && to is null)
        {
            (start, end) = BillingPeriod.MonthOf(time.GetUtcNow());
        }
        else
        {
            var fromOk = Time(from, "from", errors, out start);
            var toOk = Time(to, "to", errors, out end);
            if (fromOk && toOk && start >= end)
            {
                errors.Add(new("to", "out_of_range", $"must be after from ({start:u} is not before {end:u})"));
            }
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        return await InvoiceAsync(p, start, end, ct);
    }

    /// <summary>The invoice of a known project for [<paramref name="from"/>, <paramref name="to"/>), metered up to now.</summary>
    public async Task<Invoice> InvoiceAsync(Guid project, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        var intervals = await store.ListUsageAsync(project, from, to, ct);
        var sheets = await store.ListPriceSheetsAsync(ct);
        return InvoiceCalculator.Compute(project, from, to, time.GetUtcNow(), intervals, sheets);
    }

    /// <summary>The current calendar month so far: per server its running and stopped seconds and amount, the total, and the budget.</summary>
    public async Task<Outcome<UsageDto>> UsageAsync(string? project, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var p = await ProjectAsync(project, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var now = time.GetUtcNow();
        var (start, end) = BillingPeriod.MonthOf(now);
        var intervals = await store.ListUsageAsync(p, start, end, ct);
        var invoice = InvoiceCalculator.Compute(p, start, end, now, intervals, await store.ListPriceSheetsAsync(ct));
        var amounts = invoice.Lines.GroupBy(l => l.ServerId).ToDictionary(g => g.Key, g => g.Sum(l => l.Amount));
        var servers = intervals.GroupBy(i => i.InstanceId).Select(g =>
        {
            var latest = g.MaxBy(i => i.Start)!;
            decimal Seconds(UsageState s) => g.Where(i => i.State == s).Sum(i =>
            {
                var a = i.Start > start ? i.Start : start;
                var b = i.End is { } e && e < now ? e : now;
                return b > a ? (decimal)(b - a).Ticks / TimeSpan.TicksPerSecond : 0m;
            });
            return new UsageServerDto(g.Key.ToString(), latest.InstanceName, latest.FlavorName, latest.End is null ? Metering.Name(latest.State) : null,
                Seconds(UsageState.Running), Seconds(UsageState.Stopped), amounts.GetValueOrDefault(g.Key));
        }).OrderBy(s => s.ServerName, StringComparer.Ordinal).ThenBy(s => s.ServerId, StringComparer.Ordinal).ToList();
        var budget = await store.GetBudgetAsync(p, ct) is { } b ? new BudgetStatus(b, start, end, invoice.Total, invoice.Currency).ToDto() : null;
        return new UsageDto(p.ToString("D"), start, end, invoice.MeteredUntil, invoice.Currency, servers, invoice.Total, budget);
    }

    /// <summary>Checks (or, with <paramref name="repair"/>, repairs at now) the open usage intervals against the allocations ledger.</summary>
    public async Task<UsageReconciliationDto> ReconcileAsync(bool repair, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var found = await store.ReconcileUsageAsync(now, repair, ct);
        return new UsageReconciliationDto(now, repair && found.Count > 0,
            [.. found.Select(d => new UsageDiscrepancyDto(d.InstanceId.ToString(), d.InstanceName, UsageDiscrepancy.Name(d.Kind), d.Detail))]);
    }

    // ---------------- prices ----------------

    /// <summary>The sheet in effect now.</summary>
    public async Task<PriceSheet> CurrentPricesAsync(CancellationToken ct) =>
        PriceSheet.At(await store.ListPriceSheetsAsync(ct), time.GetUtcNow()) ?? PriceSheet.Default;

    public Task<IReadOnlyList<PriceSheet>> PriceHistoryAsync(CancellationToken ct) => store.ListPriceSheetsAsync(ct);

    /// <summary>
    /// Adds a price sheet from <c>effective_from</c> (default now; never in the past, so an invoice already issued never
    /// changes). Every price is required, not negative and at most <see cref="PriceSheet.MaxPrice"/>; flavors must exist.
    /// The currency can change only while no usage has been recorded (409 <c>currency_locked</c>).
    /// </summary>
    public async Task<Outcome<PriceSheet>> SetPricesAsync(PriceSheetRequest r, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var current = await CurrentPricesAsync(ct);
        var errors = new List<FieldError>();
        if (r.Currency is not null && !PriceSheet.IsCurrency(r.Currency))
        {
            errors.Add(new("currency", "invalid", "must be an ISO 4217 code: three capital letters, e.g. USD"));
        }
        Price(errors, "vcpu_hour", r.VcpuHour);
        Price(errors, "memory_gib_hour", r.MemoryGibHour);
        Price(errors, "disk_gib_hour", r.DiskGibHour);
        var flavors = new Dictionary<string, decimal>(StringComparer.Ordinal);
        for (var i = 0; i < (r.Flavors?.Count ?? 0); i++)
        {
            var f = r.Flavors![i];
            if (f is null || string.IsNullOrEmpty(f.Flavor))
            {
                errors.Add(new($"flavors[{i}].flavor", "required", "is required"));
                continue;
            }
            var flavor = Guid.TryParse(f.Flavor, out var g) ? await store.GetFlavorAsync(new(g), ct) : await store.FindFlavorAsync(f.Flavor, ct);
            if (flavor is null)
            {
                errors.Add(new($"flavors[{i}].flavor", "not_found", $"no flavor named or with id '{f.Flavor}'"));
            }
            else if (!flavors.TryAdd(flavor.Name, f.Hour))
            {
                errors.Add(new($"flavors[{i}].flavor", "duplicate", $"flavor '{flavor.Name}' is priced more than once"));
            }
            Price(errors, $"flavors[{i}].hour", f.Hour);
        }
        if (r.EffectiveFrom is { } e && e < now)
        {
            errors.Add(new("effective_from", "in_the_past", $"must not be before now ({now:u}): a price change never rewrites usage already counted"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var currency = r.Currency ?? current.Currency;
        if (currency != current.Currency && await store.AnyUsageAsync(ct))
        {
            return Problem.Conflict("currency_locked", $"usage is already billed in {current.Currency}; the currency cannot change");
        }
        var sheet = new PriceSheet(currency, r.VcpuHour!.Value, r.MemoryGibHour!.Value, r.DiskGibHour!.Value, flavors, r.EffectiveFrom ?? now);
        await store.SavePriceSheetAsync(sheet, now, ct);
        return sheet;
    }

    private static void Price(List<FieldError> errors, string field, decimal? value)
    {
        if (PriceSheet.CheckPrice(value) is { } problem)
        {
            errors.Add(new(field, value is null ? "required" : "out_of_range", problem));
        }
    }

    // ---------------- budgets ----------------

    /// <summary>A project's budget and this month's spending; 404 when it has none.</summary>
    public async Task<Outcome<BudgetStatus>> GetBudgetAsync(string? project, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var p = await ProjectAsync(project, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        return await BudgetStatusAsync(p, ct) is { } s ? s : new Problem("not_found", 404, "budget not found", $"project {p} has no budget");
    }

    /// <summary>Sets a project's monthly budget: amount ≥ 0 with at most two decimals, warn_percent 1–100 (default 80), block (default false).</summary>
    public async Task<Outcome<BudgetStatus>> SetBudgetAsync(BudgetRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var p = await ProjectAsync(r.Project, errors, ct);
        switch (r.Amount)
        {
            case null:
                errors.Add(new("amount", "required", "is required"));
                break;
            case < 0 or > MaxBudget:
                errors.Add(new("amount", "out_of_range", $"must be between 0 and {MaxBudget}"));
                break;
            case { } a when decimal.Round(a, 2) != a:
                errors.Add(new("amount", "invalid", "must be a whole number of cents (at most two decimals)"));
                break;
        }
        if (r.WarnPercent is < 1 or > 100)
        {
            errors.Add(new("warn_percent", "out_of_range", "must be between 1 and 100"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        await store.SetBudgetAsync(new Budget(p, r.Amount!.Value, r.WarnPercent ?? Budget.DefaultWarnPercent, r.Block ?? false, time.GetUtcNow()), ct);
        return (await BudgetStatusAsync(p, ct))!;
    }

    public async Task<Outcome<bool>> DeleteBudgetAsync(string? project, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var p = await ProjectAsync(project, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        return await store.DeleteBudgetAsync(p, ct) ? true : new Problem("not_found", 404, "budget not found", $"project {p} has no budget");
    }

    /// <summary>The project's budget against this month's invoice so far; null when it has no budget.</summary>
    public async Task<BudgetStatus?> BudgetStatusAsync(Guid project, CancellationToken ct)
    {
        if (await store.GetBudgetAsync(project, ct) is not { } budget)
        {
            return null;
        }
        var (start, end) = BillingPeriod.MonthOf(time.GetUtcNow());
        var invoice = await InvoiceAsync(project, start, end, ct);
        return new BudgetStatus(budget, start, end, invoice.Total, invoice.Currency);
    }

    /// <summary>Admission of a new server of <paramref name="project"/>: 409 <c>budget_exceeded</c> when its budget blocks, else null.</summary>
    public async Task<Problem?> AdmitServerAsync(Guid project, CancellationToken ct) =>
        await BudgetStatusAsync(project, ct) is { Blocks: true } s
            ? Problem.Conflict("budget_exceeded", $"{s.Message} (budget of project {project})")
            : null;

    /// <summary>The budget warning to show with a new server of <paramref name="project"/>, or null.</summary>
    public async Task<string?> BudgetWarningAsync(Guid project, CancellationToken ct) =>
        (await BudgetStatusAsync(project, ct))?.Message;

    // ---------------- parsing ----------------

    /// <summary>The project named by a request: its id as text; absent means the admin project. Adds an error when invalid or unknown.</summary>
    public async Task<Guid> ProjectAsync(string? text, List<FieldError> errors, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(text))
        {
            return Metering.AdminProjectId;
        }
        if (!Guid.TryParse(text, out var id))
        {
            errors.Add(new("project", "invalid", "must be a project id"));
            return Guid.Empty;
        }
        if (!await projects.ExistsAsync(id, ct))
        {
            errors.Add(new("project", "not_found", $"no project with id '{text}'"));
        }
        return id;
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")]
    private static partial Regex ZonedTime();

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}$")]
    private static partial Regex Day();

    [GeneratedRegex(@"^\d{4}-\d{2}$")]
    private static partial Regex Month();

    /// <summary>YYYY-MM-DD (midnight UTC) or an ISO 8601 time with a zone (Z or ±hh:mm).</summary>
    public static bool TryParseTime(string? s, out DateTimeOffset t)
    {
        t = default;
        if (s is null)
        {
            return false;
        }
        if (Day().IsMatch(s))
        {
            if (!DateOnly.TryParseExact(s, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d))
            {
                return false;
            }
            t = new DateTimeOffset(d.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            return true;
        }
        if (!ZonedTime().IsMatch(s) || !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out t))
        {
            return false;
        }
        t = t.ToUniversalTime();
        return true;
    }

    public static bool TryParseMonth(string s, out DateTimeOffset start)
    {
        start = default;
        return Month().IsMatch(s) && DateTimeOffset.TryParseExact(s + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out start);
    }

    private static bool Time(string? s, string field, List<FieldError> errors, out DateTimeOffset t)
    {
        if (s is null)
        {
            errors.Add(new(field, "required", "give both from and to (or month, or neither for the current month)"));
            t = default;
            return false;
        }
        if (!TryParseTime(s, out t))
        {
            errors.Add(new(field, "invalid", "must be YYYY-MM-DD (midnight UTC) or an ISO 8601 time with a zone, e.g. 2026-03-01T12:00:00Z"));
            return false;
        }
        return true;
    }
}
