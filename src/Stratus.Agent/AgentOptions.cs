namespace Stratus.Agent;

/// <summary>Options of one agent (one host).</summary>
public sealed class AgentOptions
{
    /// <summary>The host's name, unique in the cloud; the agent registers under it.</summary>
    public required string HostName { get; init; }

    /// <summary>Directory for the agent's own state (applied reboot sequences, driver state).</summary>
    public required string StateDirectory { get; init; }

    /// <summary>How often the agent reports actual state (heartbeat). Default 1 s; range 0.05–60 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a graceful stop waits for the guest before forcing it off. Default 10 s.</summary>
    public TimeSpan GracefulStopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the agent samples and reports resource use (when its driver can). Default 10 s; range 0.2 s–10 min.</summary>
    public TimeSpan MetricsInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Availability zone the host belongs to. Default "default".</summary>
    public string Zone { get; init; } = "default";

    /// <summary>Storage pools this host reaches: always "local", plus "shared" when a shared pool is mounted.</summary>
    public IReadOnlyList<string> StoragePools { get; init; } = ["local"];

    /// <summary>The shared storage pool's directory (for the HA storage heartbeat and fence records); null when none.</summary>
    public string? SharedPoolDirectory { get; init; }

    /// <summary>How long the controller's storage heartbeat (rewritten every second) may stand still before the agent takes the
    /// controller for down and does not fence when its lease lapses. Default 3 s; range 0.1–60 s; shorter than the lease.</summary>
    public TimeSpan ControllerAwayAfter { get; init; } = TimeSpan.FromSeconds(3);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(HostName))
        {
            throw new ArgumentException("HostName must be set", nameof(HostName));
        }
        if (HeartbeatInterval < TimeSpan.FromMilliseconds(50) || HeartbeatInterval > TimeSpan.FromSeconds(60))
        {
            throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), "must be between 50 ms and 60 s");
        }
        if (ControllerAwayAfter < TimeSpan.FromMilliseconds(100) || ControllerAwayAfter > TimeSpan.FromSeconds(60))
        {
            throw new ArgumentOutOfRangeException(nameof(ControllerAwayAfter), "must be between 100 ms and 60 s");
        }
        if (MetricsInterval < TimeSpan.FromMilliseconds(200) || MetricsInterval > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(MetricsInterval), "must be between 200 ms and 10 min");
        }
    }
}
