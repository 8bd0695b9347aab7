using System.CommandLine;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`server snapshot create|list|revert|delete`, `server backup`, `server restore`, `backup list`.</summary>
public static class DataProtectionCommands
{
    private static readonly string[] SnapshotHeaders = ["NAME", "MEMORY", "STATUS", "VMSTATE_MIB", "CREATED"];
    private static readonly string[] BackupHeaders = ["ID", "SERVER", "KIND", "STATUS", "SIZE_MIB", "CREATED"];

    private static string?[] Row(SnapshotDto s) =>
        [s.Name, s.WithMemory ? "yes" : "no", s.Status, (s.VmStateBytes / 1048576.0).ToString("0.0", Output.Inv), s.CreatedAt.ToString("u", Output.Inv)];

    private static string?[] Row(BackupDto b) =>
        [b.Id, b.ServerName, b.Kind, b.Status, (b.SizeBytes / 1048576.0).ToString("0.0", Output.Inv), b.CreatedAt.ToString("u", Output.Inv)];

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
        var o = outputOption();
        var cmd = new Command("backup", "Back up a server's disk to the backup store (checksummed)") { server, keep, o };
        cmd.SetAction((r, ct) => api(r, async c =>
            Output.Objects([await c.BackupServerAsync(r.GetValue(server)!, new CreateBackupRequest(r.GetValue(keep)), ct)], r.GetValue(o), true, BackupHeaders, Row)));
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
        var o = outputOption();
        var list = new Command("list", "List backups") { o };
        list.SetAction((r, ct) => api(r, async c => Output.Objects(await c.ListBackupsAsync(ct), r.GetValue(o), false, BackupHeaders, Row)));
        var cmd = new Command("backup", "Backups in the backup store");
        cmd.Subcommands.Add(list);
        return cmd;
    }
}
