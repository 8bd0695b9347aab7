using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>What the multi-host scenarios share: the guest's page, its forward, and starting an agent by hand.</summary>
internal static class ScenarioKit
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    /// <summary>The guest's status page on a forwarded port, or null when nothing answers.</summary>
    public static async Task<string?> PageAsync(int port)
    {
        try
        {
            return await Http.GetStringAsync($"http://127.0.0.1:{port}/");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>The host port forwarded to the guest's port 80.</summary>
    public static int HttpPort(JsonElement server) =>
        server.GetProperty("forwards").EnumerateArray().First(f => f.GetProperty("guest_port").GetInt32() == 80).GetProperty("host_port").GetInt32();

    /// <summary>Starts a host's stratus-agent by hand (as on a real server) in the background, with the token `up` issued it.</summary>
    public static async Task StartAgentAsync(string data, string host, string? controller)
    {
        var dir = Path.Combine(data, "agents", host);
        var exe = Path.Combine(Cli.RepoRoot, "src", "Stratus.Agent", "bin", "Release", "net10.0", "stratus-agent");
        var args = new[]
        {
            "--controller", controller ?? "unix:" + Path.Combine(data, "agent.sock"), "--data-dir", dir, "--name", host, "--driver", "qemu",
            "--shared-pool", Path.Combine(data, "shared"), "--token-file", Path.Combine(dir, "token"), "--stop-vms-on-exit",
        };
        var sh = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        sh.ArgumentList.Add("-c");
        sh.ArgumentList.Add($"setsid {exe} {string.Join(' ', args.Select(a => "'" + a + "'"))} >>'{Path.Combine(dir, "agent.log")}' 2>&1 </dev/null &");
        using var p = Process.Start(sh)!;
        await p.WaitForExitAsync();
    }

    /// <summary>Live QEMU processes per VM id (cmdline contains the id), with their pids and command lines.</summary>
    public static Dictionary<string, List<(int Pid, string Cmdline)>> QemuProcessesByVm(IEnumerable<string> ids)
    {
        var result = ids.ToDictionary(i => i, _ => new List<(int, string)>());
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            var pid = Path.GetFileName(dir);
            if (!pid.All(char.IsAsciiDigit))
            {
                continue;
            }
            try
            {
                var cmd = File.ReadAllText($"/proc/{pid}/cmdline");
                if (!cmd.Contains("qemu-system", StringComparison.Ordinal) || File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (var id in result.Keys.Where(id => cmd.Contains(id, StringComparison.Ordinal)))
                {
                    result[id].Add((int.Parse(pid, CultureInfo.InvariantCulture), cmd.Replace('\0', ' ')));
                }
            }
            catch (IOException)
            {
            }
        }
        return result;
    }

    /// <summary>Live QEMU processes per VM id (cmdline contains the id), with their pids.</summary>
    public static Dictionary<string, List<int>> QemuByVm(IEnumerable<string> ids) =>
        QemuProcessesByVm(ids).ToDictionary(kv => kv.Key, kv => kv.Value.Select(p => p.Pid).ToList());

    /// <summary>
    /// Ends a scenario's cloud: `down`, the controller's and agents' logs kept under .build/test-results/<paramref name="logs"/>
    /// for a post-mortem, every process still naming the data directory killed (agents and QEMUs a test killed the
    /// controller of), and the data directory removed (unless STRATUS_KEEP_TEST_DATA is set).
    /// </summary>
    public static async Task TearDownAsync(string url, string data, string logs)
    {
        try
        {
            await Cli.RunAsync(url, "down", "--data-dir", data);
            var keep = Path.Combine(Cli.RepoRoot, ".build", "test-results", logs);
            Directory.CreateDirectory(keep);
            foreach (var log in Directory.EnumerateFiles(data, "*.log", SearchOption.AllDirectories))
            {
                File.Copy(log, Path.Combine(keep, Path.GetRelativePath(data, log).Replace('/', '_')), overwrite: true);
            }
        }
        finally
        {
            foreach (var dir in Directory.GetDirectories("/proc").Where(d => Path.GetFileName(d).All(char.IsAsciiDigit)))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(data, StringComparison.Ordinal))
                    {
                        Process.GetProcessById(int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture)).Kill();
                    }
                }
                catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or UnauthorizedAccessException)
                {
                }
            }
            try
            {
                if (Environment.GetEnvironmentVariable("STRATUS_KEEP_TEST_DATA") is not { Length: > 0 })
                {
                    Directory.Delete(data, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
