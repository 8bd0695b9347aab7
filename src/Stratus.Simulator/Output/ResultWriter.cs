using System.Globalization;
using System.Text;
using System.Text.Json;
using Stratus.Simulator.Engine;
using Stratus.Simulator.Scenarios;

namespace Stratus.Simulator.Output;

/// <summary>Writes a result as JSON, its time series as CSV and a hand-written SVG plot.</summary>
public static class ResultWriter
{
    /// <summary>Writes <c>NAME.json</c>, <c>NAME.csv</c> and <c>NAME.svg</c> into the directory.</summary>
    public static void Write(SimulationResult r, string outputDir)
    {
        Directory.CreateDirectory(outputDir);
        var baseName = Path.Combine(outputDir, r.Scenario);
        File.WriteAllText(baseName + ".json", JsonSerializer.Serialize(r, Scenario.JsonOptions));
        var ci = CultureInfo.InvariantCulture;
        var csv = new StringBuilder("time_s,active_hosts,lower_bound_hosts,power_w,sla_hosts_pct,migrations\n");
        foreach (var p in r.Series)
        {
            csv.AppendLine(ci, $"{p.TimeS:F1},{p.ActiveHosts},{p.LowerBoundHosts},{p.PowerW:F1},{p.SlaHostsPct:F2},{p.Migrations}");
        }
        File.WriteAllText(baseName + ".csv", csv.ToString());
        File.WriteAllText(baseName + ".svg", Svg(r));
    }

    /// <summary>An SVG with three stacked panels: active hosts vs lower bound, power, SLA.</summary>
    public static string Svg(SimulationResult r)
    {
        const int width = 900, panel = 180, margin = 50;
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(ci, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{(panel + margin) * 3 + margin}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.AppendLine(ci, $"<text x=\"{margin}\" y=\"20\" font-size=\"14\">{r.Scenario}: {r.EnergyKwh:F2} kWh, {r.Migrations} migrations, SLAV {r.SlavPct:F5} %</text>");
        var series = r.Series;
        var tMax = series.Count == 0 ? 1 : Math.Max(1, series[^1].TimeS);
        void Panel(int index, string title, string color, Func<SeriesPoint, double> f, string? color2 = null, Func<SeriesPoint, double>? f2 = null)
        {
            var top = margin + (index * (panel + margin));
            var max = 1.0;
            foreach (var p in series)
            {
                max = Math.Max(max, f(p));
                if (f2 is not null)
                {
                    max = Math.Max(max, f2(p));
                }
            }
            sb.AppendLine(ci, $"<rect x=\"{margin}\" y=\"{top}\" width=\"{width - (2 * margin)}\" height=\"{panel}\" fill=\"none\" stroke=\"#999\"/>");
            sb.AppendLine(ci, $"<text x=\"{margin}\" y=\"{top - 6}\">{title} (max {max:F1})</text>");
            void Line(Func<SeriesPoint, double> g, string c)
            {
                var pts = new StringBuilder();
                foreach (var p in series)
                {
                    var x = margin + (p.TimeS / tMax * (width - (2 * margin)));
                    var y = top + panel - (g(p) / max * panel);
                    pts.Append(ci, $"{x:F1},{y:F1} ");
                }
                sb.AppendLine(ci, $"<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.2\" points=\"{pts}\"/>");
            }
            Line(f, color);
            if (f2 is not null && color2 is not null)
            {
                Line(f2, color2);
            }
        }
        Panel(0, "active hosts (blue) vs analytic lower bound (grey)", "#1f77b4", p => p.ActiveHosts, "#888", p => p.LowerBoundHosts);
        Panel(1, "power (W)", "#d62728", p => p.PowerW);
        Panel(2, "hosts in SLA violation (%)", "#2ca02c", p => p.SlaHostsPct);
        sb.AppendLine(ci, $"<text x=\"{margin}\" y=\"{(panel + margin) * 3 + margin - 10}\">time: 0 .. {tMax / 3600:F1} h</text>");
        sb.AppendLine("</svg>");
        return sb.ToString();
    }
}
