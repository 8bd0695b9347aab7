using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>Runs `./stratus` as a user would: a real process, its exit code, stdout and stderr.</summary>
public static class Cli
{
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public Result Ok()
        {
            Assert.True(ExitCode == 0, $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}");
            return this;
        }

        public JsonElement Json() => JsonDocument.Parse(Stdout).RootElement.Clone();
    }

    public static async Task<Result> RunAsync(string url, params string[] args) => await RunInAsync(url, TimeSpan.FromMinutes(3), null, args);

    public static Task<Result> RunAsync(string url, TimeSpan timeout, params string[] args) => RunInAsync(url, timeout, null, args);

    /// <summary>Runs ./stratus; with <paramref name="configDir"/>, keys created by `keypair create` live under it.</summary>
    public static Task<Result> RunInAsync(string url, TimeSpan timeout, string? configDir, params string[] args) =>
        RunWithAsync(url, timeout, configDir, null, null, args);

    /// <summary>Runs ./stratus with text on standard input and extra environment variables.</summary>
    public static async Task<Result> RunWithAsync(string url, TimeSpan timeout, string? configDir, string? stdin, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(Path.Combine(RepoRoot, "stratus"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
            WorkingDirectory = RepoRoot,
        };
        psi.Environment["STRATUS_URL"] = url;
        if (configDir is not null)
        {
            psi.Environment["STRATUS_CONFIG_DIR"] = Path.Combine(configDir, "cfg");
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"./stratus {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
