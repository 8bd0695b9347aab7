using System.Diagnostics;
using Stratus.Compute;

namespace Stratus.Compute.Qemu;

/// <summary>Runs a host tool (qemu-img, mkfs.vfat, mcopy) exec'd directly, capturing its output; killed on cancellation.</summary>
internal static class ToolProcess
{
    /// <summary>Runs <paramref name="binary"/>; a missing binary is a <see cref="ComputeException"/> naming <paramref name="installHint"/>.</summary>
    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(
        string binary, IEnumerable<string> args, string installHint, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new ComputeException("hypervisor_error", $"could not start {binary}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ComputeException("hypervisor_error", $"could not start {binary}: {ex.Message} ({installHint})");
        }

        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await process.WaitForExitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                throw;
            }

            return (process.ExitCode, await stdout, await stderr);
        }
    }

    /// <summary>The absolute path of <paramref name="tool"/> (PATH, then the sbin and bin directories), or the name itself
    /// when it is nowhere (exec then reports it missing). A path is returned as it is.</summary>
    public static string Resolve(string tool)
    {
        if (tool.Contains('/', StringComparison.Ordinal))
        {
            return tool;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]))
        {
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, tool)))
            {
                return Path.Combine(dir, tool);
            }
        }

        return tool;
    }
}
