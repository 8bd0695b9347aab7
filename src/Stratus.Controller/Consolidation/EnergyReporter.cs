using System.Globalization;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Scheduler.Consolidation;
using Stratus.Storage;

namespace Stratus.Controller.Consolidation;

/// <summary>A span during which a host was in standby.</summary>
public readonly record struct StandbySpan(DateTimeOffset From, DateTimeOffset To);

/// <summary>
/// Energy per host per UTC day from the host power models: each minute of the day with CPU samples counts at the
/// linear model's watts for that minute's mean CPU (idle + (max − idle) × CPU); a minute in standby counts at the
/// standby watts (standby wins: a simulated agent keeps reporting while "off"); a minute with neither is unmetered
/// and counts nothing. Watts come from the host's aggregate metadata (<c>power_idle_w</c>, <c>power_max_w</c>,
/// <c>power_standby_w</c>) or the options' defaults. Standby spans come from <see cref="PowerManager.History"/>
/// (memory only: after a controller restart a host found in standby counts as in standby since the start of the
/// span for which no transition is known).
/// </summary>
public sealed class EnergyReporter(IStateStore store, PowerManager power, ConsolidationOptions options, TimeProvider time)
{
    /// <summary>Idle, peak and standby watts of a host: the first of its aggregates that sets them, else the defaults.</summary>
    public static (double Idle, double Max, double Standby) WattsOf(Host host, IReadOnlyList<Aggregate> aggregates, ConsolidationOptions options)
    {
        double? Meta(string key)
        {
            foreach (var a in aggregates.Where(a => a.Hosts.Contains(host.Id)).OrderBy(a => a.Name, StringComparer.Ordinal))
            {
                if (a.Metadata.TryGetValue(key, out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && w >= 0 && double.IsFinite(w))
                {
                    return w;
                }
            }
            return null;
        }
        var idle = Meta("power_idle_w") ?? options.IdleWatts;
        var max = Math.Max(idle, Meta("power_max_w") ?? options.MaxWatts);
        return (idle, max, Meta("power_standby_w") ?? options.StandbyWatts);
    }

    /// <summary>Parses <c>day</c> (YYYY-MM-DD, default today UTC); a day in the future or unparsable is a validation problem.</summary>
    public Outcome<DateOnly> ParseDay(IEnumerable<KeyValuePair<string, string?>> query)
    {
        var errors = new List<FieldError>();
        string? day = null;
        foreach (var (k, v) in query)
        {
            if (k == "day")
            {
                day = v;
            }
            else
            {
                errors.Add(new FieldError(k, "unknown", "is not a known parameter (day)"));
            }
        }
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var d = today;
        if (day is not null)
        {
            if (!DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out d))
            {
                errors.Add(new FieldError("day", "invalid", "must be a UTC date YYYY-MM-DD"));
            }
            else if (d > today)
            {
                errors.Add(new FieldError("day", "out_of_range", "must not be in the future"));
            }
        }
        return errors.Count > 0 ? Problem.Validation(errors) : d;
    }

