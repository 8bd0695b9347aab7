using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`login`, `logout`, `whoami`, `apikey`, `project`, `quota`, `user`, `role`.</summary>
public static class IdentityCommands
{
    public static IEnumerable<Command> All(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<ParseResult, Uri> url, Func<Option<string>> output)
    {
        yield return Login(api, url);
        yield return Logout(api, url);
        yield return WhoAmI(api, url, output);
        yield return ApiKey(api, output);
        yield return Project(api, output);
        yield return Quota(api, output);
        yield return User(api, output);
        yield return RoleCmd(api, output);
        yield return Audit(api, output);
    }

    private static Command Audit(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("audit", "The audit log of every state-changing request (cloud admins)");
        var after = new Option<long>("--after") { Description = "Entries after this sequence number", DefaultValueFactory = _ => 0 };
        var limit = new Option<int>("--limit") { Description = "At most this many (1–1000)", DefaultValueFactory = _ => 100 };
        var lo = output();
        var list = new Command("list", "List entries, oldest first: who, what, target, result, from where") { after, limit, lo };
        list.SetAction((r, ct) => api(r, async c =>
        {
            var page = await c.ListAuditAsync(r.GetValue(after), r.GetValue(limit), ct);
            if (Output.IsJson(r.GetValue(lo)))
            {
                Output.Json(page.Items);
                return;
            }
            Output.Table(["SEQ", "AT", "ACTOR", "METHOD", "ROUTE", "TARGET", "STATUS", "SOURCE"], page.Items.Select(e => new[]
            {
                e.Seq.ToString(Output.Inv), e.At.ToString("u", Output.Inv), e.Actor, e.Method, e.Route, e.Target ?? "-", e.Status.ToString(Output.Inv), e.Source,
            }));
        }));
        var vo = output();
        var verify = new Command("verify", "Recompute the hash chain; exit 1 and name the first broken entry when it was tampered with") { vo };
        verify.SetAction(async (r, ct) =>
        {
            AuditVerifyDto? v = null;
            var rc = await api(r, async c => v = await c.VerifyAuditAsync(ct));
            if (rc != 0 || v is null)
            {
                return rc;
            }
            if (Output.IsJson(r.GetValue(vo)))
            {
                Output.Json(v);
            }
            else if (v.Ok)
            {
                Console.Out.WriteLine($"audit log intact: {v.Entries} entries, head {v.HeadHash}");
            }
            else
            {
                Console.Out.WriteLine($"audit log BROKEN at entry {v.FirstBadSeq}: {v.Problem} ({v.Entries} entries before it verified)");
            }
            return v.Ok ? 0 : 1;
        });
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(verify);
        return cmd;
    }

    private static string ReadSecretFromStdin()
    {
        var line = Console.In.ReadLine();
        if (string.IsNullOrEmpty(line))
        {
            throw new StratusApiException(0, "bad_arguments", "no password on standard input");
        }
        return line.TrimEnd('\r', '\n');
    }

    private static Command Login(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<ParseResult, Uri> url)
    {
        var user = new Option<string>("--user", "-u") { Description = "User name", Required = true };
        var stdin = new Option<bool>("--password-stdin") { Description = "Read the password from standard input (the only way: never on the command line)" };
        var project = new Option<string?>("--project", "-p") { Description = "Project to work in (default: the user's only project)" };
        var cmd = new Command("login", "Log in with a password; keeps the session token for this controller URL") { user, stdin, project };
        cmd.SetAction((r, ct) => api(r, async _ =>
        {
            if (!r.GetValue(stdin))
            {
                throw new StratusApiException(0, "bad_arguments", "give --password-stdin and the password on standard input");
            }
            var password = ReadSecretFromStdin();
            var u = url(r);
            using var anonymous = StratusClient.Create(u);
            var t = await anonymous.LoginAsync(new LoginRequest(r.GetValue(user), password, r.GetValue(project)), ct);
            Credentials.SaveLogin(u, t.Token);
            Console.Out.WriteLine($"logged in as {t.User} ({t.Role} in project {t.Project}) until {t.ExpiresAt:u}; token kept in {Credentials.LoginFile}");
        }));
        return cmd;
    }

