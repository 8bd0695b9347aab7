using Stratus.Controller;
using Stratus.Core.Wire;

namespace Stratus.Api;

/// <summary>Registers the default image `tiny` and flavors tiny/small/medium on a new cloud.</summary>
public sealed class Bootstrap(StratusdOptions options, CloudService cloud) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.BootstrapDefaults)
        {
            return;
        }
        if ((await cloud.Store.ListFlavorsAsync(cancellationToken)).Count == 0)
        {
            await cloud.CreateFlavorAsync(new CreateFlavorRequest("tiny", 1, 256, 1, true), cancellationToken);
            await cloud.CreateFlavorAsync(new CreateFlavorRequest("small", 1, 1024, 10, true), cancellationToken);
            await cloud.CreateFlavorAsync(new CreateFlavorRequest("medium", 2, 4096, 20, true), cancellationToken);
        }
        if ((await cloud.Store.ListImagesAsync(cancellationToken)).Count == 0)
        {
            // With the simulated driver a record without a file is enough.
            var path = options.TinyImagePath is { } p && (File.Exists(p) || Directory.Exists(p)) ? p : null;
            await cloud.RegisterImageAsync(new CreateImageRequest("tiny", path is null || File.Exists(path) ? "qcow2" : "kernel", path, true), cancellationToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
