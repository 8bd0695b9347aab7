using System.Diagnostics;
using Stratus.Controller;
using Stratus.Core.Ids;

namespace Stratus.Api;

/// <summary>
/// Asks QEMU's own image locking whether a VM's disk on the shared pool is in use: <c>qemu-img info</c>
/// without <c>-U</c> cannot get its shared lock while a QEMU process holds the image for writing.
/// </summary>
public sealed class QemuImgLockProbe(StratusdOptions options) : IDiskLockProbe
{
    public async Task<bool?> IsLockedAsync(InstanceId id, CancellationToken ct)
    {
        if (options.SharedPool is not { } pool)
        {
            return null;
        }
        var disk = Path.Combine(pool, id.ToString(), "disk.qcow2");
        if (!File.Exists(disk))
        {
            return null;
        }
        var psi = new ProcessStartInfo("qemu-img") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "info", "--output=json", disk })
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var err = await p.StandardError.ReadToEndAsync(ct);
        await stdout;
        await p.WaitForExitAsync(ct);
        return p.ExitCode == 0 ? false : err.Contains("lock", StringComparison.OrdinalIgnoreCase) ? true : null;
    }
}
