using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`scaling-group create|list|show|set|delete|members|events|policy|schedule`.</summary>
public static class ScalingCommands
{
    public static Command ScalingGroup(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("scaling-group", "Groups of servers from one template, kept at a desired count and scaled by CPU policies and schedules");
        cmd.Subcommands.Add(Create(api, output));

        var o2 = output();
        var list = new Command("list", "List the project's scaling groups") { o2 };
        list.SetAction((r, ct) => api(r, async c => Print(await c.ListScalingGroupsAsync(ct), r.GetValue(o2))));
        cmd.Subcommands.Add(list);

        var sref = Ref();
        var o3 = output();
        var show = new Command("show", "Show a scaling group: bounds, status (and why), policies, schedules, latest events") { sref, o3 };
        show.SetAction((r, ct) => api(r, async c => Show(await c.GetScalingGroupAsync(r.GetValue(sref)!, ct), r.GetValue(o3))));
        cmd.Subcommands.Add(show);

        var uref = Ref();
        var min = new Option<int?>("--min") { Description = "Fewest members" };
        var max = new Option<int?>("--max") { Description = "Most members" };
        var desired = new Option<int?>("--desired") { Description = "Members wanted now (between min and max)" };
        var o4 = output();
        var set = new Command("set", "Change min, max or desired") { uref, min, max, desired, o4 };
        set.SetAction((r, ct) => api(r, async c =>
            Show(await c.UpdateScalingGroupAsync(r.GetValue(uref)!, new UpdateScalingGroupRequest(r.GetValue(min), r.GetValue(max), r.GetValue(desired)), ct), r.GetValue(o4))));
        cmd.Subcommands.Add(set);

        var dref = Ref();
        var delete = new Command("delete", "Delete a scaling group: its members are stopped, then deleted, then the group goes") { dref };
        delete.SetAction((r, ct) => api(r, async c =>
        {
            var g = await c.DeleteScalingGroupAsync(r.GetValue(dref)!, ct);
            Console.Out.WriteLine($"scaling group {g.Name} is being deleted ({g.Current + g.Draining} members to remove)");
        }));
        cmd.Subcommands.Add(delete);

        var mref = Ref();
        var o5 = output();
        var members = new Command("members", "The group's members: state, host, health, forwards") { mref, o5 };
        members.SetAction((r, ct) => api(r, async c =>
            Output.Objects(await c.ListScalingMembersAsync(r.GetValue(mref)!, ct), r.GetValue(o5), false, ["NAME", "ID", "STATE", "TASK", "HOST", "HEALTH", "FORWARDS"],
                m => [m.Name, m.Id, m.VmState, m.Task, m.HostId, m.HealthFailures > 0 ? $"{m.Health} ({m.HealthFailures})" : m.Health,
                    string.Join(",", m.Forwards.Select(f => $"127.0.0.1:{f.HostPort}->{f.GuestPort}"))])));
        cmd.Subcommands.Add(members);

        var eref = Ref();
        var o6 = output();
        var events = new Command("events", "What the group did or could not do, newest first") { eref, o6 };
        events.SetAction((r, ct) => api(r, async c =>
            Output.Objects(await c.ListScalingEventsAsync(r.GetValue(eref)!, ct), r.GetValue(o6), false, ["TIME", "KIND", "MESSAGE"],
                e => [e.At.ToLocalTime().ToString("HH:mm:ss", Output.Inv), e.Kind, e.Message])));
        cmd.Subcommands.Add(events);

        cmd.Subcommands.Add(Policy(api, output));
        cmd.Subcommands.Add(Schedule(api, output));
        return cmd;
    }

    private static Argument<string> Ref() => new("group") { Description = "Scaling group name or id" };

