namespace Stratus.Core.Wire;

// Metering and billing: /v1/invoices, /v1/usage, /v1/prices, /v1/budgets. Money is a JSON number read as a decimal.

/// <summary>One invoice line: one server × one resource × one unit price. <c>amount</c> = round(unit_price × unit-seconds / 3600) to the cent.</summary>
/// <param name="Resource">flavor, vcpu, memory or disk.</param>
/// <param name="Unit">flavor-hour, vcpu-hour or gib-hour.</param>
/// <param name="Seconds">Wall-clock seconds the line covers.</param>
/// <param name="Quantity">Units × hours, rounded to 6 places (the amount is computed from the exact value).</param>
public sealed record InvoiceLineDto(string ServerId, string ServerName, string Flavor, string Resource, string Unit, decimal Seconds, decimal Quantity, decimal UnitPrice, decimal Amount);

/// <summary>GET /v1/invoices: a project's bill for [from, to).</summary>
/// <param name="MeteredUntil">Usage is counted up to here (the request's time while the period runs).</param>
/// <param name="Final">True once the period is over.</param>
/// <param name="Total">The sum of the lines' amounts.</param>
public sealed record InvoiceDto(string Project, DateTimeOffset From, DateTimeOffset To, DateTimeOffset MeteredUntil, bool Final, string Currency,
    IReadOnlyList<InvoiceLineDto> Lines, decimal Total);

/// <summary>One server's use in the current month.</summary>
/// <param name="State">What it is billed for now: running, stopped, or null (not billed now).</param>
public sealed record UsageServerDto(string ServerId, string ServerName, string Flavor, string? State, decimal RunningSeconds, decimal StoppedSeconds, decimal Amount);

/// <summary>GET /v1/usage: the current month so far, per server, with the budget.</summary>
public sealed record UsageDto(string Project, DateTimeOffset From, DateTimeOffset To, DateTimeOffset MeteredUntil, string Currency,
    IReadOnlyList<UsageServerDto> Servers, decimal Total, BudgetDto? Budget);

/// <summary>The price per flavor-hour of one flavor (its compute: vCPUs and memory).</summary>
public sealed record FlavorPriceDto(string Flavor, decimal Hour);

/// <summary>A price sheet (GET /v1/prices: the one in effect now).</summary>
public sealed record PriceSheetDto(string Currency, decimal VcpuHour, decimal MemoryGibHour, decimal DiskGibHour, IReadOnlyList<FlavorPriceDto> Flavors, DateTimeOffset EffectiveFrom);

/// <summary>PUT /v1/prices: a new sheet, from <c>effective_from</c> (default: now; never in the past).</summary>
public sealed record PriceSheetRequest(string? Currency, decimal? VcpuHour, decimal? MemoryGibHour, decimal? DiskGibHour, IReadOnlyList<FlavorPriceDto>? Flavors, DateTimeOffset? EffectiveFrom);

/// <summary>PUT /v1/budgets: a project's monthly budget.</summary>
/// <param name="Project">Project id (default: the admin project).</param>
/// <param name="WarnPercent">Warn at this share of the amount, 1–100 (default 80).</param>
/// <param name="Block">Refuse new servers once the amount is reached (default false).</param>
public sealed record BudgetRequest(string? Project, decimal? Amount, int? WarnPercent, bool? Block);

/// <summary>A budget and where this month's spending stands.</summary>
/// <param name="State">ok, warning or exceeded.</param>
/// <param name="Message">One sentence while the state is not ok.</param>
public sealed record BudgetDto(string Project, decimal Amount, int WarnPercent, bool Block, DateTimeOffset PeriodStart, DateTimeOffset PeriodEnd,
    decimal Spent, string Currency, string State, string? Message, DateTimeOffset UpdatedAt);

/// <summary>One disagreement between the open usage intervals and the allocations ledger.</summary>
/// <param name="Kind">missing, orphan, mismatch or duplicate.</param>
public sealed record UsageDiscrepancyDto(string ServerId, string ServerName, string Kind, string Detail);

/// <summary>GET (check) or POST (repair) /v1/usage/reconcile.</summary>
public sealed record UsageReconciliationDto(DateTimeOffset CheckedAt, bool Repaired, IReadOnlyList<UsageDiscrepancyDto> Discrepancies);