    /// <summary>The report for one UTC day (up to now when it is today).</summary>
    public async Task<EnergyReportDto> ReportAsync(DateOnly day, CancellationToken ct)
    {
        var from = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var now = time.GetUtcNow();
        var until = from.AddDays(1) < now ? from.AddDays(1) : now;
        var hosts = await store.ListHostsAsync(ct);
        var aggregates = await store.ListAggregatesAsync(ct);
        var history = power.History;
        var rows = new List<EnergyHostDto>();
        foreach (var h in hosts.OrderBy(h => h.Name, StringComparer.Ordinal))
        {
            var (idle, max, standbyW) = WattsOf(h, aggregates, options);
            var series = await store.QueryMetricsAsync(new MetricSeriesQuery(MetricKind.Host, h.Id.Value, from, until, MetricResolution.Auto), ct);
            var spans = StandbySpans(h, history, from, until);
            var e = Integrate(series, from, until, spans, new LinearPowerModel(idle, max), standbyW);
            rows.Add(new EnergyHostDto(h.Id.ToString(), h.Name, Core.Lifecycle.Names.Of(h.State), idle, max, standbyW, Math.Round(e.Kwh, 6),
                Math.Round(e.AverageCpuPercent, 3), Math.Round(e.MeteredHours, 6), Math.Round(e.StandbyHours, 6), Math.Round(e.UnmeteredHours, 6)));
        }
        return new EnergyReportDto(day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), from, until, Math.Round(rows.Sum(r => r.Kwh), 6),
            Math.Round(rows.Sum(r => r.StandbyHours), 6), rows);
    }

    /// <summary>A host's standby spans within [from, until) from the transitions (a host in standby with no transition: since <paramref name="from"/>).</summary>
    public static List<StandbySpan> StandbySpans(Host h, IReadOnlyList<PowerTransition> history, DateTimeOffset from, DateTimeOffset until)
    {
        var mine = history.Where(t => t.Host == h.Id).OrderBy(t => t.At).ToList();
        var spans = new List<StandbySpan>();
        // State at `from`: the last transition before it, else (nothing known) the first transition's opposite, else the current state.
        var before = mine.LastOrDefault(t => t.At <= from);
        bool inStandby;
        if (before is not null)
        {
            inStandby = before.Standby;
        }
        else if (mine.FirstOrDefault(t => t.At > from) is { } first)
        {
            inStandby = !first.Standby;
        }
        else
        {
            inStandby = h.State == HostState.Standby;
        }
        var start = from;
        foreach (var t in mine.Where(t => t.At > from && t.At < until))
        {
            if (inStandby && !t.Standby)
            {
                spans.Add(new StandbySpan(start, t.At));
            }
            if (!inStandby && t.Standby)
            {
                start = t.At;
            }
            inStandby = t.Standby;
        }
        if (inStandby)
        {
            spans.Add(new StandbySpan(start, until));
        }
        return spans;
    }

    /// <summary>Energy over [from, until) in one-minute steps (see the class summary).</summary>
    public static (double Kwh, double AverageCpuPercent, double MeteredHours, double StandbyHours, double UnmeteredHours) Integrate(
        MetricSeries series, DateTimeOffset from, DateTimeOffset until, IReadOnlyList<StandbySpan> standby, PowerModel model, double standbyWatts)
    {
        var minutes = (int)Math.Ceiling((until - from).TotalMinutes);
        var sum = new double[Math.Max(0, minutes)];
        var n = new double[sum.Length];
        foreach (var p in series.Points)
        {
            var first = (int)Math.Floor((p.At - from).TotalMinutes);
            var span = series.Resolution == MetricResolution.Hour ? 60 : 1;
            for (var m = first; m < first + span; m++)
            {
                if (m >= 0 && m < sum.Length)
                {
                    sum[m] += p.CpuPercent * Math.Max(1, p.Samples);
                    n[m] += Math.Max(1, p.Samples);
                }
            }
        }
        double wh = 0, cpu = 0, metered = 0, standbyMin = 0, unmetered = 0;
        for (var m = 0; m < sum.Length; m++)
        {
            var start = from.AddMinutes(m);
            var end = start.AddMinutes(1) < until ? start.AddMinutes(1) : until;
            var length = (end - start).TotalHours;
            var off = 0.0;
            foreach (var s in standby)
            {
                var a = s.From > start ? s.From : start;
                var b = s.To < end ? s.To : end;
                if (b > a)
                {
                    off += (b - a).TotalHours;
                }
            }
            off = Math.Min(off, length);
            wh += off * standbyWatts;
            standbyMin += off;
            var on = length - off;
            if (on <= 0)
            {
                continue;
            }
            if (n[m] > 0)
            {
                var u = sum[m] / n[m];
                wh += on * model.PowerAt(u / 100);
                cpu += u * on;
                metered += on;
            }
            else
            {
                unmetered += on;
            }
        }
        return (wh / 1000, metered > 0 ? cpu / metered : 0, metered, standbyMin, unmetered);
    }
}
