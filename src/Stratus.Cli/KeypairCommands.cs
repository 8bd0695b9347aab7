using System.CommandLine;
using System.Diagnostics;
using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`keypair create|import|list|delete` and `server ssh`. Private keys stay on the client.</summary>
public static class KeypairCommands
{
    /// <summary>Where `keypair create` keeps private keys: $STRATUS_CONFIG_DIR, else the user's config dir, else .build/config.</summary>
    public static string KeyDir
    {
        get
        {
            var dir = Environment.GetEnvironmentVariable("STRATUS_CONFIG_DIR") is { Length: > 0 } c ? c
                : Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData) is { Length: > 0 } app ? Path.Combine(app, "stratus")
                : Path.Combine(Local.Home, ".build", "config");
            return Path.Combine(dir, "keys");
        }
    }

    public static Command Keypair(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api, Func<Option<string>> output)
    {
        var cmd = new Command("keypair", "SSH keypairs for servers");
        var name = new Argument<string>("name") { Description = "Keypair name" };
        var o1 = output();
        var create = new Command("create", "Generate a keypair locally (ssh-keygen, ed25519), keep the private key in the config dir, import the public key") { name, o1 };
        create.SetAction((r, ct) => api(r, async c =>
        {
            var n = r.GetValue(name)!;
            Directory.CreateDirectory(KeyDir);
            var path = Path.Combine(KeyDir, n);
            if (File.Exists(path))
            {
                throw new StratusApiException(0, "exists", $"a private key for '{n}' already exists at {path}");
            }
            await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", $"stratus-{n}", "-f", path], ct);
            try
            {
                var k = await c.ImportKeypairAsync(new ImportKeypairRequest(n, (await File.ReadAllTextAsync(path + ".pub", ct)).Trim()), ct);
                Print([k], r.GetValue(o1), true);
                Console.Error.WriteLine($"private key: {path}");
            }
            catch
            {
                File.Delete(path);
                File.Delete(path + ".pub");
                throw;
            }
        }));
        var iname = new Argument<string>("name") { Description = "Keypair name" };
        var file = new Argument<string>("file") { Description = "Public key file (e.g. ~/.ssh/id_ed25519.pub)" };
        var o2 = output();
        var import = new Command("import", "Import an existing public key") { iname, file, o2 };
        import.SetAction((r, ct) => api(r, async c =>
        {
            var f = r.GetValue(file)!;
            if (!File.Exists(f))
            {
                throw new StratusApiException(0, "file_not_found", $"'{f}' does not exist");
            }
            Print([await c.ImportKeypairAsync(new ImportKeypairRequest(r.GetValue(iname), await File.ReadAllTextAsync(f, ct)), ct)], r.GetValue(o2), true);
        }));
        var o3 = output();
        var list = new Command("list", "List keypairs") { o3 };
        list.SetAction((r, ct) => api(r, async c => Print(await c.ListKeypairsAsync(ct), r.GetValue(o3), false)));
        var dname = new Argument<string>("name") { Description = "Keypair name" };
        var delete = new Command("delete", "Delete a keypair (servers created with it keep the key)") { dname };
        delete.SetAction((r, ct) => api(r, async c =>
        {
            await c.DeleteKeypairAsync(r.GetValue(dname)!, ct);
            Console.Out.WriteLine($"keypair {r.GetValue(dname)} deleted");
        }));
        cmd.Subcommands.Add(create);
        cmd.Subcommands.Add(import);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(delete);
        return cmd;
    }

    /// <summary>`server ssh NAME [-- command…]`: SSH into the guest through its forward of port 22 with the keypair's private key.</summary>
    public static Command Ssh(Func<ParseResult, Func<StratusClient, Task>, Task<int>> api)
    {
        var server = new Argument<string>("server") { Description = "Server name or id" };
        var identity = new Option<string?>("--identity", "-i") { Description = "Private key file (default: the keypair's key in the config dir)" };
        var user = new Option<string>("--user", "-l") { Description = "Guest user", DefaultValueFactory = _ => "root" };
        var command = new Argument<string[]>("command") { Description = "Command to run in the guest (after --)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("ssh", "Open an SSH session to a server (through its forwarded port 22)") { server, identity, user, command };
        var exit = 0;
        cmd.SetAction(async (r, ct) =>
        {
            var rc = await api(r, async c =>
            {
                var s = await c.GetServerAsync(r.GetValue(server)!, ct);
                var fwd = s.Forwards.FirstOrDefault(f => f.GuestPort == 22 && f.HostPort != 0)
                    ?? throw new StratusApiException(0, "no_ssh_forward", $"server {s.Name} has no forward to guest port 22 (create it with --key or --forward 0:22)");
                var key = r.GetValue(identity);
                if (key is null && s.KeyName is { } kn && File.Exists(Path.Combine(KeyDir, kn)))
                {
                    key = Path.Combine(KeyDir, kn);
                }
                var args = new List<string>
                {
                    "-p", fwd.HostPort.ToString(Output.Inv), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                };
                if (key is not null)
                {
                    args.AddRange(["-i", key]);
                }
                args.Add($"{r.GetValue(user)}@127.0.0.1");
                args.AddRange(r.GetValue(command) ?? []);
                var psi = new ProcessStartInfo("ssh") { UseShellExecute = false };
                args.ForEach(psi.ArgumentList.Add);
                using var p = Process.Start(psi) ?? throw new StratusApiException(0, "ssh_missing", "ssh is not installed");
                await p.WaitForExitAsync(ct);
                exit = p.ExitCode;
            });
            return rc != 0 ? rc : exit;
        });
        return cmd;
    }

    private static void Print(IReadOnlyList<KeypairDto> list, string? format, bool single) =>
        Output.Objects(list, format, single, ["ID", "NAME", "FINGERPRINT"], k => [k.Id, k.Name, k.Fingerprint]);

    private static async Task RunAsync(string exe, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new StratusApiException(0, "missing_tool", $"{exe} is not installed (apt-get install openssh-client)");
        }
        using (p)
        {
            var err = await p.StandardError.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            if (p.ExitCode != 0)
            {
                throw new StratusApiException(0, "tool_failed", $"{exe} failed: {err.Trim()}");
            }
        }
    }
}