    private static Command Create(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var name = new Argument<string>("name") { Description = "Group name; members are NAME-1, NAME-2, …" };
        var flavor = new Option<string>("--flavor") { Required = true, Description = "Members' flavor" };
        var image = new Option<string>("--image") { Required = true, Description = "Members' image" };
        var min = new Option<int>("--min") { Description = "Fewest members (default 0)" };
        var max = new Option<int>("--max") { Required = true, Description = "Most members" };
        var desired = new Option<int?>("--desired") { Description = "Members wanted now (default min)" };
        var port = new Option<int?>("--port") { Description = "Health check: guest port answering HTTP (reached through the member's forward)" };
        var path = new Option<string?>("--health-path") { Description = "Health check: path to GET (default /)" };
        var grace = new Option<double?>("--health-grace") { Description = "Seconds a member is active before it is checked (default 60)" };
        var timeout = new Option<double?>("--health-timeout") { Description = "Seconds a check may take (default 2)" };
        var unhealthy = new Option<int?>("--unhealthy-after") { Description = "Consecutive failed checks before a member is replaced (default 3)" };
        var scaleIn = new Option<string?>("--scale-in") { Description = "Which members go first when shrinking: newest (default) or least-loaded" };
        var forward = new Option<int[]>("--forward") { Description = "Guest port every member forwards (repeatable)", AllowMultipleArgumentsPerToken = true };
        var above = new Option<double?>("--scale-out-above") { Description = "Policy: average CPU % above which the group grows" };
        var below = new Option<double?>("--scale-in-below") { Description = "Policy: average CPU % below which the group shrinks" };
        var window = new Option<double?>("--window") { Description = "Policies: seconds the average is taken over (default 300)" };
        var step = new Option<int>("--step") { Description = "Policies: members added or removed per action (default 1)", DefaultValueFactory = _ => 1 };
        var cooldown = new Option<double?>("--cooldown") { Description = "Policies: seconds after a change before the next (default 300)" };
        var key = new Option<string?>("--key") { Description = "Keypair for the members" };
        var warmup = new Option<double?>("--warmup") { Description = "Seconds a member is active before its CPU counts in policy averages (default 30)" };
        var o = output();
        var create = new Command("create", "Create a scaling group") { name, flavor, image, min, max, desired, port, path, grace, timeout, unhealthy, scaleIn, forward, above, below, window, step, cooldown, key, warmup, o };
        create.SetAction((r, ct) => api(r, async c =>
        {
            var policies = new List<ScalingPolicyDto?>();
            if (r.GetValue(above) is { } a)
            {
                policies.Add(new ScalingPolicyDto("scale-out", "above", a, r.GetValue(window), r.GetValue(step), r.GetValue(cooldown)));
            }
            if (r.GetValue(below) is { } b)
            {
                policies.Add(new ScalingPolicyDto("scale-in", "below", b, r.GetValue(window), -r.GetValue(step), r.GetValue(cooldown)));
            }
            var health = r.GetValue(port) is { } p ? new HealthCheckDto(p, r.GetValue(path), r.GetValue(grace), r.GetValue(timeout), r.GetValue(unhealthy)) : null;
            var g = await c.CreateScalingGroupAsync(new CreateScalingGroupRequest(r.GetValue(name), r.GetValue(flavor), r.GetValue(image), r.GetValue(min), r.GetValue(max), r.GetValue(desired))
            {
                Health = health,
                Policies = policies,
                ScaleIn = r.GetValue(scaleIn),
                Forwards = r.GetValue(forward) is { Length: > 0 } f ? f : null,
                KeyName = r.GetValue(key),
                WarmupSeconds = r.GetValue(warmup),
            }, ct);
            Show(g, r.GetValue(o));
        }));
        return create;
    }

    private static Command Policy(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("policy", "The group's CPU policies");
        var lref = Ref();
        var o = output();
        var list = new Command("list", "List the policies and scheduled changes") { lref, o };
        list.SetAction((r, ct) => api(r, async c =>
        {
            var p = await c.GetScalingPoliciesAsync(r.GetValue(lref)!, ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(p);
                return;
            }
            PrintPolicies(p);
        }));
        var aref = Ref();
        var pname = new Argument<string>("policy") { Description = "Policy name (an existing policy of that name is replaced)" };
        var above = new Option<double?>("--above") { Description = "Average CPU % above which it acts" };
        var below = new Option<double?>("--below") { Description = "Average CPU % below which it acts" };
        var adjust = new Option<int>("--adjust") { Required = true, Description = "Members to add (positive) or remove (negative)" };
        var window = new Option<double?>("--window") { Description = "Seconds the average is taken over (default 300)" };
        var cooldown = new Option<double?>("--cooldown") { Description = "Seconds after a change before any policy acts again (default 300)" };
        var add = new Command("set", "Add or replace a policy") { aref, pname, above, below, adjust, window, cooldown };
        add.SetAction((r, ct) => api(r, async c =>
        {
            var (op, threshold) = r.GetValue(above) is { } a ? ((string?)"above", (double?)a) : r.GetValue(below) is { } b ? ("below", b) : (null, null);
            var current = await c.GetScalingPoliciesAsync(r.GetValue(aref)!, ct);
            var policies = current.Policies.Where(p => p.Name != r.GetValue(pname))
                .Append(new ScalingPolicyDto(r.GetValue(pname), op, threshold, r.GetValue(window), r.GetValue(adjust), r.GetValue(cooldown))).ToList<ScalingPolicyDto?>();
            PrintPolicies(await c.SetScalingPoliciesAsync(r.GetValue(aref)!, new ScalingPoliciesRequest(policies, null), ct));
        }));
        var rref = Ref();
        var rname = new Argument<string>("policy") { Description = "Policy name" };
        var remove = new Command("remove", "Remove a policy") { rref, rname };
        remove.SetAction((r, ct) => api(r, async c =>
        {
            var current = await c.GetScalingPoliciesAsync(r.GetValue(rref)!, ct);
            PrintPolicies(await c.SetScalingPoliciesAsync(r.GetValue(rref)!,
                new ScalingPoliciesRequest(current.Policies.Where(p => p.Name != r.GetValue(rname)).ToList<ScalingPolicyDto?>(), null), ct));
        }));
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(add);
        cmd.Subcommands.Add(remove);
        return cmd;
    }

