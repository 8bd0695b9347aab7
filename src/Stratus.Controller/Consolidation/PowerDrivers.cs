using System.Collections.Concurrent;
using Stratus.Core.Compute;

namespace Stratus.Controller.Consolidation;

/// <summary>
/// Switches physical hosts off and on (IPMI, Redfish, wake-on-LAN, a cloud API …). Called only for hosts with no
/// servers and no migration. On real hardware the host really powers down: its agent's stream drops, which for a
/// host in <c>standby</c> is expected, not a failure. Implementations are idempotent (powering off an off host
/// succeeds) and report failure by throwing; the caller then leaves (or puts back) the host <c>up</c>.
/// </summary>
public interface IPowerDriver
{
    /// <summary>Driver name ("noop", "simulated", …).</summary>
    string Name { get; }

    /// <summary>Powers the host down (or into a sleep state it can be woken from).</summary>
    Task PowerOffAsync(Host host, CancellationToken cancellationToken);

    /// <summary>Powers the host on. Returns once the power-on was accepted; the agent reconnects when the machine has booted.</summary>
    Task PowerOnAsync(Host host, CancellationToken cancellationToken);
}

/// <summary>Does nothing: standby is only a state in the store (no new servers land there). The default, and right for machines that cannot be power-managed.</summary>
public sealed class NoopPowerDriver : IPowerDriver
{
    public string Name => "noop";

    public Task PowerOffAsync(Host host, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task PowerOnAsync(Host host, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>One call a <see cref="SimulatedPowerDriver"/> received.</summary>
/// <param name="Action">"off" or "on".</param>
public sealed record PowerCall(string Host, string Action, DateTimeOffset At);

/// <summary>Records every call (tests assert on them) and waits <see cref="Delay"/> per call, as a BMC would; agents keep running.</summary>
public sealed class SimulatedPowerDriver(TimeProvider time) : IPowerDriver
{
    private readonly ConcurrentQueue<PowerCall> _calls = new();

    public string Name => "simulated";

    /// <summary>How long each call takes. Default zero.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>When set, calls for these host names throw (to test failure handling).</summary>
    public ConcurrentDictionary<string, bool> Failing { get; } = new(StringComparer.Ordinal);

    /// <summary>Every call so far, oldest first.</summary>
    public IReadOnlyList<PowerCall> Calls => [.. _calls];

    public Task PowerOffAsync(Host host, CancellationToken cancellationToken) => CallAsync(host, "off", cancellationToken);

    public Task PowerOnAsync(Host host, CancellationToken cancellationToken) => CallAsync(host, "on", cancellationToken);

    private async Task CallAsync(Host host, string action, CancellationToken ct)
    {
        if (Delay > TimeSpan.Zero)
        {
            await Task.Delay(Delay, time, ct);
        }
        if (Failing.ContainsKey(host.Name))
        {
            throw new InvalidOperationException($"simulated power {action} of {host.Name} failed");
        }
        _calls.Enqueue(new PowerCall(host.Name, action, time.GetUtcNow()));
    }
}
