namespace Stratus.Controller;

/// <summary>Start-up configuration of the controller's workflows.</summary>
public sealed class ControllerOptions
{
    /// <summary>Longest wait between reconcile passes when nothing signals work. Default 250 ms; range 10 ms–10 s.</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How often every host is sent its full desired state even without changes (heals lost pushes). Default 5 s.</summary>
    public TimeSpan FullPushInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A task not finished after this long sets the server to error. Default 10 min.</summary>
    public TimeSpan TaskTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Largest user-data accepted, bytes. Default 64 KiB.</summary>
    public int MaxUserDataBytes { get; init; } = 64 * 1024;

    /// <summary>Number of hosts expected to register before the cloud reports ready (0 = any).</summary>
    public int ExpectedHosts { get; init; }

    /// <summary>Most servers scheduled in one reconcile pass. Default 1000.</summary>
    public int ScheduleBatch { get; init; } = 1000;

    /// <summary>Where new servers' disks go: "shared" when the cloud has a shared pool (so they migrate without copying), else "local".</summary>
    public string DefaultStoragePool { get; init; } = "local";

    /// <summary>True when the cloud has a shared storage pool (servers may ask for it).</summary>
    public bool HasSharedPool { get; init; }

    /// <summary>Most live migrations running at once out of (or into) one host. Default 2.</summary>
    public int MaxMigrationsPerHost { get; init; } = 2;

    /// <summary>A migration phase (prepare, complete) not answered within this is failed and rolled back. Default 60 s.</summary>
    public TimeSpan MigrationPhaseTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A whole migration not done within this is aborted and rolled back. Default 10 min.</summary>
    public TimeSpan MigrationTimeout { get; init; } = TimeSpan.FromMinutes(10);

    public void Validate()
    {
        if (ReconcileInterval < TimeSpan.FromMilliseconds(10) || ReconcileInterval > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentOutOfRangeException(nameof(ReconcileInterval), "must be between 10 ms and 10 s");
        }
        if (MaxUserDataBytes is < 0 or > 16 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxUserDataBytes), "must be between 0 and 16 MiB");
        }
    }
}
