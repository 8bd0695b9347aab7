using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>The `stratus` command tree. API commands go through <see cref="StratusClient"/> only.</summary>
public static class Commands
{
    private static readonly Option<string?> Url = new("--url") { Description = "Controller address (default: $STRATUS_URL, then http://127.0.0.1:7300)", Recursive = true };

    private static readonly Option<string?> Token = new("--token") { Description = "Bearer credential (default: $STRATUS_TOKEN, then the `login` token for the URL, then the admin credential `up` recorded for it)", Recursive = true };

    /// <summary>The controller URL this invocation talks to.</summary>
    public static Uri UrlOf(ParseResult r) => StratusClient.ResolveUrl(r.GetValue(Url));

    /// <summary>The explicit --token, if any.</summary>
    public static string? TokenOf(ParseResult r) => r.GetValue(Token);

    private static Option<string> OutputOption() => new("--output", "-o")
    {
        Description = "Output format: table or json (json prints the objects the REST API returns)",
        DefaultValueFactory = _ => "table",
    };

    private static Option<bool> WaitOption() => new("--wait") { Description = "Show progress until the server reaches the resulting state or fails" };

    public static RootCommand Build()
    {
        var root = new RootCommand("Stratus: a private cloud of real virtual machines");
        root.Options.Add(Url);
        root.Options.Add(Token);
        root.Subcommands.Add(UpCommand());
        root.Subcommands.Add(DownCommand());
        root.Subcommands.Add(FlavorCommand());
        root.Subcommands.Add(ImageCommand());
        root.Subcommands.Add(ServerCommand());
        root.Subcommands.Add(HostCommand());
        root.Subcommands.Add(KeypairCommands.Keypair(Api, OutputOption));
        root.Subcommands.Add(GroupCommand());
        root.Subcommands.Add(ScalingCommands.ScalingGroup(Api, OutputOption));
        root.Subcommands.Add(HaCommands.Incident(Api, OutputOption));
        root.Subcommands.Add(HaCommands.Ha(Api, OutputOption));
        root.Subcommands.Add(DataProtectionCommands.BackupGroup(Api, OutputOption));
        root.Subcommands.Add(InventoryCommands.Aggregate(Api, OutputOption));
        root.Subcommands.Add(EnergyCommands.Energy(Api, OutputOption));
        root.Subcommands.Add(EnergyCommands.Consolidation(Api, OutputOption));
        foreach (var identity in IdentityCommands.All(Api, UrlOf, OutputOption))
        {
            root.Subcommands.Add(identity);
        }
        root.Subcommands.Add(BillingCommands.Invoice(Api));
        root.Subcommands.Add(BillingCommands.Usage(Api, OutputOption));
        root.Subcommands.Add(BillingCommands.Price(Api, OutputOption));
        root.Subcommands.Add(BillingCommands.Budget(Api, OutputOption));
        foreach (var extra in Extensions.Commands())
        {
            root.Subcommands.Add(extra);
        }
        return root;
    }

    // ---------------- local verbs ----------------

