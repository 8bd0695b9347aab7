using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server snapshot create|list|revert|delete`, `server backup`, `server backup-policy`, `server restore`,
/// `backup list|show|delete|verify`.</summary>
public static class DataProtectionCommands
{
    private static readonly string[] SnapshotHeaders = ["NAME", "MEMORY", "STATUS", "VMSTATE_MIB", "CREATED"];
    private static readonly string[] BackupHeaders = ["ID", "SERVER", "KIND", "PARENT", "CHAIN", "STATUS", "SIZE_MIB", "CREATED", "VERIFIED"];

    private static string?[] Row(SnapshotDto s) =>
        [s.Name, s.WithMemory ? "yes" : "no", s.Status, (s.VmStateBytes / 1048576.0).ToString("0.0", Output.Inv), s.CreatedAt.ToString("u", Output.Inv)];

    private static string?[] Row(BackupDto b) =>
        [b.Id, b.ServerName, b.Kind, b.ParentId is { } p ? p[..8] : "-", b.ChainLength.ToString(Output.Inv), b.Status,
            (b.SizeBytes / 1048576.0).ToString("0.00", Output.Inv), b.CreatedAt.ToString("u", Output.Inv),
            b.VerifiedAt is { } v ? $"{b.Verified} {v.ToString("u", Output.Inv)}" : b.Verified];

    /// <summary>One backup in full (the table's columns plus the reasons).</summary>
    private static void Show(BackupDto b, string? format)
    {
        if (Output.IsJson(format))
        {
            Output.Json(b);
            return;
        }
        Output.Fields([
            ("id", b.Id), ("server", $"{b.ServerName} ({b.ServerId})"), ("kind", b.Kind), ("parent", b.ParentId), ("chain_length", b.ChainLength.ToString(Output.Inv)),
            ("status", b.Status), ("size_bytes", b.SizeBytes.ToString(Output.Inv)), ("created", b.CreatedAt.ToString("u", Output.Inv)),
            ("full_reason", b.FullReason), ("expired_reason", b.ExpiredReason), ("error", b.Error),
            ("verified", b.VerifiedAt is { } v ? $"{b.Verified} at {v.ToString("u", Output.Inv)}" : b.Verified), ("verify_error", b.VerifyError),
            ("manifest_sha256", b.ManifestSha256),
        ]);
    }

    public static Command Snapshot(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var cmd = new Command("snapshot", "Snapshots of a server's disk (optionally with memory)");

        var cs = new Argument<string>("server") { Description = "Server name or id" };
        var cn = new Argument<string>("name") { Description = "Snapshot name (letters, digits, '.', '_', '-')" };
        var mem = new Option<bool>("--memory") { Description = "Also save memory and device state (running servers): a revert resumes where it was" };
        var co = outputOption();
        var create = new Command("create", "Take a snapshot") { cs, cn, mem, co };
        create.SetAction((r, ct) => api(r, async c =>
        {
            var s = await c.CreateSnapshotAsync(r.GetValue(cs)!, new CreateSnapshotRequest(r.GetValue(cn), r.GetValue(mem)), ct);
            Output.Objects([s], r.GetValue(co), true, SnapshotHeaders, Row);
        }));
        cmd.Subcommands.Add(create);

        var ls = new Argument<string>("server") { Description = "Server name or id" };
        var lo = outputOption();
        var list = new Command("list", "List a server's snapshots") { ls, lo };
        list.SetAction((r, ct) => api(r, async c => Output.Objects(await c.ListSnapshotsAsync(r.GetValue(ls)!, ct), r.GetValue(lo), false, SnapshotHeaders, Row)));
        cmd.Subcommands.Add(list);

        var rs = new Argument<string>("server") { Description = "Server name or id" };
        var rn = new Argument<string>("name") { Description = "Snapshot name" };
        var revert = new Command("revert", "Roll a server back to a snapshot (a disk-only snapshot reboots a running server)") { rs, rn };
        revert.SetAction((r, ct) => api(r, async c =>
        {
            await c.RevertSnapshotAsync(r.GetValue(rs)!, r.GetValue(rn)!, ct);
            Console.Out.WriteLine($"{r.GetValue(rs)}: reverted to snapshot {r.GetValue(rn)}");
        }));
        cmd.Subcommands.Add(revert);

        var ds = new Argument<string>("server") { Description = "Server name or id" };
        var dn = new Argument<string>("name") { Description = "Snapshot name" };
        var delete = new Command("delete", "Delete a snapshot") { ds, dn };
        delete.SetAction((r, ct) => api(r, async c =>
        {
            await c.DeleteSnapshotAsync(r.GetValue(ds)!, r.GetValue(dn)!, ct);
            Console.Out.WriteLine($"{r.GetValue(ds)}: deleted snapshot {r.GetValue(dn)}");
        }));
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    public static Command Backup(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var keep = new Option<int?>("--keep") { Description = "Retention for this server from now on: keep the newest N backups" };
        var full = new Option<bool>("--full") { Description = "A full backup even when an incremental could be made (starts a new chain)" };
        var incremental = new Option<bool>("--incremental") { Description = "Build on the newest backup whatever the chain length (a full one when the chain cannot continue)" };
        var o = outputOption();
        var cmd = new Command("backup", "Back up a server's disk to the backup store: the first backup is full, later ones incremental (checksummed)")
            { server, keep, full, incremental, o };
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(full) && r.GetValue(incremental))
            {
                r.AddError("--full and --incremental exclude each other");
            }
        });
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var mode = r.GetValue(full) ? "full" : r.GetValue(incremental) ? "incremental" : null;
            var b = await c.BackupServerAsync(r.GetValue(server)!, new CreateBackupRequest(r.GetValue(keep), mode), ct);
            Output.Objects([b], r.GetValue(o), true, BackupHeaders, Row);
            if (b.FullReason is { } why && !Output.IsJson(r.GetValue(o)))
            {
                Console.Out.WriteLine($"full backup: {why}");
            }
        }));
        return cmd;
    }

    public static Command Policy(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var keep = new Option<int?>("--keep") { Description = "Restore points kept: the newest N backups (older ones go once no kept incremental needs them)" };
        var fullEvery = new Option<int?>("--full-every") { Description = "A full backup at least every N backups (the longest chain); 0 = follow --keep" };
        var o = outputOption();
        var cmd = new Command("backup-policy", "Show or set a server's backup retention (without options: show)") { server, keep, fullEvery, o };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var k = r.GetValue(keep);
            var f = r.GetValue(fullEvery);
            var p = k is null && f is null
                ? await c.GetBackupPolicyAsync(r.GetValue(server)!, ct)
                : await c.SetBackupPolicyAsync(r.GetValue(server)!, new BackupPolicyDto(k, f), ct);
            if (Output.IsJson(r.GetValue(o)))
            {
                Output.Json(p);
                return;
            }
            Output.Fields([
                ("keep", p.Keep?.ToString(Output.Inv)),
                ("full_every", p.FullEvery?.ToString(Output.Inv) ?? $"{p.Keep?.ToString(Output.Inv)} (follows keep)"),
                ("source", p.IsDefault ? "controller default" : "server policy"),
            ]);
        }));
        return cmd;
    }

    public static Command Restore(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var backup = new Argument<string>("backup") { Description = "Backup id (see `backup list`)" };
        var name = new Option<string>("--name") { Description = "Name of the new server", Required = true };
        var key = new Option<string?>("--key") { Description = "Keypair (default: the original server's)" };
        var wait = new Option<bool>("--wait") { Description = "Wait until the new server is active" };
        var o = outputOption();
        var cmd = new Command("restore", "Create a new server from a backup (every checksum is verified first)") { backup, name, key, wait, o };
        cmd.SetAction((r, ct) => api(r, async c =>
        {
            var s = await c.RestoreBackupAsync(r.GetValue(backup)!, new RestoreBackupRequest(r.GetValue(name), null, r.GetValue(key)), ct);
            if (r.GetValue(wait))
            {
                s = await Waiter.WaitAsync(c, s.Id, "active", ct);
            }
            Output.Server(s, r.GetValue(o));
        }));
        return cmd;
    }

    public static Command BackupGroup(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> outputOption)
    {
        var cmd = new Command("backup", "Backups in the backup store");

        var lo = outputOption();
        var ls = new Option<string?>("--server") { Description = "Only this server's backups (name or id)" };
        var list = new Command("list", "List backups, oldest first (kind, parent, chain length, size, verification)") { ls, lo };
        list.SetAction((r, ct) => api(r, async c => Output.Objects(await c.ListBackupsAsync(r.GetValue(ls), ct), r.GetValue(lo), false, BackupHeaders, Row)));
        cmd.Subcommands.Add(list);

        var sb = new Argument<string>("backup") { Description = "Backup id" };
        var so = outputOption();
        var show = new Command("show", "One backup, with why it is full or expired") { sb, so };
        show.SetAction((r, ct) => api(r, async c => Show(await c.GetBackupAsync(r.GetValue(sb)!, ct), r.GetValue(so))));
        cmd.Subcommands.Add(show);

        var db = new Argument<string>("backup") { Description = "Backup id" };
        var delete = new Command("delete", "Delete a backup (one that newer incrementals build on is expired and kept until they go)") { db };
        delete.SetAction((r, ct) => api(r, async c =>
        {
            var kept = await c.DeleteBackupAsync(r.GetValue(db)!, ct);
            Console.Out.WriteLine(kept is null
                ? $"deleted backup {r.GetValue(db)}"
                : $"backup {kept.Id} expired: {kept.ExpiredReason}");
        }));
        cmd.Subcommands.Add(delete);

        var vb = new Argument<string>("backup") { Description = "Backup id" };
        var vo = outputOption();
        var verify = new Command("verify", "Check every checksum of a backup and of every backup it builds on") { vb, vo };
        verify.SetAction((r, ct) => api(r, async c =>
        {
            var v = await c.VerifyBackupAsync(r.GetValue(vb)!, ct);
            if (Output.IsJson(r.GetValue(vo)))
            {
                Output.Json(v);
            }
            else
            {
                Console.Out.WriteLine(v.Ok ? $"backup {v.Id}: intact ({v.Chain.Count} link(s) checked)" : $"backup {v.Id}: DAMAGED");
                foreach (var p in v.Problems)
                {
                    Console.Out.WriteLine("  " + p);
                }
            }
            if (!v.Ok)
            {
                throw new StratusApiException(422, "backup_corrupt", "the backup chain is damaged");
            }
        }));
        cmd.Subcommands.Add(verify);
        return cmd;
    }
}
