using System.Diagnostics;
using Stratus.Client;

namespace Stratus.Cli;

/// <summary>The local verbs: `up` starts the controller (all-in-one), `down` stops it through its pid file.</summary>
public static class Local
{
    /// <summary>The repository root (set by ./stratus), else the current directory.</summary>
    public static string Home => Environment.GetEnvironmentVariable("STRATUS_HOME") is { Length: > 0 } h ? h : Directory.GetCurrentDirectory();

    public static string DefaultDataDir => Environment.GetEnvironmentVariable("STRATUS_DATA_DIR") is { Length: > 0 } d ? d : Path.Combine(Home, ".data");

    private static string AgentExe =>
        Environment.GetEnvironmentVariable("STRATUS_AGENT_PATH") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "stratus-agent");

    private static string Stratusd =>
        Environment.GetEnvironmentVariable("STRATUSD_PATH") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "stratusd");

    public static async Task<int> UpAsync(bool detach, string dataDir, int port, string driver, int hosts, IReadOnlyList<string> extra, CancellationToken ct,
        bool embedded = false)
    {
        dataDir = Path.GetFullPath(dataDir);
        Directory.CreateDirectory(dataDir);
        if (ReadPid(dataDir) is { } running && Alive(running))
        {
            Console.Error.WriteLine($"error: a controller already runs for {dataDir} (pid {running}); `./stratus down --data-dir {dataDir}` stops it");
            return 1;
        }
        if (PortTaken(port))
        {
            // Another process (maybe another cloud's controller) answers there: the new controller could not listen, and
            // waiting for it would talk to the other one.
            Console.Error.WriteLine($"error: port {port} on 127.0.0.1 is already in use (another Stratus controller? `./stratus down --data-dir DIR` stops one); choose another with --port");
            return 1;
        }
        if (!File.Exists(Stratusd))
        {
            Console.Error.WriteLine($"error: stratusd not found at {Stratusd}; run through ./stratus");
            return 1;
        }
        if (driver == "qemu" && !extra.Contains("--tiny-image"))
        {
            // The default guest: built from the distribution's packages when missing (seconds when cached).
            var tiny = Path.Combine(dataDir, "images", "tiny");
            var build = Path.Combine(Home, "tools", "guest", "build.sh");
            var psiBuild = new ProcessStartInfo("bash", [build, tiny]) { UseShellExecute = false, RedirectStandardOutput = true };
            using (var b = Process.Start(psiBuild)!)
            {
                var outText = await b.StandardOutput.ReadToEndAsync(ct);
                await b.WaitForExitAsync(ct);
                Console.Error.Write(outText);
                if (b.ExitCode != 0)
                {
                    Console.Error.WriteLine($"error: building the tiny guest image failed (exit {b.ExitCode}); see the output above");
                    return 1;
                }
            }
            extra = [.. extra, "--tiny-image", tiny];
        }
        // One host: its agent runs inside the controller (all-in-one). Several: one agent process each,
        // with its own state directory, all reaching one shared storage pool.
        var remote = hosts > 1 && !embedded;
        var shared = Path.Combine(dataDir, "shared");
        var args = new List<string> { "--data-dir", dataDir, "--port", port.ToString(Output.Inv), "--driver", driver };
        if (remote)
        {
            Directory.CreateDirectory(shared);
            args.AddRange(["--hosts", "0", "--expect-hosts", hosts.ToString(Output.Inv), "--shared-pool", shared]);
        }
        else
        {
            args.AddRange(["--hosts", hosts.ToString(Output.Inv)]);
        }
        args.AddRange(extra);
        if (!detach && !remote)
        {
            var psi = new ProcessStartInfo(Stratusd) { UseShellExecute = false };
            args.ForEach(psi.ArgumentList.Add);
            using var p = Process.Start(psi)!;
            await p.WaitForExitAsync(CancellationToken.None);
            return p.ExitCode;
        }
        var log = Path.Combine(dataDir, "stratusd.log");
        var quoted = string.Join(' ', new[] { Stratusd }.Concat(args).Select(Quote));
        var sh = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        sh.ArgumentList.Add("-c");
        sh.ArgumentList.Add($"setsid {quoted} >>{Quote(log)} 2>&1 </dev/null & echo $!");
        sh.RedirectStandardOutput = true;
        using (var p = Process.Start(sh)!)
        {
            await p.WaitForExitAsync(ct);
        }
        var url = new Uri($"http://127.0.0.1:{port}/");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
        // The controller writes its first admin's credential on a new cloud; record it for this URL so the CLI finds it.
        string? key = null;
        var started = DateTime.UtcNow;
        while ((key = Credentials.ReadBootstrapKey(dataDir)) is null && DateTime.UtcNow < deadline
            && !(DateTime.UtcNow - started > TimeSpan.FromSeconds(5) && ReadPid(dataDir) is null && ExitedEarly(dataDir)))
        {
            await Task.Delay(50, ct);
        }
        if (key is not null)
        {
            Credentials.SaveBootstrap(url, key);
        }
        using var client = StratusClient.Create(url, TimeSpan.FromSeconds(5), key);
        if (remote && await StartAgentsAsync(client, dataDir, driver, hosts, shared, extra, deadline, ct) is { } failed)
        {
            return failed;
        }
        string? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var h = await client.HealthAsync(ct);
                var msg = $"controller up; hosts {h.HostsUp}/{h.HostsExpected} ready={h.Ready}";
                if (msg != last)
                {
                    Console.Error.WriteLine(msg);
                    last = msg;
                }
                if (h.Ready)
                {
                    Console.Out.WriteLine($"Stratus is up at {url} (data {dataDir}, driver {driver}, {h.HostsUp} host(s)); log: {log}");
                    if (!detach)
                    {
                        return await ForegroundAsync(dataDir, ct);
                    }
                    return 0;
                }
            }
            catch (StratusApiException)
            {
                if (ReadPid(dataDir) is null && File.Exists(log) && ExitedEarly(dataDir))
                {
                    Console.Error.WriteLine("error: the controller exited while starting; last log lines:");
                    foreach (var line in File.ReadLines(log).TakeLast(15))
                    {
                        Console.Error.WriteLine("  " + line);
                    }
                    return 1;
                }
            }
            await Task.Delay(100, ct);
        }
        Console.Error.WriteLine($"error: the controller did not become ready within 180 s; see {log}");
        return 1;
    }

    private static bool ExitedEarly(string dataDir) =>
        !Process.GetProcessesByName("stratusd").Any(p => SafeCmdline(p.Id).Contains(dataDir, StringComparison.Ordinal));

    private static string SafeCmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>
    /// Starts one `stratus-agent` process per host that has none running (an agent that died is not
    /// restarted by anything else: tests kill them on purpose). Each gets its own state directory and
    /// token (issued once, kept in the directory with mode 0600) and dials the controller's unix socket.
    /// </summary>
    private static async Task<int?> StartAgentsAsync(StratusClient client, string dataDir, string driver, int hosts, string shared,
        IReadOnlyList<string> extra, DateTime deadline, CancellationToken ct)
    {
        if (!File.Exists(AgentExe))
        {
            Console.Error.WriteLine($"error: stratus-agent not found at {AgentExe}; run through ./stratus");
            return 1;
        }
        var waitingSince = DateTime.UtcNow;
        while (true)
        {
            try
            {
                await client.HealthAsync(ct);
                break;
            }
            catch (StratusApiException) when (DateTime.UtcNow < deadline)
            {
                // The controller writes its credential before it listens: one that then fails to bind (a port taken) exits.
                if (DateTime.UtcNow - waitingSince > TimeSpan.FromSeconds(5) && ReadPid(dataDir) is null && ExitedEarly(dataDir))
                {
                    var log = Path.Combine(dataDir, "stratusd.log");
                    Console.Error.WriteLine("error: the controller exited while starting; last log lines:");
                    foreach (var line in File.Exists(log) ? File.ReadLines(log).TakeLast(15) : [])
                    {
                        Console.Error.WriteLine("  " + line);
                    }
                    return 1;
                }
                await Task.Delay(100, ct);
            }
        }
        for (var i = 1; i <= hosts; i++)
        {
            var name = $"host-{i}";
            var dir = Path.Combine(dataDir, "agents", name);
            Directory.CreateDirectory(dir);
            var tokenFile = Path.Combine(dir, "token");
            if (!File.Exists(tokenFile))
            {
                var token = await client.IssueAgentTokenAsync(name, ct);
                File.WriteAllText(tokenFile, token.Token + "\n");
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
            }
            if (ReadPid(dir, "agent.pid") is { } pid && Alive(pid))
            {
                continue;
            }
            var agentArgs = new List<string>
            {
                AgentExe, "--controller", "unix:" + Path.Combine(dataDir, "agent.sock"), "--data-dir", dir, "--name", name,
                "--driver", driver, "--shared-pool", shared, "--token-file", tokenFile, "--stop-vms-on-exit",
            };
            var scale = extra.ToList().IndexOf("--sim-delay-scale");
            if (scale >= 0 && scale + 1 < extra.Count)
            {
                agentArgs.AddRange(["--sim-delay-scale", extra[scale + 1]]);
            }
            var sh = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            sh.ArgumentList.Add("-c");
            sh.ArgumentList.Add($"setsid {string.Join(' ', agentArgs.Select(Quote))} >>{Quote(Path.Combine(dir, "agent.log"))} 2>&1 </dev/null &");
            using var p = Process.Start(sh)!;
            await p.WaitForExitAsync(ct);
        }
        return null;
    }

    /// <summary>`up` without --detach for several hosts: wait until the controller exits or Ctrl-C, then bring everything down.</summary>
    private static async Task<int> ForegroundAsync(string dataDir, CancellationToken ct)
    {
        try
        {
            while (ReadPid(dataDir) is { } pid && Alive(pid))
            {
                await Task.Delay(500, ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
        return await DownAsync(dataDir, CancellationToken.None);
    }

    /// <summary>Stops the agent processes of a multi-host cloud; each stops its VMs before it exits.</summary>
    private static async Task StopAgentsAsync(string dataDir, CancellationToken ct)
    {
        var root = Path.Combine(dataDir, "agents");
        if (!Directory.Exists(root))
        {
            return;
        }
        var pids = Directory.GetDirectories(root).Select(d => ReadPid(d, "agent.pid")).OfType<int>().Where(Alive).ToList();
        pids.ForEach(pid => Signal(pid, "TERM"));
        var sw = Stopwatch.StartNew();
        while (pids.Any(Alive) && sw.Elapsed < TimeSpan.FromSeconds(25))
        {
            await Task.Delay(100, ct);
        }
        foreach (var pid in pids.Where(Alive))
        {
            Console.Error.WriteLine($"agent {pid} did not stop in time; killing it");
            Signal(pid, "KILL");
        }
        if (pids.Count > 0)
        {
            Console.Out.WriteLine($"{pids.Count} agent(s) stopped in {sw.Elapsed.TotalSeconds:0.0} s");
        }
    }

    public static async Task<int> DownAsync(string dataDir, CancellationToken ct)
    {
        dataDir = Path.GetFullPath(dataDir);
        await StopAgentsAsync(dataDir, ct);
        if (ReadPid(dataDir) is not { } pid || !Alive(pid))
        {
            Console.Out.WriteLine($"Stratus is not running for {dataDir}");
            return 0;
        }
        using (var p = Process.GetProcessById(pid))
        {
            Signal(pid, "TERM");
            var sw = Stopwatch.StartNew();
            while (Alive(pid) && sw.Elapsed < TimeSpan.FromSeconds(27))
            {
                await Task.Delay(100, ct);
            }
            if (Alive(pid))
            {
                Console.Error.WriteLine($"controller {pid} did not stop in time; killing it");
                Signal(pid, "KILL");
                await p.WaitForExitAsync(ct);
            }
            Console.Out.WriteLine($"Stratus stopped (pid {pid}) in {sw.Elapsed.TotalSeconds:0.0} s");
        }
        return 0;
    }

    private static void Signal(int pid, string sig)
    {
        using var k = Process.Start(new ProcessStartInfo("kill", [$"-{sig}", pid.ToString(Output.Inv)]) { UseShellExecute = false })!;
        k.WaitForExit();
    }

    private static bool PortTaken(int port)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        // As Kestrel binds: connections of a controller stopped a moment ago (TIME_WAIT) do not count, a listener does.
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Socket, System.Net.Sockets.SocketOptionName.ReuseAddress, true);
        try
        {
            socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
            return false;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return true;
        }
    }

    private static int? ReadPid(string dataDir, string file = "stratusd.pid")
    {
        var f = Path.Combine(dataDir, file);
        return File.Exists(f) && int.TryParse(File.ReadAllText(f).Trim(), out var pid) ? pid : null;
    }

    private static bool Alive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
