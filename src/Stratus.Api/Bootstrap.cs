using Stratus.Controller;
using Stratus.Core.Wire;

namespace Stratus.Api;

/// <summary>On a new cloud: the first admin and its credential file; the default image `tiny` and flavors tiny/small/medium (public).</summary>
public sealed class Bootstrap(StratusdOptions options, CloudService cloud, Controller.Identity.IdentityService identity) : IHostedService
{
    /// <summary>DATA_DIR/admin-credentials.json: the first admin's password and API key (mode 0600), written once on a new cloud.</summary>
    public static string CredentialFile(string dataDir) => Path.Combine(dataDir, "admin-credentials.json");

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await identity.BootstrapAdminAsync(CredentialFile(options.DataDir), cancellationToken);
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
