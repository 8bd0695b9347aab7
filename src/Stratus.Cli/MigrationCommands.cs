using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server migrate` and `host maintenance|enable`.</summary>
public static class MigrationCommands
{
    public static Command ServerMigrate(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var live = new Option<bool>("--live") { Description = "Live migration (the server keeps running); the default for running servers" };
        var cold = new Option<bool>("--cold") { Description = "Cold migration of a stopped server" };
        var host = new Option<string?>("--host") { Description = "Destination host (name or id); default: the scheduler chooses" };
        var wait = new Option<bool>("--wait") { Description = "Show a progress bar until the migration finishes" };
        var abort = new Option<bool>("--abort") { Description = "Abort the server's running migration (it stays on its source)" };
        var downtime = new Option<long?>("--max-downtime-ms") { Description = "Downtime limit for the final switch-over (QEMU's default: 300 ms)" };
        var converge = new Option<bool>("--auto-converge") { Description = "Throttle the guest's vCPUs if it dirties memory faster than it is sent" };
        var postcopy = new Option<bool>("--post-copy") { Description = "Switch to post-copy after the first pre-copy pass" };
        var bandwidth = new Option<long?>("--bandwidth-mibps") { Description = "Cap the migration stream (MiB/s)" };
        var o = outputOption();
        var cmd = new Command("migrate", "Move a server to another host: live while it runs, cold when stopped")
        {
            server, live, cold, host, wait, abort, downtime, converge, postcopy, bandwidth, o,
        };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var reference = r.GetValue(server)!;
            if (r.GetValue(abort))
            {
                Output.Server(await c.AbortMigrationAsync(reference, ct), r.GetValue(o));
                return;
            }
            if (r.GetValue(live) && r.GetValue(cold))
            {
                throw new StratusApiException(0, "bad_arguments", "--live and --cold exclude each other");
            }
            bool? mode = r.GetValue(live) ? true : r.GetValue(cold) ? false : null;
            var before = await c.GetServerAsync(reference, ct);
            var s = await c.MigrateServerAsync(reference, new MigrateRequest(r.GetValue(host), mode, r.GetValue(downtime),
                r.GetValue(converge) ? true : null, r.GetValue(postcopy) ? true : null, r.GetValue(bandwidth)), ct);
            if (r.GetValue(wait))
            {
                s = await WaitMigratedAsync(c, s.Id, before.HostId, ct);
            }
            Output.Server(s, r.GetValue(o));
        }));
        return cmd;
    }

    /// <summary>Polls the server, drawing its migration's progress on stderr, until the task ends.</summary>
    private static async Task<ServerDto> WaitMigratedAsync(StratusClient c, string id, string? source, CancellationToken ct)
    {
        var interactive = !Console.IsErrorRedirected;
        string? last = null;
        while (true)
        {
            var s = await c.GetServerAsync(id, ct);
            if (s.Task != "migrating")
            {
                if (interactive)
                {
                    Console.Error.WriteLine();
                }
                var actions = await c.ListActionsAsync(id, ct);
                var a = actions.LastOrDefault(x => x.Action is "live-migrate" or "migrate");
                if (a is { Result: "error" } || s.HostId == source)
                {
                    throw new StratusApiException(0, "migration_failed", $"migration of {s.Name} failed: {a?.Message ?? "rolled back"}");
                }
                Console.Error.WriteLine($"{s.Name}: now on {s.HostName ?? s.HostId}; {a?.Message}");
                return s;
            }
            if (s.Migration is { } m)
            {
                var frac = m.TotalBytes > 0 ? Math.Min(1.0, (double)m.TransferredBytes / m.TotalBytes) : 0;
                var bar = new string('#', (int)(frac * 30)).PadRight(30, '.');
                var line = $"{s.Name}: [{bar}] {frac * 100,3:0}% {m.Phase,-10} {m.TransferredBytes / 1048576.0,7:0.0} MiB  dirty {m.DirtyRateBytesPerSecond / 1048576.0:0.0} MiB/s  downtime~{m.ExpectedDowntimeMs} ms";
                if (interactive)
                {
                    Console.Error.Write("\r" + line);
                }
                else if (line != last)
                {
                    Console.Error.WriteLine(line);
                }
                last = line;
            }
            await Task.Delay(200, ct);
        }
    }

    public static IEnumerable<Command> HostCommands(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api)
    {
        var mh = new Argument<string>("host") { Description = "Host name or id" };
        var wait = new Option<bool>("--wait") { Description = "Wait until every server has moved away" };
        var maintenance = new Command("maintenance", "Stop placing servers on a host and live-migrate its servers away") { mh, wait };
        maintenance.SetAction((r, ct) => api(r, async c =>
        {
            var h = await c.MaintenanceAsync(r.GetValue(mh)!, ct);
            Console.Error.WriteLine($"host {h.Name}: {h.State}; moving its servers away");
            if (r.GetValue(wait))
            {
                var deadline = DateTime.UtcNow.AddMinutes(30);
                var last = -1;
                while (true)
                {
                    h = await c.GetHostAsync(h.Id, ct);
                    var moving = (await c.ListServersAsync(host: h.Id, ct: ct)).Count(s => s.Task == "migrating");
                    if (h.Servers != last)
                    {
                        Console.Error.WriteLine($"host {h.Name}: {h.Servers} server(s) left, {moving} migrating");
                        last = h.Servers;
                    }
                    if (moving == 0 && (h.Servers == 0 || DateTime.UtcNow > deadline))
                    {
                        break;
                    }
                    await Task.Delay(300, ct);
                }
                if (h.Servers > 0)
                {
                    throw new StratusApiException(0, "evacuation_incomplete", $"{h.Servers} server(s) could not leave host {h.Name}; see their action logs");
                }
            }
            Console.Out.WriteLine($"host {h.Name}: {h.State}, {h.Servers} server(s)");
        }));
        yield return maintenance;

        var eh = new Argument<string>("host") { Description = "Host name or id" };
        var enable = new Command("enable", "Return a host from maintenance to service") { eh };
        enable.SetAction((r, ct) => api(r, async c =>
        {
            var h = await c.EnableHostAsync(r.GetValue(eh)!, ct);
            Console.Out.WriteLine($"host {h.Name}: {h.State}");
        }));
        yield return enable;
    }
}
