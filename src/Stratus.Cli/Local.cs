using System.Diagnostics;
using Stratus.Client;

namespace Stratus.Cli;

/// <summary>The local verbs: `up` starts the controller (all-in-one), `down` stops it through its pid file.</summary>
public static class Local
{
    /// <summary>The repository root (set by ./stratus), else the current directory.</summary>
    public static string Home => Environment.GetEnvironmentVariable("STRATUS_HOME") is { Length: > 0 } h ? h : Directory.GetCurrentDirectory();

    public static string DefaultDataDir => Environment.GetEnvironmentVariable("STRATUS_DATA_DIR") is { Length: > 0 } d ? d : Path.Combine(Home, ".data");

    private static string Stratusd =>
        Environment.GetEnvironmentVariable("STRATUSD_PATH") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "stratusd");

    public static async Task<int> UpAsync(bool detach, string dataDir, int port, string driver, int hosts, IReadOnlyList<string> extra, CancellationToken ct)
    {
        dataDir = Path.GetFullPath(dataDir);
        Directory.CreateDirectory(dataDir);
        if (ReadPid(dataDir) is { } running && Alive(running))
        {
            Console.Error.WriteLine($"error: a controller already runs for {dataDir} (pid {running}); `./stratus down --data-dir {dataDir}` stops it");
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
        var args = new List<string> { "--data-dir", dataDir, "--port", port.ToString(Output.Inv), "--driver", driver, "--hosts", hosts.ToString(Output.Inv) };
        args.AddRange(extra);
        if (!detach)
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
        using var client = StratusClient.Create(url, TimeSpan.FromSeconds(5));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
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

    public static async Task<int> DownAsync(string dataDir, CancellationToken ct)
    {
        dataDir = Path.GetFullPath(dataDir);
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

    private static int? ReadPid(string dataDir)
    {
        var f = Path.Combine(dataDir, "stratusd.pid");
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