    private static Command UpCommand()
    {
        var detach = new Option<bool>("--detach") { Description = "Return once the API answers, every host registered and one reconcile pass finished" };
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory (store, logs, host state)", DefaultValueFactory = _ => Local.DefaultDataDir };
        var port = new Option<int>("--port") { Description = "API port", DefaultValueFactory = _ => 7300 };
        var driver = new Option<string>("--driver") { Description = "Hypervisor driver: simulated or qemu", DefaultValueFactory = _ => DefaultDriver };
        driver.AcceptOnlyFromAmong("simulated", "qemu");
        var hosts = new Option<int>("--hosts") { Description = "Number of hosts (agents) to run", DefaultValueFactory = _ => 1 };
        var delay = new Option<double?>("--sim-delay-scale") { Description = "Scale of the simulated driver's delays (1 = realistic)" };
        var embedded = new Option<bool>("--embedded") { Description = "Run every host's agent inside the controller (scale tests) instead of one process per host" };
        var tolerate = new Option<int?>("--ha-tolerate") { Description = "HA admission control: keep room to restart the HA servers of this many failed hosts (needs --hosts > 1)" };
        var fence = new Option<string?>("--fence-command") { Description = "HA out-of-band fence, run as CMD HOST_NAME HOST_ID EPOCH when a host is declared failed; exit 0 = the host is off (needs --hosts > 1)" };
        var rate = new Option<double?>("--rate-limit") { Description = "Requests per second each user may make (default 100; 0 turns the limit off)" };
        var metrics = new Option<double?>("--metrics-interval") { Description = "Seconds between the agents' metric samples (default 10; 0.2–600)" };
        var scaling = new Option<double?>("--scaling-interval") { Description = "Seconds between passes of the scaling-group loop (default 5; 0.05–3600)" };
        var cmd = new Command("up", "Start the whole single-host cloud (controller + agents) on an embedded store") { detach, dataDir, port, driver, hosts, delay, embedded, tolerate, fence, rate, metrics, scaling };
        cmd.SetAction(async (r, ct) =>
        {
            var extra = new List<string>();
            if (r.GetValue(delay) is { } d)
            {
                extra.AddRange(["--sim-delay-scale", d.ToString(Output.Inv)]);
            }
            if (r.GetValue(tolerate) is { } n)
            {
                extra.AddRange(["--ha-tolerate", n.ToString(Output.Inv)]);
            }
            if (r.GetValue(rate) is { } perSecond)
            {
                extra.AddRange(["--rate-limit", perSecond.ToString(Output.Inv)]);
            }
            if (r.GetValue(metrics) is { } every)
            {
                extra.AddRange(["--metrics-interval", every.ToString(Output.Inv)]);
            }
            if (r.GetValue(scaling) is { } pass)
            {
                extra.AddRange(["--scaling-interval", pass.ToString(Output.Inv)]);
            }
            if (r.GetValue(fence) is { } command)
            {
                extra.AddRange(["--fence-command", command]);
            }
            if (Environment.GetEnvironmentVariable("STRATUS_TINY_IMAGE") is { Length: > 0 } tiny)
            {
                extra.AddRange(["--tiny-image", tiny]);
            }
            return await Local.UpAsync(r.GetValue(detach), r.GetValue(dataDir)!, r.GetValue(port), r.GetValue(driver)!, r.GetValue(hosts), extra, ct,
                r.GetValue(embedded));
        });
        return cmd;
    }

    /// <summary>The driver `up` uses when none is named.</summary>
    public static string DefaultDriver => Environment.GetEnvironmentVariable("STRATUS_DRIVER") is { Length: > 0 } d ? d : "qemu";

