using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`aggregate …` and `host traits`: what operators set on the fleet for placement.</summary>
public static class InventoryCommands
{
    public static Command Aggregate(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("aggregate", "Host aggregates: sets of hosts with metadata and an availability zone");
        Option<string[]> Props() => new("--property") { Description = "KEY=VALUE metadata, repeatable" };
        void Print(IReadOnlyList<AggregateDto> list, string? format, bool single) =>
            Output.Objects(list, format, single, ["ID", "NAME", "ZONE", "HOSTS", "METADATA"],
                a => [a.Id, a.Name, a.Zone, a.Hosts.Count.ToString(Output.Inv), string.Join(",", a.Metadata.Select(kv => $"{kv.Key}={kv.Value}"))]);

        var name = new Argument<string>("name") { Description = "Aggregate name" };
        var zone = new Option<string?>("--zone") { Description = "Availability zone of its hosts" };
        var props = Props();
        var o1 = output();
        var create = new Command("create", "Create an aggregate") { name, zone, props, o1 };
        create.SetAction((r, ct) => api(r, async c =>
            Print([await c.CreateAggregateAsync(new AggregateRequest(r.GetValue(name), r.GetValue(zone), ParseProps(r.GetValue(props))), ct)], r.GetValue(o1), true)));

        var o2 = output();
        var list = new Command("list", "List aggregates") { o2 };
        list.SetAction((r, ct) => api(r, async c => Print(await c.ListAggregatesAsync(ct), r.GetValue(o2), false)));

        var sref = new Argument<string>("aggregate") { Description = "Aggregate name or id" };
        var o3 = output();
        var show = new Command("show", "Show an aggregate") { sref, o3 };
        show.SetAction((r, ct) => api(r, async c => Print([await c.GetAggregateAsync(r.GetValue(sref)!, ct)], r.GetValue(o3), true)));

        var setRef = new Argument<string>("aggregate") { Description = "Aggregate name or id" };
        var setZone = new Option<string?>("--zone") { Description = "New availability zone" };
        var setProps = Props();
        var o4 = output();
        var set = new Command("set", "Change an aggregate's zone or metadata (metadata given replaces the old)") { setRef, setZone, setProps, o4 };
        set.SetAction((r, ct) => api(r, async c =>
        {
            var p = r.GetValue(setProps) is { Length: > 0 } given ? ParseProps(given) : null;
            Print([await c.UpdateAggregateAsync(r.GetValue(setRef)!, new AggregateRequest(null, r.GetValue(setZone), p), ct)], r.GetValue(o4), true);
        }));

        foreach (var (verb, member) in new[] { ("add-host", true), ("remove-host", false) })
        {
            var aref = new Argument<string>("aggregate") { Description = "Aggregate name or id" };
            var href = new Argument<string>("host") { Description = "Host name or id" };
            var o = output();
            var c2 = new Command(verb, member ? "Add a host to an aggregate" : "Remove a host from an aggregate") { aref, href, o };
            c2.SetAction((r, ct) => api(r, async c => Print([member
                ? await c.AddAggregateHostAsync(r.GetValue(aref)!, r.GetValue(href)!, ct)
                : await c.RemoveAggregateHostAsync(r.GetValue(aref)!, r.GetValue(href)!, ct)], r.GetValue(o), true)));
            cmd.Subcommands.Add(c2);
        }

        var dref = new Argument<string>("aggregate") { Description = "Aggregate name or id" };
        var delete = new Command("delete", "Delete an empty aggregate") { dref };
        delete.SetAction((r, ct) => api(r, async c =>
        {
            await c.DeleteAggregateAsync(r.GetValue(dref)!, ct);
            Console.Out.WriteLine($"aggregate {r.GetValue(dref)} deleted");
        }));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(set);
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    /// <summary>`host traits HOST [TRAIT…]`: replaces a host's traits (none clears them).</summary>
    public static Command HostTraits(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api)
    {
        var host = new Argument<string>("host") { Description = "Host name or id" };
        var traits = new Argument<string[]>("traits") { Arity = ArgumentArity.ZeroOrMore, Description = "Traits such as CUSTOM_SSD (A-Z, 0-9, _)" };
        var cmd = new Command("traits", "Set a host's traits (replaces them; none clears)") { host, traits };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var h = await c.SetHostTraitsAsync(r.GetValue(host)!, r.GetValue(traits) ?? [], ct);
            Console.Out.WriteLine($"{h.Name}: {(h.Traits.Count == 0 ? "no traits" : string.Join(", ", h.Traits))}");
        }));
        return cmd;
    }

    private static Dictionary<string, string>? ParseProps(string[]? props)
    {
        if (props is null || props.Length == 0)
        {
            return null;
        }
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in props)
        {
            var i = p.IndexOf('=', StringComparison.Ordinal);
            if (i <= 0)
            {
                throw new StratusApiException(0, "invalid_property", $"--property '{p}' must be KEY=VALUE");
            }
            d[p[..i]] = p[(i + 1)..];
        }
        return d;
    }
}
