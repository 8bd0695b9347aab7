using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server resize ID --flavor F [--live|--cold] [--plan]`, `server resize ID --confirm|--revert`.</summary>
public static class ResizeCommands
{
    public static Command ServerResize(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var flavor = new Option<string?>("--flavor") { Description = "Flavor to resize to (name or id)" };
        var live = new Option<bool>("--live") { Description = "Only live (refused with the reason when it cannot be live)" };
        var cold = new Option<bool>("--cold") { Description = "Cold: stop, change, start; then verify_resize until --confirm or --revert" };
        var planOnly = new Option<bool>("--plan") { Description = "Show the plan (live or cold, and why) without resizing" };
        var confirm = new Option<bool>("--confirm") { Description = "Keep a cold resize (verify_resize → active)" };
        var revert = new Option<bool>("--revert") { Description = "Undo a cold resize: the previous flavor exactly" };
        var o = outputOption();
        var cmd = new Command("resize", "Change a server's flavor: live where it can (hot-add, balloon, online disk growth), else cold")
        {
            server, flavor, live, cold, planOnly, confirm, revert, o,
        };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var reference = r.GetValue(server)!;
            var json = Output.IsJson(r.GetValue(o));
            if (r.GetValue(confirm) || r.GetValue(revert))
            {
                if (r.GetValue(confirm) && r.GetValue(revert))
                {
                    throw new StratusApiException(0, "bad_arguments", "--confirm and --revert exclude each other");
                }
                var done = r.GetValue(confirm) ? await c.ConfirmResizeAsync(reference, ct) : await c.RevertResizeAsync(reference, ct);
                Print(done, json);
                return;
            }
            if (r.GetValue(flavor) is not { } f)
            {
                throw new StratusApiException(0, "bad_arguments", "--flavor is required (or --confirm / --revert)");
            }
            if (r.GetValue(live) && r.GetValue(cold))
            {
                throw new StratusApiException(0, "bad_arguments", "--live and --cold exclude each other");
            }
            var mode = r.GetValue(live) ? "live" : r.GetValue(cold) ? "cold" : null;
            if (r.GetValue(planOnly))
            {
                var plan = await c.PlanResizeAsync(reference, f, mode, ct);
                if (json)
                {
                    Output.Json(plan);
                }
                else
                {
                    PrintPlan(plan);
                }
                return;
            }
            Print(await c.ResizeServerAsync(reference, new ResizeRequest(f, mode), ct), json);
        }));
        return cmd;
    }

    private static void PrintPlan(ResizePlanDto p)
    {
        Console.Out.WriteLine($"{p.From.Flavor} ({p.From.Vcpus} vCPU, {p.From.RamMib} MiB, {p.From.DiskGib} GiB) → {p.To.Flavor} ({p.To.Vcpus} vCPU, {p.To.RamMib} MiB, {p.To.DiskGib} GiB)");
        Console.Out.WriteLine($"mode: {p.Mode}{(p.MigrateTo is { } h ? $" after a move to {h}" : "")}{(p.Possible ? "" : $" — refused ({p.Refusal})")}");
        foreach (var s in p.Steps)
        {
            Console.Out.WriteLine($"  - {s}");
        }
    }

    private static void Print(ResizeResultDto d, bool json)
    {
        if (json)
        {
            Output.Json(d);
            return;
        }
        if (d.Plan is { } p)
        {
            PrintPlan(p);
        }
        foreach (var s in d.Detail)
        {
            Console.Out.WriteLine($"  · {s}");
        }
        Console.Out.WriteLine($"{d.State}: {d.Server.Name} is {d.Server.VmState}, {d.Server.Vcpus} vCPU, {d.Server.RamMib} MiB, {d.Server.DiskGib} GiB" +
            (d.GuestVisibleMs is { } ms ? $"; guest-visible after {ms} ms{(d.GuestVerified ? $" (guest reports {d.GuestCpus} CPUs, {d.GuestMemoryKib} KiB)" : " (not verified by the guest)")}" : "") +
            $"; {d.TotalMs} ms in all");
    }
}
