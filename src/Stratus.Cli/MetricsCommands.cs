using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server stats` and `host stats`: resource use over time, as a table with a one-line summary or as JSON.</summary>
public static class MetricsCommands
{
    public static Command ServerStats(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output) =>
        Stats("server", "Server name or id", "Show a server's CPU, memory, disk and network use over time", api, output,
            (c, r, since, until, res, ct) => c.ServerStatsAsync(r, since, until, res, ct));

    public static Command HostStats(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output) =>
        Stats("host", "Host name or id", "Show a host's CPU, memory and disk use over time", api, output,
            (c, r, since, until, res, ct) => c.HostStatsAsync(r, since, until, res, ct));

    private static Command Stats(string what, string help, string description, Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output,
        Func<StratusClient, string, string?, string?, string?, CancellationToken, Task<StatsDto>> fetch)
    {
        var reference = new Argument<string>(what) { Description = help };
        var since = new Option<string>("--since") { Description = "Start: a duration before now (90s, 15m, 2h, 7d) or an ISO 8601 time", DefaultValueFactory = _ => "15m" };
        var until = new Option<string?>("--until") { Description = "End: a duration before now or an ISO 8601 time (default: now)" };
        var resolution = new Option<string>("--resolution") { Description = "raw, 1m, 1h or auto (the finest tier that covers the window)", DefaultValueFactory = _ => "auto" };
        resolution.AcceptOnlyFromAmong("raw", "1m", "1h", "auto");
        var o = output();
        var cmd = new Command("stats", description) { reference, since, until, resolution, o };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var s = await fetch(c, r.GetValue(reference)!, r.GetValue(since), r.GetValue(until), r.GetValue(resolution), ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(s);
                return;
            }
            Print(s);
        }));
        return cmd;
    }

    /// <summary>The table (one row per point) and a summary line of average and peak CPU over the window.</summary>
    public static void Print(StatsDto s)
    {
        var host = s.Kind == "host";
        string[] headers = host
            ? ["TIME", "CPU%", "CPU_MAX%", "MEM_MIB", "DISK_USED_GIB", "SAMPLES"]
            : ["TIME", "CPU%", "CPU_MAX%", "MEM_MIB", "DISK_R/S", "DISK_W/S", "NET_RX/S", "NET_TX/S", "SAMPLES"];
        var time = s.Resolution == "raw" ? "HH:mm:ss" : "MM-dd HH:mm";
        Output.Table(headers, s.Points.Select(p => host
            ? new[] { Local(p.At, time), Pct(p.CpuPercent), Pct(p.CpuMaxPercent), N(p.MemoryUsedMib), N(p.DiskUsedGib ?? 0), N(p.Samples) }
            : [Local(p.At, time), Pct(p.CpuPercent), Pct(p.CpuMaxPercent), N(p.MemoryUsedMib), Bytes(p.DiskReadBps), Bytes(p.DiskWriteBps), Bytes(p.NetRxBps), Bytes(p.NetTxBps), N(p.Samples)]));
        Console.Out.WriteLine(Summary(s));
    }

    /// <summary>"web-1: 42 points (raw) since 12:00:00; cpu avg 31.5 %, max 88.0 %; latest 40.2 % at 12:14:50".</summary>
    public static string Summary(StatsDto s)
    {
        var window = $"{s.Name}: {s.Points.Count} points ({s.Resolution}) from {Local(s.Since, "yyyy-MM-dd HH:mm:ss")} to {Local(s.Until, "HH:mm:ss")}";
        var samples = s.Points.Sum(p => p.Samples);
        var stats = samples == 0
            ? "no samples in this window"
            : $"cpu avg {Pct(s.Points.Sum(p => p.CpuPercent * p.Samples) / samples)} %, max {Pct(s.Points.Max(p => p.CpuMaxPercent))} %";
        var latest = s.Latest is { } l ? $"; latest {Pct(l.CpuPercent)} % at {Local(l.At, "HH:mm:ss")}" : "";
        return $"{window}; {stats}{latest}";
    }

    private static string Local(DateTimeOffset t, string format) => t.ToLocalTime().ToString(format, Output.Inv);

    private static string Pct(double p) => p.ToString("0.0", Output.Inv);

    private static string N(long n) => n.ToString(Output.Inv);

    /// <summary>A rate in bytes per second, shortened: 512, 12.3K, 4.5M, 1.2G.</summary>
    private static string Bytes(long b) => b switch
    {
        < 1024 => b.ToString(Output.Inv),
        < 1024 * 1024 => (b / 1024.0).ToString("0.#", Output.Inv) + "K",
        < 1024L * 1024 * 1024 => (b / (1024.0 * 1024)).ToString("0.#", Output.Inv) + "M",
        _ => (b / (1024.0 * 1024 * 1024)).ToString("0.#", Output.Inv) + "G",
    };
}
