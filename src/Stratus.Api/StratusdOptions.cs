using Stratus.Controller;

namespace Stratus.Api;

/// <summary>Start-up options of `stratusd`, from the command line (--data-dir, --port, ...).</summary>
public sealed class StratusdOptions
{
    /// <summary>Directory holding the store, the pid file and every host's state.</summary>
    public string DataDir { get; set; } = Path.GetFullPath(".data");

    /// <summary>Listen address; loopback by default.</summary>
    public string Listen { get; set; } = "127.0.0.1";

    /// <summary>REST API port. Default 7300.</summary>
    public int Port { get; set; } = 7300;

    /// <summary>Agent endpoint port (gRPC over HTTP/2, cleartext on loopback). Default: the API port + 1; 0 picks a free one.</summary>
    public int? AgentPort { get; set; }

    /// <summary>Also serve agents on DATA_DIR/agent.sock (for agents on this machine). Default on.</summary>
    public bool AgentSocket { get; set; } = true;

    /// <summary>Remote agents the controller waits for before it reports ready (in addition to the embedded ones).</summary>
    public int ExpectRemoteHosts { get; set; }

    /// <summary>The shared storage pool (a directory every host reaches); null when there is none.</summary>
    public string? SharedPool { get; set; }

    /// <summary>HA: a host silent this long is suspected. Default 5 s.</summary>
    public TimeSpan HaSuspectAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>HA: the second witness — a storage heartbeat older than this. Default 8 s; must exceed the lease.</summary>
    public TimeSpan HaStorageTimeout { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>HA: a remote agent's lease; it fences its HA VMs when not renewed within it. Default 6 s.</summary>
    public TimeSpan HaLease { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>HA fault injection for tests (<c>--ha-hold-recovery NAME=PHASE[,NAME=PHASE…]</c>): see <see cref="HaOptions.HoldRecovery"/>. Empty in production.</summary>
    public IReadOnlyDictionary<string, string> HaHoldRecovery { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);
    /// <summary>HA admission control: host failures the cloud must tolerate (0 = off, the default; 0–100). Needs --shared-pool.</summary>
    public int HaTolerate { get; set; }

    /// <summary>HA out-of-band fence: a command run as `CMD HOST_NAME HOST_ID EPOCH` when a host is declared failed on a stopped storage heartbeat (exit 0 = fenced). Needs --shared-pool.</summary>
    public string? FenceCommand { get; set; }

    /// <summary>A fence command running longer is killed and counts as failed. Default 30 s; 1 s–10 min.</summary>
    public TimeSpan FenceTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Wait before a failed fence command runs again. Default 30 s; 1 s–1 h.</summary>
    public TimeSpan FenceRetry { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The backup store (a directory every agent reaches; default DATA/backups).</summary>
    public string? BackupDir { get; set; }

    /// <summary>Backups kept per server unless the server has its own policy (1–1000; default 7).</summary>
    public int BackupKeep { get; set; } = 7;

    /// <summary>Longest backup chain (a full backup at least every N backups) unless the server's policy says; null = the
    /// keep count (1–1000).</summary>
    public int? BackupFullEvery { get; set; }

    /// <summary>Hypervisor driver of the embedded agents: simulated or qemu.</summary>
    public string Driver { get; set; } = "simulated";

    /// <summary>Number of embedded hosts (agents) to run. Default 1; range 0–64.</summary>
    public int Hosts { get; set; } = 1;

    /// <summary>Scale of the simulated driver's delays (1 = realistic, ≤ 2 s per operation).</summary>
    public double SimDelayScale { get; set; } = 1.0;

    /// <summary>Register the default image and flavors when none exist.</summary>
    public bool BootstrapDefaults { get; set; } = true;

    /// <summary>Path of the default tiny image (a directory or file) to register, if any.</summary>
    public string? TinyImagePath { get; set; }

    /// <summary>How often the embedded agents sample resource use. Default 10 s; range 0.2 s–10 min.</summary>
    public TimeSpan MetricsInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Retention of the metric tiers and the compaction interval.</summary>
    public MetricsOptions Metrics { get; set; } = new();

    /// <summary>The consolidation loop, standby, power driver and energy report (off unless --consolidation).</summary>
    public Controller.Consolidation.ConsolidationOptions Consolidation { get; set; } = new();

    /// <summary>The scaling-group loop: check interval and the defaults of windows, cooldowns and health checks.</summary>
    public Controller.Scaling.ScalingOptions Scaling { get; set; } = new();

    /// <summary>Requests per second each user (or, without a credential, each source address) may make; 0 turns the limit off.</summary>
    public double RateLimit { get; set; } = 100;

    /// <summary>How many requests a user may make at once above the steady rate.</summary>
    public int RateBurst { get; set; } = 200;

    /// <summary>PEM certificate and key: with both, the API and the agents' port speak TLS only.</summary>
    public string? TlsCert { get; set; }

    public string? TlsKey { get; set; }

    /// <summary>Sessions, password hashing, login slow-down.</summary>
    public Controller.Identity.IdentityOptions Identity { get; set; } = new();

    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Port is < 1 or > 65535)
        {
            errors.Add($"--port must be between 1 and 65535 (got {Port})");
        }
        if (Driver is not ("simulated" or "qemu"))
        {
            errors.Add($"--driver must be simulated or qemu (got '{Driver}')");
        }
        if (Hosts is < 0 or > 1000)
        {
            errors.Add($"--hosts must be between 0 and 1000 (got {Hosts})");
        }
        if (HaLease < TimeSpan.FromSeconds(1) || HaStorageTimeout <= HaLease || HaSuspectAfter < TimeSpan.FromSeconds(1))
        {
            errors.Add("HA timings: --ha-lease ≥ 1 s, --ha-storage-timeout > --ha-lease (a cut-off agent must have fenced before its storage heartbeat counts as stopped), --ha-suspect-after ≥ 1 s");
        }
        if ((TlsCert is null) != (TlsKey is null))
        {
            errors.Add("--tls-cert and --tls-key go together");
        }
        else if (TlsCert is not null && (!File.Exists(TlsCert) || !File.Exists(TlsKey)))
        {
            errors.Add($"--tls-cert/--tls-key: '{(File.Exists(TlsCert) ? TlsKey : TlsCert)}' does not exist");
        }
        if (RateLimit < 0 || RateBurst < 1)
        {
            errors.Add("--rate-limit must be 0 (off) or more, --rate-burst at least 1");
        }
        foreach (var (name, phase) in HaHoldRecovery)
        {
            if (!HaOptions.HoldPhases.Contains(phase))
            {
                errors.Add($"--ha-hold-recovery {name}={phase}: the phase must be one of {string.Join(", ", HaOptions.HoldPhases)}");
            }
        }
        if (HaTolerate is < 0 or > 100)
        {
            errors.Add($"--ha-tolerate must be between 0 and 100 (got {HaTolerate})");
        }
        else if (HaTolerate > 0 && SharedPool is null)
        {
            errors.Add("--ha-tolerate needs --shared-pool (HA servers keep their disks there)");
        }
        if (FenceCommand is not null && (string.IsNullOrWhiteSpace(FenceCommand) || FenceCommand.Contains('\0', StringComparison.Ordinal)))
        {
            errors.Add("--fence-command must be a command line");
        }
        else if (FenceCommand is not null && SharedPool is null)
        {
            errors.Add("--fence-command needs --shared-pool (HA is off without one)");
        }
        if (FenceTimeout < TimeSpan.FromSeconds(1) || FenceTimeout > TimeSpan.FromMinutes(10))
        {
            errors.Add($"--fence-timeout must be between 1 and 600 seconds (got {FenceTimeout.TotalSeconds})");
        }
        if (FenceRetry < TimeSpan.FromSeconds(1) || FenceRetry > TimeSpan.FromHours(1))
        {
            errors.Add($"--fence-retry must be between 1 and 3600 seconds (got {FenceRetry.TotalSeconds})");
        }
        if (BackupKeep is < 1 or > 1000)
        {
            errors.Add($"--backup-keep must be between 1 and 1000 (got {BackupKeep})");
        }
        if (BackupFullEvery is < 1 or > 1000)
        {
            errors.Add($"--backup-full-every must be between 1 and 1000 (got {BackupFullEvery})");
        }
        if (AgentPort is < 0 or > 65535)
        {
            errors.Add($"--agent-port must be between 0 and 65535 (got {AgentPort})");
        }
        if (ExpectRemoteHosts is < 0 or > 10000)
        {
            errors.Add($"--expect-hosts must be between 0 and 10000 (got {ExpectRemoteHosts})");
        }
        if (SimDelayScale is < 0 or > 10)
        {
            errors.Add("--sim-delay-scale must be between 0 and 10");
        }
        if (MetricsInterval < TimeSpan.FromMilliseconds(200) || MetricsInterval > TimeSpan.FromMinutes(10))
        {
            errors.Add($"--metrics-interval must be between 0.2 and 600 seconds (got {MetricsInterval.TotalSeconds})");
        }
        try
        {
            Metrics.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            errors.Add($"metrics option {e.ParamName}: {e.Message.Split(" (Parameter", 2)[0]}");
        }
        errors.AddRange(Consolidation.Validate());
        errors.AddRange(Scaling.Validate());
        return errors;
    }
}