    private static Command DownCommand()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory of the cloud to stop", DefaultValueFactory = _ => Local.DefaultDataDir };
        var cmd = new Command("down", "Stop the controller, its agents and their VMs; desired state is kept") { dataDir };
        cmd.SetAction((r, ct) => Local.DownAsync(r.GetValue(dataDir)!, ct));
        return cmd;
    }

    // ---------------- flavors ----------------

    private static Command FlavorCommand()
    {
        var cmd = new Command("flavor", "Server sizes");
        var name = new Argument<string>("name") { Description = "Flavor name" };
        var vcpus = new Option<int>("--vcpus") { Required = true, Description = "vCPUs" };
        var ram = new Option<long>("--ram") { Required = true, Description = "Memory, MiB" };
        var disk = new Option<long>("--disk") { Required = true, Description = "Root disk, GiB" };
        var o1 = OutputOption();
        var create = new Command("create", "Create a flavor") { name, vcpus, ram, disk, o1 };
        create.SetAction((r, ct) => Api(r, async c =>
        {
            var f = await c.CreateFlavorAsync(new CreateFlavorRequest(r.GetValue(name), r.GetValue(vcpus), r.GetValue(ram), r.GetValue(disk), true), ct);
            PrintFlavors([f], r.GetValue(o1), single: true);
        }));
        var o2 = OutputOption();
        var list = new Command("list", "List flavors") { o2 };
        list.SetAction((r, ct) => Api(r, async c => PrintFlavors(await c.ListFlavorsAsync(ct), r.GetValue(o2), single: false)));
        var refArg = new Argument<string>("flavor") { Description = "Flavor name or id" };
        var o3 = OutputOption();
        var show = new Command("show", "Show a flavor") { refArg, o3 };
        show.SetAction((r, ct) => Api(r, async c => PrintFlavors([await c.GetFlavorAsync(r.GetValue(refArg)!, ct)], r.GetValue(o3), single: true)));
        var refArg2 = new Argument<string>("flavor") { Description = "Flavor name or id" };
        var delete = new Command("delete", "Delete a flavor (refused while servers use it)") { refArg2 };
        delete.SetAction((r, ct) => Api(r, async c =>
        {
            await c.DeleteFlavorAsync(r.GetValue(refArg2)!, ct);
            Console.Out.WriteLine($"flavor {r.GetValue(refArg2)} deleted");
        }));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    private static void PrintFlavors(IReadOnlyList<FlavorDto> list, string? format, bool single) =>
        Output.Objects(list, format, single, ["ID", "NAME", "VCPUS", "RAM_MIB", "DISK_GIB"],
            f => [f.Id, f.Name, f.Vcpus.ToString(Output.Inv), f.RamMib.ToString(Output.Inv), f.DiskGib.ToString(Output.Inv)]);

    // ---------------- images ----------------

    private static Command ImageCommand()
    {
        var cmd = new Command("image", "Disk images");
        var o1 = OutputOption();
        var list = new Command("list", "List images") { o1 };
        list.SetAction((r, ct) => Api(r, async c => PrintImages(await c.ListImagesAsync(ct), r.GetValue(o1), false)));
        var refArg = new Argument<string>("image") { Description = "Image name or id" };
        var o2 = OutputOption();
        var show = new Command("show", "Show an image") { refArg, o2 };
        show.SetAction((r, ct) => Api(r, async c => PrintImages([await c.GetImageAsync(r.GetValue(refArg)!, ct)], r.GetValue(o2), true)));
        var refArg2 = new Argument<string>("image") { Description = "Image name or id" };
        var delete = new Command("delete", "Delete an image (refused while servers use it)") { refArg2 };
        delete.SetAction((r, ct) => Api(r, async c =>
        {
            await c.DeleteImageAsync(r.GetValue(refArg2)!, ct);
            Console.Out.WriteLine($"image {r.GetValue(refArg2)} deleted");
        }));
        var iname = new Argument<string>("name") { Description = "Image name" };
        var ifile = new Argument<string>("file") { Description = "qcow2 or raw disk image file (format detected from its content)" };
        var o3 = OutputOption();
        var import = new Command("import", "Upload an image (streamed, checksummed, inspected with qemu-img)") { iname, ifile, o3 };
        import.SetAction((r, ct) => Api(r, async c =>
        {
            var f = r.GetValue(ifile)!;
            if (!File.Exists(f))
            {
                throw new StratusApiException(0, "file_not_found", $"'{f}' does not exist");
            }
            PrintImages([await c.ImportImageAsync(r.GetValue(iname)!, f, ct)], r.GetValue(o3), true);
        }));
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(import);
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    private static void PrintImages(IReadOnlyList<ImageDto> list, string? format, bool single) =>
        Output.Objects(list, format, single, ["ID", "NAME", "FORMAT", "STATUS", "SIZE_BYTES"],
            i => [i.Id, i.Name, i.DiskFormat, i.Status, i.SizeBytes.ToString(Output.Inv)]);

    // ---------------- servers ----------------

    private static Command ServerCommand()
    {
        var cmd = new Command("server", "Cloud servers (virtual machines)");

        var name = new Argument<string>("name") { Description = "Server name" };
        var flavor = new Option<string>("--flavor") { Required = true, Description = "Flavor name or id" };
        var image = new Option<string>("--image") { Required = true, Description = "Image name or id" };
        var userData = new Option<string?>("--user-data") { Description = "File with user-data for the guest's first boot ('-' reads stdin)" };
        var key = new Option<string?>("--key") { Description = "Keypair whose public key the guest accepts" };
        var zone = new Option<string?>("--zone") { Description = "Availability zone" };
        var group = new Option<string?>("--group") { Description = "Server group (name or id) whose placement rule the server joins" };
        var trait = new Option<string[]>("--trait") { Description = "Trait the host must have (!TRAIT: must not have), repeatable" };
        var count = new Option<int?>("--count") { Description = "Create N servers NAME-1…NAME-N in one request" };
        var aon = new Option<bool>("--all-or-nothing") { Description = "With --count: place all of them or none" };
        var forward = new Option<string[]>("--forward") { Description = "HOSTPORT:GUESTPORT (host port 0 = choose), repeatable", AllowMultipleArgumentsPerToken = false };
        var idem = new Option<string?>("--idempotency-key") { Description = "Retry-safe key: a retry with the same key returns the same server" };
        var pool = new Option<string?>("--storage-pool") { Description = "local or shared (default: shared when the cloud has a shared pool)" };
        var ha = new Option<bool>("--ha") { Description = "HA-protected: restarted on another host when its host fails (disk on the shared pool)" };
        var haPriority = new Option<int?>("--ha-priority") { Description = "Recovery order among HA servers, higher first (0–1000)" };
        var maxVcpus = new Option<int?>("--max-vcpus") { Description = "Live resize ceiling for vCPUs (default 4× the flavor's, capped by the largest host)" };
        var maxRam = new Option<long?>("--max-ram") { Description = "Live resize ceiling for memory, MiB (default 4× the flavor's, capped by the largest host)" };
        var wait = WaitOption();
        var o = OutputOption();
        var create = new Command("create", "Create a server") { name, flavor, image, userData, key, zone, group, trait, count, aon, forward, idem, pool, ha, haPriority, maxVcpus, maxRam, wait, o };
        create.SetAction((r, ct) => Api(r, async c =>
        {
            var forwards = new List<ForwardDto>();
            foreach (var f in r.GetValue(forward) ?? [])
            {
                var parts = f.Split(':');
                if (parts.Length != 2 || !int.TryParse(parts[0], out var hp) || !int.TryParse(parts[1], out var gp))
                {
                    throw new StratusApiException(0, "invalid_forward", $"--forward '{f}' must be HOSTPORT:GUESTPORT, e.g. 0:80");
                }
                forwards.Add(new ForwardDto(hp, gp));
            }
            string? ud = null;
            if (r.GetValue(userData) is { } file)
            {
                ud = file == "-" ? await Console.In.ReadToEndAsync(ct) : File.Exists(file)
                    ? await File.ReadAllTextAsync(file, ct)
                    : throw new StratusApiException(0, "file_not_found", $"--user-data file '{file}' does not exist");
            }
            var req = new CreateServerRequest(r.GetValue(name), r.GetValue(flavor), r.GetValue(image), ud, r.GetValue(key), r.GetValue(zone), forwards)
            {
                Group = r.GetValue(group),
                Traits = r.GetValue(trait) is { Length: > 0 } ts ? ts : null,
                Count = r.GetValue(count),
                AllOrNothing = r.GetValue(aon) ? true : null,
                StoragePool = r.GetValue(pool),
                Ha = r.GetValue(ha) ? true : null,
                HaPriority = r.GetValue(haPriority),
                MaxVcpus = r.GetValue(maxVcpus),
                MaxRamMib = r.GetValue(maxRam),
            };
            if (req.Count is > 1)
            {
                var many = await c.CreateServersAsync(req, ct);
                if (many.FirstOrDefault()?.BudgetWarning is { } manyWarning)
                {
                    Console.Error.WriteLine($"warning: {manyWarning}");
                }
                if (r.GetValue(wait))
                {
                    var done = new List<ServerDto>();
                    foreach (var one in many)
                    {
                        done.Add(await Waiter.WaitAsync(c, one.Id, "active", ct));
                    }
                    many = done;
                }
                Output.Objects(many, r.GetValue(o), false, ["ID", "NAME", "STATE", "TASK", "HOST"], x => [x.Id, x.Name, x.VmState, x.Task, x.HostName ?? x.HostId]);
                return;
            }
            var s = await c.CreateServerAsync(req, r.GetValue(idem), ct);
            if (s.BudgetWarning is { } warning)
            {
                Console.Error.WriteLine($"warning: {warning}");
            }
            if (r.GetValue(wait))
            {
                s = await Waiter.WaitAsync(c, s.Id, "active", ct);
            }
            Output.Server(s, r.GetValue(o));
        }));
        cmd.Subcommands.Add(create);

        var lname = new Option<string?>("--name") { Description = "Only servers with this name" };
        var lstate = new Option<string?>("--state") { Description = "Only servers in this vm_state" };
        var lhost = new Option<string?>("--host") { Description = "Only servers on this host (name or id)" };
        var lo = OutputOption();
        var list = new Command("list", "List servers") { lname, lstate, lhost, lo };
        list.SetAction((r, ct) => Api(r, async c =>
        {
            var servers = await c.ListServersAsync(r.GetValue(lname), r.GetValue(lstate), r.GetValue(lhost), ct);
            if (Output.IsJson(r.GetValue(lo)))
            {
                Output.Json(servers);
                return;
            }
            Output.Table(["ID", "NAME", "STATE", "TASK", "POWER", "HOST", "FLAVOR_VCPUS", "RAM_MIB", "FORWARDS"],
                servers.Select(s => new[]
                {
                    s.Id, s.Name, s.VmState, s.Task, s.PowerState, s.HostName, s.Vcpus.ToString(Output.Inv), s.RamMib.ToString(Output.Inv),
                    s.Forwards.Count == 0 ? null : string.Join(",", s.Forwards.Select(f => $"{f.HostPort}->{f.GuestPort}")),
                }));
        }));
        cmd.Subcommands.Add(list);

        var sref = new Argument<string>("server") { Description = "Server name or id" };
        var so = OutputOption();
        var show = new Command("show", "Show a server") { sref, so };
        show.SetAction((r, ct) => Api(r, async c => Output.Server(await c.GetServerAsync(r.GetValue(sref)!, ct), r.GetValue(so))));
        cmd.Subcommands.Add(show);

        var dref = new Argument<string>("server") { Description = "Server name or id" };
        var dwait = WaitOption();
        var dout = OutputOption();
        var delete = new Command("delete", "Delete a server") { dref, dwait, dout };
        delete.SetAction((r, ct) => Api(r, async c =>
        {
            var s = await c.DeleteServerAsync(r.GetValue(dref)!, ct);
            if (r.GetValue(dwait))
            {
                s = await Waiter.WaitAsync(c, s.Id, "deleted", ct);
            }
            Output.Server(s, r.GetValue(dout));
        }));
        cmd.Subcommands.Add(delete);

        foreach (var (verb, help, target) in new[]
        {
            ("start", "Start a stopped server", "active"),
            ("stop", "Stop a server (ACPI, then forced after a timeout)", "stopped"),
            ("reboot", "Reboot a server (--hard resets it)", "active"),
            ("pause", "Pause a server", "paused"),
            ("resume", "Resume a paused server", "active"),
        })
        {
            var aref = new Argument<string>("server") { Description = "Server name or id" };
            var waitOpt = WaitOption();
            var aout = OutputOption();
            var action = new Command(verb, help) { aref, waitOpt, aout };
            Option<bool>? hard = null;
            if (verb == "reboot")
            {
                hard = new Option<bool>("--hard") { Description = "Hard reboot (reset)" };
                action.Options.Add(hard);
            }
            action.SetAction((r, ct) => Api(r, async c =>
            {
                var type = hard is not null ? (r.GetValue(hard) ? "hard" : "soft") : null;
                var s = await c.ActAsync(r.GetValue(aref)!, verb, type, ct);
                if (r.GetValue(waitOpt))
                {
                    s = await Waiter.WaitAsync(c, s.Id, target, ct);
                }
                Output.Server(s, r.GetValue(aout));
            }));
            cmd.Subcommands.Add(action);
        }

        cmd.Subcommands.Add(MigrationCommands.ServerMigrate(Api, OutputOption));
        cmd.Subcommands.Add(ResizeCommands.ServerResize(Api, OutputOption));
        cmd.Subcommands.Add(HaCommands.ServerHa(Api, OutputOption));
        cmd.Subcommands.Add(DataProtectionCommands.Snapshot(Api, OutputOption));
        cmd.Subcommands.Add(DataProtectionCommands.Backup(Api, OutputOption));
        cmd.Subcommands.Add(DataProtectionCommands.Policy(Api, OutputOption));
        cmd.Subcommands.Add(DataProtectionCommands.Restore(Api, OutputOption));

        var cref = new Argument<string>("server") { Description = "Server name or id" };
        var cout = OutputOption();
        var console = new Command("console", "Print the server's serial console") { cref, cout };
        console.SetAction((r, ct) => Api(r, async c =>
        {
            var con = await c.ConsoleAsync(r.GetValue(cref)!, ct);
            if (Output.IsJson(r.GetValue(cout)))
            {
                Output.Json(con);
            }
            else
            {
                Console.Out.Write(con.Output);
            }
        }));
        cmd.Subcommands.Add(console);

        var href = new Argument<string>("server") { Description = "Server name or id" };
        var hout = OutputOption();
        var actions = new Command("actions", "Show the server's action log (who, what, when, result)") { href, hout };
        actions.SetAction((r, ct) => Api(r, async c =>
        {
            var log = await c.ListActionsAsync(r.GetValue(href)!, ct);
            if (Output.IsJson(r.GetValue(hout)))
            {
                Output.Json(log);
                return;
            }
            Output.Table(["SEQ", "ACTION", "BY", "STARTED", "FINISHED", "RESULT", "MESSAGE"],
                log.Select(a => new[] { a.Seq.ToString(Output.Inv), a.Action, a.RequestedBy, a.StartedAt.ToString("u", Output.Inv), a.FinishedAt?.ToString("u", Output.Inv), a.Result, a.Message }));
        }));
        cmd.Subcommands.Add(actions);
        cmd.Subcommands.Add(KeypairCommands.Ssh(Api));

        var pref = new Argument<string>("server") { Description = "Server name or id" };
        var pout = OutputOption();
        var placementCmd = new Command("placement", "Show why the scheduler placed the server where it did (or could not)") { pref, pout };
        placementCmd.SetAction((r, ct) => Api(r, async c =>
        {
            var p = await c.PlacementAsync(r.GetValue(pref)!, ct);
            if (Output.IsJson(r.GetValue(pout)))
            {
                Output.Json(p);
                return;
            }
            Output.Fields([
                ("outcome", p.Outcome), ("host_id", p.HostId), ("profile", p.Profile),
                ("hosts", $"{p.FleetSize} in fleet, {p.HostsConsidered} examined, {p.SampleSize} scored"),
                ("decided_at", p.DecidedAt.ToString("u", Output.Inv)),
            ]);
            foreach (var reason in p.Reasons)
            {
                Console.Out.WriteLine($"reason: {reason}");
            }
            Console.Out.WriteLine();
            Output.Table(["FILTER", "REACHED", "REMOVED"], p.Filters.Select(f => new[] { f.Filter, f.Before.ToString(Output.Inv), f.Removed.ToString(Output.Inv) }));
            Console.Out.WriteLine();
            Output.Table(["CANDIDATE", "HOST_ID", "SCORE"], p.Top.Select(t => new[] { t.Name, t.HostId, t.Score.ToString("0.000", Output.Inv) }));
        }));
        cmd.Subcommands.Add(placementCmd);
        cmd.Subcommands.Add(MetricsCommands.ServerStats(Api, OutputOption));
        return cmd;
    }

    // ---------------- server groups ----------------

    private static Command GroupCommand()
    {
        var cmd = new Command("group", "Server groups: placement rules among servers");
        var name = new Argument<string>("name") { Description = "Group name" };
        var policy = new Option<string>("--policy") { Required = true, Description = "affinity, anti-affinity, soft-affinity or soft-anti-affinity" };
        var max = new Option<int?>("--max-per-host") { Description = "Anti-affinity: most members on one host (default 1)" };
        var o1 = OutputOption();
        var create = new Command("create", "Create a server group") { name, policy, max, o1 };
        create.SetAction((r, ct) => Api(r, async c =>
            PrintGroups([await c.CreateGroupAsync(new CreateGroupRequest(r.GetValue(name), r.GetValue(policy), r.GetValue(max)), ct)], r.GetValue(o1), true)));
        var o2 = OutputOption();
        var list = new Command("list", "List server groups") { o2 };
        list.SetAction((r, ct) => Api(r, async c => PrintGroups(await c.ListGroupsAsync(ct), r.GetValue(o2), false)));
        var sref = new Argument<string>("group") { Description = "Group name or id" };
        var o3 = OutputOption();
        var show = new Command("show", "Show a server group") { sref, o3 };
        show.SetAction((r, ct) => Api(r, async c => PrintGroups([await c.GetGroupAsync(r.GetValue(sref)!, ct)], r.GetValue(o3), true)));
        var dref = new Argument<string>("group") { Description = "Group name or id" };
        var delete = new Command("delete", "Delete a server group (refused while it has servers)") { dref };
        delete.SetAction((r, ct) => Api(r, async c =>
        {
            await c.DeleteGroupAsync(r.GetValue(dref)!, ct);
            Console.Out.WriteLine($"server group {r.GetValue(dref)} deleted");
        }));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    private static void PrintGroups(IReadOnlyList<ServerGroupDto> list, string? format, bool single) =>
        Output.Objects(list, format, single, ["ID", "NAME", "POLICY", "MAX_PER_HOST"], g => [g.Id, g.Name, g.Policy, g.MaxPerHost.ToString(Output.Inv)]);

    // ---------------- hosts ----------------

    private static Command HostCommand()
    {
        var cmd = new Command("host", "Physical hosts");
        var o = OutputOption();
        var list = new Command("list", "List hosts with capacity, allocation and state") { o };
        list.SetAction((r, ct) => Api(r, async c =>
        {
            var hosts = await c.ListHostsAsync(ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(hosts);
                return;
            }
            Output.Table(["ID", "NAME", "STATE", "ACCEL", "SERVERS", "VCPUS_USED/CAP", "RAM_MIB_USED/CAP", "DISK_GIB_USED/CAP"],
                hosts.Select(h => new[]
                {
                    h.Id, h.Name, h.State, h.Accelerator, h.Servers.ToString(Output.Inv),
                    $"{h.Used.Vcpus:0.###}/{h.Capacity.Vcpus:0.###}", $"{h.Used.RamMib}/{h.Capacity.RamMib}", $"{h.Used.DiskGib}/{h.Capacity.DiskGib}",
                }));
        }));
        var href = new Argument<string>("host") { Description = "Host name or id" };
        var so = OutputOption();
        var show = new Command("show", "Show a host") { href, so };
        show.SetAction((r, ct) => Api(r, async c =>
        {
            var h = await c.GetHostAsync(r.GetValue(href)!, ct);
            if (Output.IsJson(r.GetValue(so)))
            {
                Output.Json(h);
                return;
            }
            Output.Fields([
                ("id", h.Id), ("name", h.Name), ("state", h.State), ("zone", h.Zone), ("driver", h.Driver), ("accelerator", h.Accelerator),
                ("hypervisor_user", h.HypervisorUser),
                ("agent_pid", h.AgentPid?.ToString(Output.Inv)), ("servers", h.Servers.ToString(Output.Inv)),
                ("capacity", $"{h.Capacity.Vcpus:0.###} vCPU, {h.Capacity.RamMib} MiB, {h.Capacity.DiskGib} GiB"),
                ("used", $"{h.Used.Vcpus:0.###} vCPU, {h.Used.RamMib} MiB, {h.Used.DiskGib} GiB"),
                ("ratios", $"cpu {h.AllocationRatios.Cpu}, ram {h.AllocationRatios.Ram}, disk {h.AllocationRatios.Disk}"),
                ("last_heartbeat", h.LastHeartbeat?.ToString("u", Output.Inv)),
            ]);
        }));
        var tname = new Argument<string>("name") { Description = "The host's name (as its agent registers it)" };
        var token = new Command("token", "Issue the agent token of a host (replaces its previous one); `stratus agent --token` uses it") { tname };
        token.SetAction((r, ct) => Api(r, async c => Console.Out.WriteLine((await c.IssueAgentTokenAsync(r.GetValue(tname)!, ct)).Token)));
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(token);
        cmd.Subcommands.Add(InventoryCommands.HostTraits(Api));
        foreach (var c in MigrationCommands.HostCommands(Api))
        {
            cmd.Subcommands.Add(c);
        }
        cmd.Subcommands.Add(MetricsCommands.HostStats(Api, OutputOption));
        return cmd;
    }

    // ---------------- plumbing ----------------

    /// <summary>Runs an API command: one clear line on stderr and exit code 1 on any refusal.</summary>
    public static async Task<int> Api(ParseResult r, Func<StratusClient, Task> body)
    {
        try
        {
            var url = UrlOf(r);
            using var client = StratusClient.Create(url, null, Credentials.Resolve(url, r.GetValue(Token)));
            await body(client);
            return 0;
        }
        catch (StratusApiException e)
        {
            var message = string.Join(' ', e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            Console.Error.WriteLine(e.Status > 0 ? $"error: {message} ({e.Code}, HTTP {e.Status})" : $"error: {message}");
            return 1;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
