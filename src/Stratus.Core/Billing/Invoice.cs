using Stratus.Core.Ids;

namespace Stratus.Core.Billing;

/// <summary>What a line bills: compute per flavor-hour, or vCPU-hours and memory GiB-hours, and disk GiB-hours.</summary>
public enum BilledResource { Flavor, Vcpu, Memory, Disk }

/// <summary>
/// One invoice line: one server × one resource × one unit price over the period.
/// <see cref="Amount"/> = round(<see cref="UnitPrice"/> × <see cref="UnitSeconds"/> / 3600, 2), half away from zero.
/// </summary>
/// <param name="Flavor">The flavor (for a flavor line, the one priced; otherwise the server's flavor, the latest one in the period).</param>
/// <param name="Seconds">Wall-clock seconds the line covers (exact, possibly fractional).</param>
/// <param name="UnitSeconds">Units × seconds: vCPU-seconds, GiB-seconds or flavor-seconds (exact).</param>
public sealed record InvoiceLine(
    InstanceId ServerId,
    string ServerName,
    string Flavor,
    BilledResource Resource,
    decimal UnitPrice,
    decimal Seconds,
    decimal UnitSeconds,
    decimal Amount)
{
    /// <summary>Units × hours, rounded to 6 places for display (the amount is computed from the exact <see cref="UnitSeconds"/>).</summary>
    public decimal Quantity => decimal.Round(UnitSeconds / 3600m, 6, MidpointRounding.AwayFromZero);

    /// <summary>The unit a quantity counts: flavor-hour, vcpu-hour or gib-hour.</summary>
    public string Unit => Resource switch
    {
        BilledResource.Flavor => "flavor-hour",
        BilledResource.Vcpu => "vcpu-hour",
        _ => "gib-hour",
    };

    public static string Name(BilledResource r) => r switch
    {
        BilledResource.Flavor => "flavor",
        BilledResource.Vcpu => "vcpu",
        BilledResource.Memory => "memory",
        _ => "disk",
    };
}

/// <summary>A project's bill for [<see cref="From"/>, <see cref="To"/>): its lines and their sum.</summary>
/// <param name="MeteredUntil">Usage counts up to here: <see cref="To"/>, or the time of the request when the period is not over.</param>
public sealed record Invoice(Guid ProjectId, DateTimeOffset From, DateTimeOffset To, DateTimeOffset MeteredUntil, string Currency, IReadOnlyList<InvoiceLine> Lines)
{
    /// <summary>The sum of the lines, each already rounded to the cent, so the lines add up to the total exactly.</summary>
    public decimal Total => Lines.Sum(l => l.Amount) + 0.00m;

    /// <summary>True when the period is over (nothing can change it any more).</summary>
    public bool Final => MeteredUntil >= To;
}

