using System.Collections.Concurrent;
using System.Diagnostics;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Decides between KVM and TCG by a bounded trial boot: QEMU with <c>-accel kvm</c> and no boot device must bring its
/// firmware (SeaBIOS, which logs to the debug console at port 0x402) to "No bootable device" within the timeout.
/// <c>/dev/kvm</c> can exist while nested KVM hangs, so its presence alone proves nothing; the trial uses <c>-cpu host</c>,
/// as real VMs do, because nested KVM can boot QEMU's default CPU model and still abort on the host model's MSRs.
/// Results are cached per binary.
/// </summary>
public static class AcceleratorProbe
{
    private static readonly ConcurrentDictionary<string, Task<string>> Cache = new(StringComparer.Ordinal);

    /// <summary>"kvm" when a trial boot with KVM reached the firmware's boot menu end in time, else "tcg".</summary>
    public static Task<string> DetectAsync(string qemuBinary, TimeSpan timeout, CancellationToken cancellationToken) =>
        Cache.GetOrAdd(qemuBinary, b => ProbeAsync(b, timeout, cancellationToken));

    private static async Task<string> ProbeAsync(string qemuBinary, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!File.Exists("/dev/kvm"))
        {
            return "tcg";
        }

        try
        {
            await using (new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "tcg";
        }

        var log = Path.Combine(Path.GetTempPath(), $"stratus-kvm-probe-{Environment.ProcessId}-{Guid.NewGuid():N}.log");
        var psi = new ProcessStartInfo(qemuBinary)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     // The CPU model real VMs get: nested KVM may boot the default model yet assert on -cpu host's MSRs.
                     "-accel", "kvm", "-cpu", "host", "-nodefaults", "-no-user-config", "-display", "none", "-m", "16", "-no-reboot",
                     "-sandbox", "on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny",
                     "-debugcon", "file:" + log, "-global", "isa-debugcon.iobase=0x402",
                 })
        {
            psi.ArgumentList.Add(a);
        }

        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "tcg";
        }

        using (process)
        {
            process.StandardInput.Close();
            _ = process.StandardOutput.ReadToEndAsync(cancellationToken);
            _ = process.StandardError.ReadToEndAsync(cancellationToken);
            var deadline = Stopwatch.StartNew();
            var works = false;
            try
            {
                while (deadline.Elapsed < timeout && !process.HasExited)
                {
                    if (File.Exists(log))
                    {
                        var text = await ReadSharedAsync(log, cancellationToken);
                        if (text.Contains("No bootable device", StringComparison.Ordinal))
                        {
                            works = true;
                            break;
                        }
                    }

                    await Task.Delay(50, cancellationToken);
                }
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill();
                    await process.WaitForExitAsync(CancellationToken.None);
                }

                File.Delete(log);
            }

            return works ? "kvm" : "tcg";
        }
    }

    private static async Task<string> ReadSharedAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(cancellationToken);
    }
}
