namespace Stratus.Core.Billing;

/// <summary>
/// What usage costs, from <see cref="EffectiveFrom"/> until the next sheet takes over. Prices are per hour, in
/// <see cref="Currency"/>, billed by the second:
/// <list type="bullet">
/// <item>a running server of a flavor listed in <see cref="FlavorHour"/> pays that price per hour for its compute
/// (vCPUs and memory together); any other running server pays <see cref="VcpuHour"/> per vCPU and
/// <see cref="MemoryGibHour"/> per GiB of memory (MiB / 1024);</item>
/// <item>every billed server, running or stopped, pays <see cref="DiskGibHour"/> per GiB of disk — so a stopped
/// server is billed for its disk only.</item>
/// </list>
/// </summary>
/// <param name="FlavorHour">Price per flavor-hour by flavor name.</param>
public sealed record PriceSheet(
    string Currency,
    decimal VcpuHour,
    decimal MemoryGibHour,
    decimal DiskGibHour,
    IReadOnlyDictionary<string, decimal> FlavorHour,
    DateTimeOffset EffectiveFrom)
{
    /// <summary>Largest price per unit-hour accepted: beyond it a price is a typing mistake.</summary>
    public const decimal MaxPrice = 1_000_000m;

    /// <summary>Most decimal places a price may have.</summary>
    public const int MaxScale = 8;

    /// <summary>The sheet a new cloud starts with (in effect from the beginning of time).</summary>
    public static readonly PriceSheet Default = new("USD", 0.02m, 0.005m, 0.0001m, new Dictionary<string, decimal>(StringComparer.Ordinal), DateTimeOffset.UnixEpoch);

    /// <summary>Checks one price: not negative, at most <see cref="MaxPrice"/>, at most <see cref="MaxScale"/> decimals. Null when fine.</summary>
    public static string? CheckPrice(decimal? price) => price switch
    {
        null => "is required",
        < 0 => "must not be negative",
        > MaxPrice => $"must be at most {MaxPrice}",
        { } p when p.Scale > MaxScale && decimal.Round(p, MaxScale) != p => $"must have at most {MaxScale} decimal places",
        _ => null,
    };

    /// <summary>A currency is an ISO 4217 code: three capital letters.</summary>
    public static bool IsCurrency(string? code) => code is { Length: 3 } && code.All(c => c is >= 'A' and <= 'Z');

    /// <summary>The sheet in effect at <paramref name="at"/> among <paramref name="sheets"/> (sorted by <see cref="EffectiveFrom"/>); null before the first.</summary>
    public static PriceSheet? At(IReadOnlyList<PriceSheet> sheets, DateTimeOffset at)
    {
        PriceSheet? found = null;
        foreach (var s in sheets)
        {
            if (s.EffectiveFrom > at)
            {
                break;
            }
            found = s;
        }
        return found;
    }
}
