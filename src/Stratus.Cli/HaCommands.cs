using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server ha` and `incident list|show`.</summary>
public static class HaCommands
{
    public static Command ServerHa(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var on = new Option<bool>("--on") { Description = "Protect the server (its disk must be on the shared pool)" };
        var off = new Option<bool>("--off") { Description = "Stop protecting it" };
        var priority = new Option<int?>("--priority") { Description = "Recovery order, higher first (0–1000)" };
        var o = outputOption();
        var cmd = new Command("ha", "Change a server's HA policy") { server, on, off, priority, o };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            if (r.GetValue(on) && r.GetValue(off))
            {
                throw new StratusApiException(0, "bad_arguments", "--on and --off exclude each other");
            }
            bool? ha = r.GetValue(on) ? true : r.GetValue(off) ? false : null;
            Output.Server(await c.SetHaAsync(r.GetValue(server)!, new HaRequest(ha, r.GetValue(priority)), ct), r.GetValue(o));
        }));
        return cmd;
    }

    public static Command Incident(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var cmd = new Command("incident", "Host failures and their recovery, as timelines");
        var lo = outputOption();
        var list = new Command("list", "List incidents, newest first") { lo };
        list.SetAction((r, ct) => api(r, async c =>
        {
            var items = await c.ListIncidentsAsync(ct);
            if (Output.IsJson(r.GetValue(lo)))
            {
                Output.Json(items);
                return;
            }
            Output.Table(["ID", "HOST", "STATE", "DETECTED", "CLOSED", "EVENTS"],
                items.Select(i => new[] { i.Id, i.HostName ?? i.HostId, i.State, i.DetectedAt.ToString("u", Output.Inv), i.ClosedAt?.ToString("u", Output.Inv) ?? "-", i.Timeline.Count.ToString(Output.Inv) }));
        }));
        var id = new Argument<string>("incident") { Description = "Incident id" };
        var so = outputOption();
        var show = new Command("show", "Show an incident's timeline: detected → fenced → each server restarted") { id, so };
        show.SetAction((r, ct) => api(r, async c =>
        {
            var i = await c.GetIncidentAsync(r.GetValue(id)!, ct);
            if (Output.IsJson(r.GetValue(so)))
            {
                Output.Json(i);
                return;
            }
            Console.Out.WriteLine($"incident {i.Id} on host {i.HostName ?? i.HostId}: {i.State}");
            foreach (var e in i.Timeline)
            {
                Console.Out.WriteLine($"  +{(e.At - i.DetectedAt).TotalSeconds,6:0.0} s  {e.Kind,-10} {e.Message}");
            }
        }));
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        return cmd;
    }
}
