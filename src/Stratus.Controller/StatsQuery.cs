using System.Globalization;
using System.Text.RegularExpressions;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>The window and resolution of a stats request, parsed and validated.</summary>
public sealed record StatsWindow(DateTimeOffset Since, DateTimeOffset Until, MetricResolution Resolution);

/// <summary>
/// Parses the query of <c>GET …/stats</c>: <c>since</c> and <c>until</c> are ISO 8601 times or durations before now
/// (<c>90s</c>, <c>15m</c>, <c>2h</c>, <c>7d</c>); <c>resolution</c> is raw, 1m, 1h or auto. Every error is reported at once.
/// </summary>
public static partial class StatsQuery
{
    /// <summary>Window when <c>since</c> is not given.</summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromHours(1);

    /// <summary>Longest look back accepted (beyond it nothing is kept anyway).</summary>
    public static readonly TimeSpan MaxLookBack = TimeSpan.FromDays(5 * 365);

    public static readonly IReadOnlyList<string> Keys = ["since", "until", "resolution"];

    [GeneratedRegex(@"^([0-9]{1,9})(s|m|h|d)$")]
    private static partial Regex DurationPattern();

    public static Outcome<StatsWindow> Parse(IEnumerable<KeyValuePair<string, string?>> query, DateTimeOffset now)
    {
        var errors = new List<FieldError>();
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (k, v) in query)
        {
            if (!Keys.Contains(k))
            {
                errors.Add(new FieldError(k, "unknown", "is not a known parameter (since, until, resolution)"));
            }
            else
            {
                values[k] = v;
            }
        }
        var until = Time("until", values.GetValueOrDefault("until"), now, now, errors);
        var since = Time("since", values.GetValueOrDefault("since"), now - DefaultWindow, now, errors);
        var resolution = MetricResolution.Auto;
        if (values.GetValueOrDefault("resolution") is { } r)
        {
            if (ParseResolution(r) is { } parsed)
            {
                resolution = parsed;
            }
            else
            {
                errors.Add(new FieldError("resolution", "invalid", "must be raw, 1m, 1h or auto"));
            }
        }
        if (since is { } s && until is { } u && s >= u)
        {
            errors.Add(new FieldError("since", "out_of_range", "must be before until"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        return new StatsWindow(since!.Value, until!.Value, resolution);
    }

    /// <summary>raw, 1m, 1h or auto; null for anything else.</summary>
    public static MetricResolution? ParseResolution(string s) => s switch
    {
        "raw" => MetricResolution.Raw,
        "1m" => MetricResolution.Minute,
        "1h" => MetricResolution.Hour,
        "auto" => MetricResolution.Auto,
        _ => null,
    };

    /// <summary>The wire name of a resolution.</summary>
    public static string Name(MetricResolution r) => r switch
    {
        MetricResolution.Raw => "raw",
        MetricResolution.Minute => "1m",
        MetricResolution.Hour => "1h",
        _ => "auto",
    };

    private static DateTimeOffset? Time(string field, string? text, DateTimeOffset fallback, DateTimeOffset now, List<FieldError> errors)
    {
        if (text is null)
        {
            return fallback;
        }
        DateTimeOffset t;
        if (DurationPattern().Match(text) is { Success: true } m)
        {
            var n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            var span = m.Groups[2].Value switch
            {
                "s" => TimeSpan.FromSeconds(Math.Min(n, (long)MaxLookBack.TotalSeconds + 1)),
                "m" => TimeSpan.FromMinutes(Math.Min(n, (long)MaxLookBack.TotalMinutes + 1)),
                "h" => TimeSpan.FromHours(Math.Min(n, (long)MaxLookBack.TotalHours + 1)),
                _ => TimeSpan.FromDays(Math.Min(n, (long)MaxLookBack.TotalDays + 1)),
            };
            if (span > MaxLookBack)
            {
                errors.Add(new FieldError(field, "out_of_range", "must be at most 5 years back"));
                return null;
            }
            t = now - span;
        }
        else if (text.Length is > 0 and <= 64 && char.IsAsciiDigit(text[0])
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out t))
        {
            if (t < now - MaxLookBack || t > now + TimeSpan.FromDays(1))
            {
                errors.Add(new FieldError(field, "out_of_range", "must be within the last 5 years and at most a day ahead"));
                return null;
            }
        }
        else
        {
            errors.Add(new FieldError(field, "invalid", "must be an ISO 8601 time (2026-01-01T12:00:00Z) or a duration before now (90s, 15m, 2h, 7d)"));
            return null;
        }
        return t;
    }
}