    private static Command Schedule(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var sref = Ref();
        var sname = new Argument<string>("name") { Description = "Name of the scheduled change" };
        var at = new Option<DateTimeOffset>("--at") { Required = true, Description = "When (RFC 3339, e.g. 2026-12-01T08:00:00Z)" };
        var min = new Option<int?>("--min") { Description = "New min" };
        var max = new Option<int?>("--max") { Description = "New max" };
        var desired = new Option<int?>("--desired") { Description = "New desired" };
        var add = new Command("add", "Schedule a capacity change") { sref, sname, at, min, max, desired };
        add.SetAction((r, ct) => api(r, async c =>
        {
            var current = await c.GetScalingPoliciesAsync(r.GetValue(sref)!, ct);
            var schedules = current.Schedules.Where(s => s.Name != r.GetValue(sname)).Select(s => s with { Applied = null })
                .Append(new ScheduledChangeDto(r.GetValue(sname), r.GetValue(at), r.GetValue(desired), r.GetValue(min), r.GetValue(max))).ToList<ScheduledChangeDto?>();
            PrintPolicies(await c.SetScalingPoliciesAsync(r.GetValue(sref)!, new ScalingPoliciesRequest(null, schedules), ct));
        }));
        _ = output;
        return new Command("schedule", "Scheduled capacity changes") { add };
    }

    private static void PrintPolicies(ScalingPoliciesDto p)
    {
        Output.Table(["POLICY", "WHEN", "WINDOW_S", "ADJUST", "COOLDOWN_S"], p.Policies.Select(x => new[]
        {
            x.Name, $"cpu {x.Operator} {x.Threshold?.ToString("0.#", Output.Inv)} %", x.WindowSeconds?.ToString("0.#", Output.Inv),
            x.Adjustment?.ToString("+0;-0", Output.Inv), x.CooldownSeconds?.ToString("0.#", Output.Inv),
        }));
        if (p.Schedules.Count > 0)
        {
            Output.Table(["SCHEDULE", "AT", "DESIRED", "MIN", "MAX", "APPLIED"], p.Schedules.Select(s => new[]
            {
                s.Name, s.At?.ToString("u", Output.Inv), s.Desired?.ToString(Output.Inv), s.Min?.ToString(Output.Inv), s.Max?.ToString(Output.Inv), s.Applied == true ? "yes" : "no",
            }));
        }
    }

    private static void Print(IReadOnlyList<ScalingGroupDto> list, string? format) =>
        Output.Objects(list, format, false, ["NAME", "ID", "MIN", "MAX", "DESIRED", "CURRENT", "STATUS", "FLAVOR", "IMAGE"],
            g => [g.Name, g.Id, g.Min.ToString(Output.Inv), g.Max.ToString(Output.Inv), g.Desired.ToString(Output.Inv), g.Current.ToString(Output.Inv), g.Status, g.Flavor, g.Image]);

    private static void Show(ScalingGroupDto g, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(g);
            return;
        }
        Output.Fields([
            ("name", g.Name), ("id", g.Id), ("flavor", g.Flavor), ("image", g.Image),
            ("min / max / desired", $"{g.Min} / {g.Max} / {g.Desired}"), ("members", g.Draining > 0 ? $"{g.Current} (+{g.Draining} leaving)" : g.Current.ToString(Output.Inv)),
            ("status", g.StatusReason is null ? g.Status : $"{g.Status}: {g.StatusReason}"), ("scale-in", g.ScaleIn), ("warmup", $"{g.WarmupSeconds:0.#} s"),
            ("health", g.Health is { } h ? $"GET :{h.Port}{h.Path} (grace {h.GraceSeconds:0.#} s, timeout {h.TimeoutSeconds:0.##} s, unhealthy after {h.UnhealthyThreshold})" : "none"),
            ("policies", g.Policies.Count == 0 ? "none" : string.Join("; ", g.Policies.Select(p =>
                $"{p.Name}: cpu {p.Operator} {p.Threshold:0.#} % over {p.WindowSeconds:0.#} s → {p.Adjustment:+0;-0} (cooldown {p.CooldownSeconds:0.#} s)"))),
            ("schedules", g.Schedules.Count == 0 ? "none" : string.Join("; ", g.Schedules.Select(s => $"{s.Name} at {s.At:u}{(s.Applied == true ? " (applied)" : "")}"))),
        ]);
        if (g.Events.Count > 0)
        {
            Console.Out.WriteLine();
            Output.Table(["TIME", "KIND", "MESSAGE"], g.Events.Take(10).Select(e => new[] { e.At.ToLocalTime().ToString("HH:mm:ss", Output.Inv), e.Kind, e.Message }));
        }
    }
}
