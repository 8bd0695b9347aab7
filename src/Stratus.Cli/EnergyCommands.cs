using System.CommandLine;
using Stratus.Client;

namespace Stratus.Cli;

/// <summary>`energy report` and `consolidation status|pause|resume`.</summary>
public static class EnergyCommands
{
    public static Command Energy(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var day = new Option<string?>("--day") { Description = "UTC day YYYY-MM-DD (default: today, up to now)" };
        var o = output();
        var report = new Command("report", "Energy per host for one UTC day, from the hosts' power models and CPU use") { day, o };
        report.SetAction((r, ct) => api(r, async c =>
        {
            var e = await c.EnergyReportAsync(r.GetValue(day), ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(e);
                return;
            }
            Output.Table(["HOST", "STATE", "KWH", "CPU%", "METERED_H", "STANDBY_H", "UNMETERED_H", "IDLE_W", "MAX_W"],
                e.Hosts.Select(h => new[]
                {
                    h.Name, h.State, h.Kwh.ToString("0.000", Output.Inv), h.AverageCpuPercent.ToString("0.0", Output.Inv), h.MeteredHours.ToString("0.00", Output.Inv),
                    h.StandbyHours.ToString("0.00", Output.Inv), h.UnmeteredHours.ToString("0.00", Output.Inv), h.IdleWatts.ToString("0", Output.Inv), h.MaxWatts.ToString("0", Output.Inv),
                }));
            Console.Out.WriteLine(string.Create(Output.Inv, $"{e.Day}: {e.TotalKwh:0.000} kWh in total, {e.StandbyHours:0.00} host-hours in standby (until {e.Until:HH:mm} UTC)"));
        }));
        return new Command("energy", "Energy use of the hosts") { report };
    }

    public static Command Consolidation(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var o = output();
        var status = new Command("status", "The consolidation loop: policy, hosts in standby and the latest passes") { o };
        status.SetAction((r, ct) => api(r, async c =>
        {
            var s = await c.ConsolidationAsync(ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(s);
                return;
            }
            Output.Fields([
                ("enabled", s.Enabled ? (s.Paused ? "yes (paused)" : "yes") : "no (stratusd --consolidation)"),
                ("policy", s.Policy), ("power driver", s.PowerDriver), ("interval", $"{s.IntervalSeconds:0.#} s"),
                ("standby", s.Standby.Count == 0 ? "-" : string.Join(", ", s.Standby)),
            ]);
            Output.Table(["PASS", "TRIGGER", "TIME", "MOVES", "STARTED", "FINISHED", "FAILED", "SKIPPED", "STANDBY", "WOKEN"],
                s.Passes.Take(20).Select(p => new[]
                {
                    p.Pass.ToString(Output.Inv), p.Trigger, p.StartedAt.ToLocalTime().ToString("HH:mm:ss", Output.Inv), p.PlanMoves.ToString(Output.Inv),
                    p.Started.ToString(Output.Inv), p.Finished.ToString(Output.Inv), p.Failed.ToString(Output.Inv), p.Skipped.ToString(Output.Inv),
                    string.Join(",", p.HostsToStandby), string.Join(",", p.HostsWoken),
                }));
        }));
        var pause = new Command("pause", "Stop planning (running migrations finish; servers without room still wake standby hosts)");
        pause.SetAction((r, ct) => api(r, c => c.PauseConsolidationAsync(ct)));
        var resume = new Command("resume", "Plan again from the next interval");
        resume.SetAction((r, ct) => api(r, c => c.ResumeConsolidationAsync(ct)));
        return new Command("consolidation", "Consolidation of servers onto fewer hosts") { status, pause, resume };
    }
}
