using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server ha`, `ha status` and `incident list|show`.</summary>
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

    public static Command Ha(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var cmd = new Command("ha", "High availability: the failover reserve kept by admission control");
        var tolerate = new Option<int?>("--tolerate") { Description = "What if: evaluate the reserve for this many host failures instead of stratusd's --ha-tolerate" };
        var o = outputOption();
        var status = new Command("status", "Show the failover reserve: slot size, each host's room, the worst failure, headroom") { tolerate, o };
        status.SetAction((r, ct) => api(r, async c =>
        {
            var s = await c.HaStatusAsync(r.GetValue(tolerate), ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(s);
                return;
            }
            var mode = s.Enforced ? "enforced" : s.Tolerate == 0 ? "off" : "what-if, not enforced";
            Console.Out.WriteLine($"admission control: tolerate {s.Tolerate} host failure{(s.Tolerate == 1 ? "" : "s")} ({mode})");
            Console.Out.WriteLine($"reserve: {(s.Ok ? "ok" : "SHORT")} — {s.Summary}");
            static string Size(HaSlotDto v) => $"{v.Vcpus.ToString("0.###", Output.Inv)} vCPU, {v.RamMib} MiB, {v.DiskGib} GiB disk";
            if (s.Slot is { } slot && s.LargestHa is { } largest)
            {
                Console.Out.WriteLine($"largest HA server: {Size(largest)}");
                Console.Out.WriteLine($"slot: {Size(slot)}{(s.SlotShape is { } shape ? $" (stretched to host {shape}'s shape)" : "")}");
                Console.Out.WriteLine($"headroom: {s.Headroom?.ToString(Output.Inv) ?? "unlimited"} more server(s) the size of the largest HA server");
                Output.Table(["HOST", "SLOTS", "FRACTIONAL"], s.Hosts.Select(h => new[] { h.Name, h.Slots.ToString(Output.Inv), h.SlotsFractional.ToString("0.##", Output.Inv) }));
                foreach (var (name, t) in new[] { ("whole slots", s.Whole), ("fractional", s.Fractional) })
                {
                    if (t is not null)
                    {
                        Console.Out.WriteLine($"{name}: losing {string.Join(", ", t.WorstFailure)} leaves {t.Room.ToString("0.##", Output.Inv)}, servers need {t.Demand.ToString("0.##", Output.Inv)} ({(t.Ok ? "ok" : "short")})");
                    }
                }
            }
            Console.Out.WriteLine($"fence command: {(s.FenceCommand ? $"on (timeout {s.FenceTimeoutSeconds.ToString("0.#", Output.Inv)} s)" : "off")}; open incidents: {s.OpenIncidents}");
        }));
        cmd.Subcommands.Add(status);
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
