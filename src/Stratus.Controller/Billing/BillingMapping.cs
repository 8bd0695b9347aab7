using System.Globalization;
using System.Text;
using Stratus.Core.Billing;
using Stratus.Core.Wire;

namespace Stratus.Controller.Billing;

/// <summary>Billing objects to the API's JSON objects, and an invoice as CSV.</summary>
public static class BillingMapping
{
    public static InvoiceDto ToDto(this Invoice i) => new(
        i.ProjectId.ToString("D"), i.From, i.To, i.MeteredUntil, i.Final, i.Currency,
        [.. i.Lines.Select(l => new InvoiceLineDto(l.ServerId.ToString(), l.ServerName, l.Flavor, InvoiceLine.Name(l.Resource), l.Unit,
            l.Seconds, l.Quantity, l.UnitPrice, l.Amount))],
        i.Total);

    public static PriceSheetDto ToDto(this PriceSheet s) => new(
        s.Currency, s.VcpuHour, s.MemoryGibHour, s.DiskGibHour,
        [.. s.FlavorHour.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new FlavorPriceDto(kv.Key, kv.Value))], s.EffectiveFrom);

    public static BudgetDto ToDto(this BudgetStatus s) => new(
        s.Budget.ProjectId.ToString("D"), s.Budget.Amount, s.Budget.WarnPercent, s.Budget.Block, s.PeriodStart, s.PeriodEnd,
        s.Spent, s.Currency, BudgetStatus.Name(s.State), s.Message, s.Budget.UpdatedAt);

    /// <summary>The CSV columns, in order.</summary>
    public const string CsvHeader = "project,from,to,server_id,server_name,flavor,resource,unit,seconds,quantity,unit_price,amount,currency";

    /// <summary>
    /// An invoice as CSV (RFC 4180, invariant numbers, UTC times): the header, one row per line, and a last row with
    /// resource <c>total</c> whose amount is the invoice total.
    /// </summary>
    public static string ToCsv(this Invoice i)
    {
        var sb = new StringBuilder();
        sb.Append(CsvHeader).Append("\r\n");
        var head = $"{i.ProjectId:D},{Utc(i.From)},{Utc(i.To)}";
        foreach (var l in i.Lines)
        {
            sb.Append(head).Append(',').Append(l.ServerId).Append(',').Append(Field(l.ServerName)).Append(',').Append(Field(l.Flavor)).Append(',')
              .Append(InvoiceLine.Name(l.Resource)).Append(',').Append(l.Unit).Append(',').Append(Num(l.Seconds)).Append(',').Append(Num(l.Quantity)).Append(',')
              .Append(Num(l.UnitPrice)).Append(',').Append(Num(l.Amount)).Append(',').Append(i.Currency).Append("\r\n");
        }
        sb.Append(head).Append(",,,,total,,,,,").Append(Num(i.Total)).Append(',').Append(i.Currency).Append("\r\n");
        return sb.ToString();
    }

    private static string Utc(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    private static string Num(decimal d) => d.ToString(CultureInfo.InvariantCulture);

    private static string Field(string s) =>
        s.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
}
