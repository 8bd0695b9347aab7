using Stratus.Compute;
using Stratus.Compute.Qemu;
using Stratus.Controller;

namespace Stratus.Api;

/// <summary>Inspects uploaded images with <c>qemu-img info</c> and <c>qemu-img check</c>: format from content, backing files refused.</summary>
public sealed class QemuImageInspector : IImageInspector
{
    private readonly QemuImg _img = new();

    public async Task<ImageInspection> InspectAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            var info = await _img.InspectForImportAsync(path, cancellationToken);
            return new ImageInspection(info.Format, info.VirtualSizeBytes, null, null);
        }
        catch (ComputeException e)
        {
            return new ImageInspection(null, 0, e.Message, e.Code);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new ImageInspection(null, 0, "qemu-img is not installed on the controller", "inspector_unavailable");
        }
    }
}
