using System.Diagnostics;
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
}