/// <summary>
/// Prices usage intervals into an invoice. Pure: the same intervals, sheets and times give the same invoice.
/// <para>Each interval is clipped to [from, min(to, now)), an open one ends at now, and the rest is split where a new
/// price sheet takes effect. Each piece adds units × seconds (exact decimals: milli-vCPU / 1000, MiB / 1024, GiB) to the
/// line of its server, resource and unit price. A line's amount is rounded once, to the cent, half away from zero;
/// the total is the sum of the rounded lines.</para>
/// </summary>
public static class InvoiceCalculator
{
    public static Invoice Compute(Guid project, DateTimeOffset from, DateTimeOffset to, DateTimeOffset now,
        IEnumerable<UsageInterval> intervals, IReadOnlyList<PriceSheet> sheets)
    {
        var sorted = sheets.OrderBy(s => s.EffectiveFrom).ToList();
        var until = now < to ? now : to;
        var currency = (PriceSheet.At(sorted, from) ?? sorted.FirstOrDefault() ?? PriceSheet.Default).Currency;
        var lines = new Dictionary<(InstanceId, BilledResource, string, decimal), Accumulator>();
        var latestName = new Dictionary<InstanceId, (DateTimeOffset At, string Name, string Flavor)>();

        foreach (var i in intervals.Where(i => i.ProjectId == project))
        {
            var start = i.Start > from ? i.Start : from;
            var end = i.End ?? until;
            if (end > until)
            {
                end = until;
            }
            if (end <= start)
            {
                continue;
            }
            if (!latestName.TryGetValue(i.InstanceId, out var seen) || i.Start >= seen.At)
            {
                latestName[i.InstanceId] = (i.Start, i.InstanceName, i.FlavorName);
            }
            foreach (var (pieceStart, pieceEnd, sheet) in Pieces(start, end, sorted))
            {
                var seconds = (decimal)(pieceEnd - pieceStart).Ticks / TimeSpan.TicksPerSecond;
                if (i.State == UsageState.Running)
                {
                    if (sheet.FlavorHour.TryGetValue(i.FlavorName, out var flavorPrice))
                    {
                        Add(lines, i, BilledResource.Flavor, i.FlavorName, flavorPrice, seconds, 1m);
                    }
                    else
                    {
                        Add(lines, i, BilledResource.Vcpu, "", sheet.VcpuHour, seconds, i.Resources.MilliVcpus / 1000m);
                        Add(lines, i, BilledResource.Memory, "", sheet.MemoryGibHour, seconds, i.Resources.MemoryMib / 1024m);
                    }
                }
                Add(lines, i, BilledResource.Disk, "", sheet.DiskGibHour, seconds, i.Resources.DiskGib);
            }
        }

        var result = lines
            .Where(kv => kv.Value.UnitSeconds > 0)
            .Select(kv =>
            {
                var (id, resource, flavor, price) = kv.Key;
                var (_, name, latestFlavor) = latestName[id];
                // + 0.00m gives every amount two decimals (decimal keeps the larger scale): 12.30, not 12.3.
                var amount = decimal.Round(price * kv.Value.UnitSeconds / 3600m, 2, MidpointRounding.AwayFromZero) + 0.00m;
                return new InvoiceLine(id, name, resource == BilledResource.Flavor ? flavor : latestFlavor, resource, price, kv.Value.Seconds, kv.Value.UnitSeconds, amount);
            })
            .OrderBy(l => l.ServerName, StringComparer.Ordinal).ThenBy(l => l.ServerId.Value).ThenBy(l => l.Resource).ThenBy(l => l.Flavor, StringComparer.Ordinal).ThenBy(l => l.UnitPrice)
            .ToList();
        return new Invoice(project, from, to, until < from ? from : until, currency, result);
    }

    /// <summary>[start, end) cut where a sheet takes effect, each piece with the sheet in effect (the default before the first).</summary>
    private static IEnumerable<(DateTimeOffset Start, DateTimeOffset End, PriceSheet Sheet)> Pieces(DateTimeOffset start, DateTimeOffset end, List<PriceSheet> sheets)
    {
        var cursor = start;
        var sheet = PriceSheet.At(sheets, start) ?? PriceSheet.Default;
        foreach (var next in sheets.Where(s => s.EffectiveFrom > start && s.EffectiveFrom < end))
        {
            yield return (cursor, next.EffectiveFrom, sheet);
            cursor = next.EffectiveFrom;
            sheet = next;
        }
        yield return (cursor, end, sheet);
    }

    private static void Add(Dictionary<(InstanceId, BilledResource, string, decimal), Accumulator> lines, UsageInterval i, BilledResource r, string flavor, decimal price, decimal seconds, decimal units)
    {
        if (units == 0)
        {
            return;
        }
        var key = (i.InstanceId, r, flavor, price);
        if (!lines.TryGetValue(key, out var acc))
        {
            lines[key] = acc = new Accumulator();
        }
        acc.Seconds += seconds;
        acc.UnitSeconds += units * seconds;
    }

    private sealed class Accumulator
    {
        public decimal Seconds;
        public decimal UnitSeconds;
    }
}
