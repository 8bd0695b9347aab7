using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Stratus.Core.Compute;

namespace Stratus.Controller;

/// <summary>What an out-of-band fence attempt found.</summary>
/// <param name="Fenced">True only when the fence says the host is off (runs nothing).</param>
/// <param name="Detail">For the incident timeline: exit code, time taken, the output's tail, or why it failed.</param>
public sealed record FenceResult(bool Fenced, string Detail);

/// <summary>
/// An out-of-band fence: makes sure a host runs nothing, without its agent's help (IPMI or Redfish power off, a PDU
/// outlet). Must be idempotent: it may run again for the same host and epoch (after a failure, or a controller restart).
/// </summary>
public interface IHostFence
{
    /// <summary>Fences <paramref name="host"/>, declared failed at <paramref name="epoch"/>. A failed fence is a result, not an exception; cancellation (the controller stopping) throws.</summary>
    Task<FenceResult> FenceAsync(Host host, long epoch, CancellationToken cancellationToken);
}

/// <summary>
/// The fence as a command (<see cref="HaOptions.FenceCommand"/>): run by <c>/bin/sh -c</c> with the host's name, id and
/// epoch appended as arguments (so the command line may hold its own arguments and quotes) and in the environment as
/// STRATUS_HOST_NAME, STRATUS_HOST_ID and STRATUS_EPOCH. Exit code 0 means fenced; any other exit, a command that cannot
/// start, or one still running after <see cref="HaOptions.FenceTimeout"/> (killed with its process tree) means not fenced.
/// </summary>
public sealed class CommandFence(HaOptions options, TimeProvider time) : IHostFence
{
    private const int OutputTail = 200;

    public async Task<FenceResult> FenceAsync(Host host, long epoch, CancellationToken cancellationToken)
    {
        var command = options.FenceCommand ?? throw new InvalidOperationException("no fence command configured");
        var epochText = epoch.ToString(CultureInfo.InvariantCulture);
        var psi = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { "-c", command + " \"$@\"", "stratus-fence", host.Name, host.Id.ToString(), epochText })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["STRATUS_HOST_NAME"] = host.Name;
        psi.Environment["STRATUS_HOST_ID"] = host.Id.ToString();
        psi.Environment["STRATUS_EPOCH"] = epochText;
        // The timer is armed before the process starts, on the injected clock, so tests can run the timeout in virtual time.
        using var timeout = new CancellationTokenSource(options.FenceTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var started = time.GetTimestamp();
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new Win32Exception("no process");
        }
        catch (Win32Exception e)
        {
            return new(false, $"the fence command could not start: {e.Message}");
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            try
            {
                await process.WaitForExitAsync(linked.Token);
            }
            catch (OperationCanceledException)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // it exited meanwhile
                }
                await process.WaitForExitAsync(CancellationToken.None);
                cancellationToken.ThrowIfCancellationRequested();
                return new(false, string.Create(CultureInfo.InvariantCulture, $"the fence command timed out after {options.FenceTimeout.TotalSeconds:0.#} s and was killed"));
            }
            var took = time.GetElapsedTime(started).TotalSeconds;
            var output = Tail(await stderr) is { Length: > 0 } err ? err : Tail(await stdout);
            var said = output.Length > 0 ? $": {output}" : "";
            return process.ExitCode == 0
                ? new(true, string.Create(CultureInfo.InvariantCulture, $"the fence command exited 0 after {took:0.0} s{said}"))
                : new(false, string.Create(CultureInfo.InvariantCulture, $"the fence command exited {process.ExitCode} after {took:0.0} s{said}"));
        }
    }

    private static string Tail(string text)
    {
        var flat = string.Join(' ', text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return flat.Length <= OutputTail ? flat : "…" + flat[^OutputTail..];
    }
}
