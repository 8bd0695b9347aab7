using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Storage;

namespace Stratus.Controller.Consolidation;

/// <summary>A host's move into or out of standby, as the controller did it.</summary>
public sealed record PowerTransition(HostId Host, DateTimeOffset At, bool Standby, string Reason);

/// <summary>
/// Puts empty hosts in <c>standby</c> and wakes them. Standby: the host is read, found empty (no live server, no
/// migration touching it), then compare-and-swapped to <c>standby</c> on the generation read — so a claim that landed
/// meanwhile makes the swap fail (claims bump the generation and need <c>state='up'</c>) — and only then powered off;
/// if power-off fails it goes back to <c>up</c>. Wake: power on, then <c>up</c>. Transitions are kept in memory for the
/// energy report (a restarted controller knows only the current state).
/// </summary>
public sealed partial class PowerManager(
    IStateStore store, IPowerDriver power, ConsolidationOptions options, ReconcileSignal signal, TimeProvider time, ILogger<PowerManager> log) : ICapacityWaker
{
    private readonly Lock _lock = new();
    private readonly List<PowerTransition> _history = [];
    private readonly ConcurrentDictionary<HostId, Task> _waking = new();
    private DateTimeOffset _lastWake = DateTimeOffset.MinValue;

    /// <summary>The power driver in use.</summary>
    public IPowerDriver Driver => power;

    /// <summary>Standby transitions since start, oldest first (bounded: the newest 10,000).</summary>
    public IReadOnlyList<PowerTransition> History
    {
        get
        {
            lock (_lock)
            {
                return [.. _history];
            }
        }
    }

    /// <summary>Raised after a host was woken on behalf of a server (the loop logs it as a "capacity" pass).</summary>
    public event Action<Host, string>? Woken;

    /// <summary>Puts an empty up host in standby. Returns a reason when it did not (not empty, changed, power-off failed), null on success.</summary>
    public async Task<string?> StandbyAsync(HostId id, string reason, CancellationToken ct)
    {
        var h = await store.GetHostAsync(id, ct);
        if (h is null || h.State != HostState.Up)
        {
            return "host is not up";
        }
        if ((await store.ListInstancesOnHostAsync(id, ct)).Count > 0)
        {
            return "host has servers";
        }
        // Hysteresis: a host woken for capacity is not switched off again before the servers it was woken
        // for had their settle time to land on it.
        var woken = History.LastOrDefault(t => t.Host == id);
        if (woken is { Standby: false } && time.GetUtcNow() - woken.At < options.WakeSettle)
        {
            return "woken moments ago";
        }
        if ((await store.ListMigrationsAsync(ct)).Any(m => m.Source == id || m.Destination == id))
        {
            return "a migration touches the host";
        }
        if (await store.SetHostStateAsync(id, HostState.Standby, h.Generation, ct) != CasOutcome.Ok)
        {
            return "host changed meanwhile";
        }
        try
        {
            await power.PowerOffAsync(h, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogPowerFailed(log, e, id, "off");
            await SetStateAsync(id, HostState.Standby, HostState.Up, CancellationToken.None);
            return $"power-off failed: {e.Message}";
        }
        Record(new PowerTransition(id, time.GetUtcNow(), true, reason));
        LogStandby(log, id, reason);
        return null;
    }

    /// <summary>Powers a standby host on and returns it to <c>up</c>. Null on success, else why not.</summary>
    public async Task<string?> WakeAsync(HostId id, string reason, CancellationToken ct)
    {
        var h = await store.GetHostAsync(id, ct);
        if (h is null || h.State != HostState.Standby)
        {
            return "host is not in standby";
        }
        try
        {
            await power.PowerOnAsync(h, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogPowerFailed(log, e, id, "on");
            return $"power-on failed: {e.Message}";
        }
        if (!await SetStateAsync(id, HostState.Standby, HostState.Up, ct))
        {
            return "host left standby meanwhile";
        }
        Record(new PowerTransition(id, time.GetUtcNow(), false, reason));
        LogWoken(log, id, reason);
        signal.Signal(id);
        return null;
    }

    /// <inheritdoc />
    public async Task<bool> WakeForAsync(Instance server, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            // One wake serves every server that was waiting: give the woken host time to be used before waking another.
            if (!_waking.IsEmpty || now - _lastWake < options.WakeSettle)
            {
                return true;
            }
        }
        var candidates = (await store.ListHostsAsync(cancellationToken))
            .Where(h => h.State == HostState.Standby && server.Resources.FitsIn(h.Free))
            .OrderByDescending(h => h.Free.MemoryMib).ThenBy(h => h.Name, StringComparer.Ordinal).ToList();
        if (candidates.Count == 0)
        {
            return false;
        }
        var host = candidates[0];
        lock (_lock)
        {
            if (!_waking.IsEmpty)
            {
                return true;
            }
            _lastWake = now;
            _waking[host.Id] = Task.Run(async () =>
            {
                try
                {
                    var reason = $"server '{server.Name}' needs room ({server.Resources})";
                    if (await WakeAsync(host.Id, reason, CancellationToken.None) is null && await store.GetHostAsync(host.Id, CancellationToken.None) is { } woken)
                    {
                        Woken?.Invoke(woken, reason);
                    }
                }
                catch (Exception e)
                {
                    LogPowerFailed(log, e, host.Id, "on");
                }
                finally
                {
                    lock (_lock)
                    {
                        _lastWake = time.GetUtcNow();
                        _waking.TryRemove(host.Id, out _);
                    }
                    signal.Signal();
                }
            }, CancellationToken.None);
        }
        return true;
    }

    /// <summary>Waits for wakes in progress (tests).</summary>
    public Task WhenWokenAsync() => Task.WhenAll(_waking.Values);

    private async Task<bool> SetStateAsync(HostId id, HostState from, HostState to, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var h = await store.GetHostAsync(id, ct);
            if (h is null || h.State != from)
            {
                return false;
            }
            if (await store.SetHostStateAsync(id, to, h.Generation, ct) == CasOutcome.Ok)
            {
                return true;
            }
        }
        return false;
    }

    private void Record(PowerTransition t)
    {
        lock (_lock)
        {
            _history.Add(t);
            if (_history.Count > 10_000)
            {
                _history.RemoveAt(0);
            }
        }
    }

    [LoggerMessage(60, LogLevel.Information, "Host {HostId} in standby: {Reason}")]
    private static partial void LogStandby(ILogger log, HostId hostId, string reason);

    [LoggerMessage(61, LogLevel.Information, "Host {HostId} woken: {Reason}")]
    private static partial void LogWoken(ILogger log, HostId hostId, string reason);

    [LoggerMessage(62, LogLevel.Warning, "Host {HostId}: power {Action} failed")]
    private static partial void LogPowerFailed(ILogger log, Exception e, HostId hostId, string action);
}