    private static Command Logout(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<ParseResult, Uri> url)
    {
        var cmd = new Command("logout", "Revoke the login session token for this controller URL and forget it");
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            await c.LogoutAsync(ct);
            Credentials.ForgetLogin(url(r));
            Console.Out.WriteLine("logged out");
        }));
        return cmd;
    }

    private static Command WhoAmI(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<ParseResult, Uri> url, Func<Option<string>> output)
    {
        var o = output();
        var cmd = new Command("whoami", "Show who the current credential belongs to, in which project, with which role") { o };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var w = await c.WhoAmIAsync(ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(w);
                return;
            }
            Console.Out.WriteLine($"{w.User} ({w.Role} in project {w.Project}{(w.CloudAdmin ? ", cloud admin" : "")}); credential {w.CredentialId}" +
                (w.ExpiresAt is { } e ? $", expires {e:u}" : "") + $"; from {Credentials.Source(url(r), Commands.TokenOf(r))}");
        }));
        return cmd;
    }

    private static Command ApiKey(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("apikey", "API keys for automation (scoped to your project and role)");
        var name = new Option<string?>("--name") { Description = "A name to recognise the key by" };
        var days = new Option<double?>("--expires-in-days") { Description = "Expire after this many days (default: never; revoke it instead)" };
        var co = output();
        var create = new Command("create", "Create an API key; the secret is shown once") { name, days, co };
        create.SetAction((r, ct) => api(r, async c =>
        {
            var t = await c.CreateKeyAsync(new CreateApiKeyRequest(r.GetValue(name), r.GetValue(days)), ct);
            if (Output.IsJson(r.GetValue(co)))
            {
                Output.Json(t);
                return;
            }
            Console.Out.WriteLine($"id:     {t.Id}\nsecret: {t.Token}\n(shown once; use it as STRATUS_TOKEN or --token)");
        }));
        var lo = output();
        var list = new Command("list", "List your API keys and sessions (never their secrets)") { lo };
        list.SetAction((r, ct) => api(r, async c =>
        {
            var items = await c.ListKeysAsync(ct);
            if (Output.IsJson(r.GetValue(lo)))
            {
                Output.Json(items);
                return;
            }
            Output.Table(["ID", "KIND", "NAME", "PROJECT", "CREATED", "EXPIRES", "REVOKED"], items.Select(k => new[]
            {
                k.Id, k.Kind, k.Name ?? "-", k.Project, k.CreatedAt.ToString("u", Output.Inv), k.ExpiresAt?.ToString("u", Output.Inv) ?? "never", k.RevokedAt?.ToString("u", Output.Inv) ?? "-",
            }));
        }));
        var id = new Argument<string>("id") { Description = "Key id" };
        var revoke = new Command("revoke", "Revoke an API key or session at once") { id };
        revoke.SetAction((r, ct) => api(r, async c =>
        {
            await c.RevokeKeyAsync(r.GetValue(id)!, ct);
            Console.Out.WriteLine($"revoked {r.GetValue(id)}");
        }));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(revoke);
        return cmd;
    }

    private sealed record QuotaOptions(Option<int?> Instances, Option<int?> Vcpus, Option<long?> Ram, Option<long?> Disk, Option<int?> Snapshots, Option<int?> Backups)
    {
        public static QuotaOptions Create() => new(
            new("--instances") { Description = "Most servers" }, new("--vcpus") { Description = "Most vCPUs" },
            new("--ram-mib") { Description = "Most memory, MiB" }, new("--disk-gib") { Description = "Most disk, GiB" },
            new("--snapshots") { Description = "Most snapshots" }, new("--backups") { Description = "Most backups" });

        public void AddTo(Command c)
        {
            c.Options.Add(Instances);
            c.Options.Add(Vcpus);
            c.Options.Add(Ram);
            c.Options.Add(Disk);
            c.Options.Add(Snapshots);
            c.Options.Add(Backups);
        }

        public QuotasDto? Read(ParseResult r)
        {
            var q = new QuotasDto(r.GetValue(Instances), r.GetValue(Vcpus), r.GetValue(Ram), r.GetValue(Disk), r.GetValue(Snapshots), r.GetValue(Backups));
            return q == new QuotasDto(null, null, null, null, null, null) ? null : q;
        }
    }

    private static Command Project(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("project", "Projects (tenants)");
        var name = new Argument<string>("name") { Description = "Project name" };
        var qo = QuotaOptions.Create();
        var co = output();
        var create = new Command("create", "Create a project (cloud admins); quotas default to 10 instances, 20 vCPUs, 50 GiB memory, 1000 GiB disk") { name, co };
        qo.AddTo(create);
        create.SetAction((r, ct) => api(r, async c =>
        {
            var p = await c.CreateProjectAsync(new CreateProjectRequest(r.GetValue(name), qo.Read(r)), ct);
            Print([p], r.GetValue(co));
        }));
        var lo = output();
        var list = new Command("list", "List the projects you can see") { lo };
        list.SetAction((r, ct) => api(r, async c => Print(await c.ListProjectsAsync(ct), r.GetValue(lo))));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        return cmd;
    }

    private static void Print(IReadOnlyList<ProjectDto> items, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(items.Count == 1 ? items[0] : (object)items);
            return;
        }
        Output.Table(["ID", "NAME", "INSTANCES", "VCPUS", "RAM_MIB", "DISK_GIB"], items.Select(p => new[]
        {
            p.Id, p.Name, Q(p.Quotas.Instances), Q(p.Quotas.Vcpus), Q(p.Quotas.RamMib), Q(p.Quotas.DiskGib),
        }));
    }

    private static string Q(long? v) => v is null ? "-" : v >= int.MaxValue ? "unlimited" : v.Value.ToString(Output.Inv);

    private static Command Quota(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("quota", "A project's quotas and what it uses");
        var project = new Argument<string?>("project") { Description = "Project (default: yours)", Arity = ArgumentArity.ZeroOrOne };
        var so = output();
        var show = new Command("show", "Show limits and use") { project, so };
        show.SetAction((r, ct) => api(r, async c =>
        {
            var p = r.GetValue(project) ?? (await c.WhoAmIAsync(ct)).ProjectId;
            var q = await c.GetQuotaAsync(p, ct);
            if (Output.IsJson(r.GetValue(so)))
            {
                Output.Json(q);
                return;
            }
            Console.Out.WriteLine($"project {q.Project}");
            Output.Table(["RESOURCE", "USED", "LIMIT"],
            [
                ["instances", Q(q.Usage.Instances), Q(q.Limits.Instances)], ["vcpus", Q(q.Usage.Vcpus), Q(q.Limits.Vcpus)],
                ["ram_mib", Q(q.Usage.RamMib), Q(q.Limits.RamMib)], ["disk_gib", Q(q.Usage.DiskGib), Q(q.Limits.DiskGib)],
                ["snapshots", Q(q.Usage.Snapshots), Q(q.Limits.Snapshots)], ["backups", Q(q.Usage.Backups), Q(q.Limits.Backups)],
            ]);
        }));
        var target = new Argument<string>("project") { Description = "Project name or id" };
        var qo = QuotaOptions.Create();
        var set = new Command("set", "Change a project's quotas (cloud admins); unspecified ones stay") { target };
        qo.AddTo(set);
        set.SetAction((r, ct) => api(r, async c =>
        {
            var q = qo.Read(r) ?? throw new StratusApiException(0, "bad_arguments", "give at least one of --instances, --vcpus, --ram-mib, --disk-gib, --snapshots, --backups");
            await c.SetQuotaAsync(r.GetValue(target)!, q, ct);
            Console.Out.WriteLine($"quotas of {r.GetValue(target)} updated");
        }));
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(set);
        return cmd;
    }

    private static Command User(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("user", "Users (cloud admins: anywhere; project admins: in their project)");
        var name = new Argument<string>("name") { Description = "User name" };
        var project = new Option<string>("--project", "-p") { Description = "Project the user gets a role in", Required = true };
        var role = new Option<string>("--role") { Description = "admin, member or reader", DefaultValueFactory = _ => "member" };
        role.AcceptOnlyFromAmong("admin", "member", "reader");
        var stdin = new Option<bool>("--password-stdin") { Description = "Read the password from standard input" };
        var co = output();
        var create = new Command("create", "Create a user with a role in a project") { name, project, role, stdin, co };
        create.SetAction((r, ct) => api(r, async c =>
        {
            if (!r.GetValue(stdin))
            {
                throw new StratusApiException(0, "bad_arguments", "give --password-stdin and the password on standard input");
            }
            var u = await c.CreateUserAsync(new CreateUserRequest(r.GetValue(name), ReadSecretFromStdin(), r.GetValue(project), r.GetValue(role)), ct);
            PrintUsers([u], r.GetValue(co));
        }));
        var lo = output();
        var list = new Command("list", "List users and their roles") { lo };
        list.SetAction((r, ct) => api(r, async c => PrintUsers(await c.ListUsersAsync(ct), r.GetValue(lo))));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(list);
        return cmd;
    }

    private static void PrintUsers(IReadOnlyList<UserDto> users, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(users.Count == 1 ? users[0] : (object)users);
            return;
        }
        Output.Table(["ID", "NAME", "ROLES"], users.Select(u => new[] { u.Id, u.Name, string.Join(", ", u.Roles.Select(x => $"{x.Role}@{x.Project}")) }));
    }

    private static Command RoleCmd(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("role", "Give or take away a user's role in a project");
        Command Make(string verb, bool give)
        {
            var user = new Argument<string>("user") { Description = "User name or id" };
            var project = new Option<string>("--project", "-p") { Description = "Project", Required = true };
            var role = new Option<string>("--role") { Description = "admin, member or reader", DefaultValueFactory = _ => "member" };
            role.AcceptOnlyFromAmong("admin", "member", "reader");
            var c = new Command(verb, give ? "Give a role (replaces the user's role there)" : "Take away the user's role") { user, project };
            if (give)
            {
                c.Options.Add(role);
            }
            c.SetAction((r, ct) => api(r, async client =>
            {
                var u = await client.SetRoleAsync(r.GetValue(user)!, new RoleRequest(r.GetValue(project), give ? r.GetValue(role) : null), ct);
                PrintUsers([u], "table");
            }));
            return c;
        }
        cmd.Subcommands.Add(Make("add", true));
        cmd.Subcommands.Add(Make("remove", false));
        return cmd;
    }
}
