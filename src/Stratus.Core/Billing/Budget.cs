namespace Stratus.Core.Billing;

/// <summary>
/// A project's spending limit per calendar month (UTC), in the price sheet's currency.
/// </summary>
/// <param name="WarnPercent">Warn once the month's spending reaches this share of <see cref="Amount"/> (1–100).</param>
/// <param name="Block">Refuse new servers once the spending reaches <see cref="Amount"/>.</param>
public sealed record Budget(Guid ProjectId, decimal Amount, int WarnPercent, bool Block, DateTimeOffset UpdatedAt)
{
    public const int DefaultWarnPercent = 80;

    /// <summary>Where the month's spending stands against this budget.</summary>
    public BudgetState StateFor(decimal spent) =>
        spent >= Amount ? BudgetState.Exceeded
        : spent >= Amount * WarnPercent / 100m ? BudgetState.Warning
        : BudgetState.Ok;
}

/// <summary>Ok; Warning (at or over the warning threshold); Exceeded (the amount is reached).</summary>
public enum BudgetState { Ok, Warning, Exceeded }

/// <summary>A budget against the current month's spending (the invoice so far).</summary>
public sealed record BudgetStatus(Budget Budget, DateTimeOffset PeriodStart, DateTimeOffset PeriodEnd, decimal Spent, string Currency)
{
    public BudgetState State => Budget.StateFor(Spent);

    /// <summary>True when new servers of the project are refused.</summary>
    public bool Blocks => Budget.Block && State == BudgetState.Exceeded;

    /// <summary>One sentence for people: null while the spending is under the warning threshold.</summary>
    public string? Message => State switch
    {
        BudgetState.Exceeded => $"the project has spent {Spent:0.00} {Currency} this month, reaching its budget of {Budget.Amount:0.00} {Currency}" +
            (Budget.Block ? "; new servers are refused" : ""),
        BudgetState.Warning => $"the project has spent {Spent:0.00} {Currency} this month, {Percent:0}% of its budget of {Budget.Amount:0.00} {Currency}",
        _ => null,
    };

    private decimal Percent => Budget.Amount == 0 ? 100 : Spent * 100m / Budget.Amount;

    public static string Name(BudgetState s) => s switch { BudgetState.Ok => "ok", BudgetState.Warning => "warning", _ => "exceeded" };
}

/// <summary>Billing periods: calendar months in UTC.</summary>
public static class BillingPeriod
{
    /// <summary>The month [start, end) that contains <paramref name="at"/>.</summary>
    public static (DateTimeOffset Start, DateTimeOffset End) MonthOf(DateTimeOffset at)
    {
        var u = at.ToUniversalTime();
        var start = new DateTimeOffset(u.Year, u.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return (start, start.AddMonths(1));
    }
}
