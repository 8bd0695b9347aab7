using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Agent;

/// <summary>
/// The agent's half of high availability. Three duties:
/// <list type="bullet">
/// <item>A storage heartbeat: <c>SHARED/.ha/HOST.hb</c> touched every second while the agent is not fenced
/// (the controller's second witness).</item>
/// <item>Self-fencing: a remote agent's lease is renewed after every report the controller processed;
/// when no renewal came for the lease period, it kills its HA VMs, writes <c>SHARED/.ha/HOST.fenced</c>
/// (with the epoch it knew) and stops the storage heartbeat — so by the time the controller sees either
/// witness, no HA VM of this host runs. Non-HA VMs keep running through a cut.</item>
/// <item>Release: a shared-pool VM that vanishes from this host's desired state was recovered (or moved)
/// elsewhere: it is stopped and its local files removed, never its shared disk.</item>
/// </list>
/// </summary>
public sealed partial class AgentRuntime
{
    private readonly ConcurrentDictionary<InstanceId, byte> _release = new();
    private readonly ConcurrentDictionary<InstanceId, byte> _fencedVms = new();
    private DateTimeOffset? _leaseUntil;
    private TimeSpan _leaseValid = TimeSpan.FromSeconds(6);
    private string? _controllerBeat;
    private DateTimeOffset _controllerBeatChangedAt;
    private Task<string?>? _controllerBeatRead;
    private bool _fenceDeferredNoted;

    private volatile bool _fenced;
    private int _restartHaOnNextPush;
    private DateTimeOffset _lastStorageBeat;

    /// <summary>True while this agent has fenced itself (lease lapsed).</summary>
    public bool Fenced => _fenced;

    private HashSet<InstanceId>? _haKnown;

    private string HaFile => Path.Combine(_options.StateDirectory, "ha-vms.json");

    /// <summary>The HA VMs of this host as last told by the controller, kept on disk: an agent restarted and cut off
    /// before its first desired state must still know which VMs to fence.</summary>
    private HashSet<InstanceId> HaKnown
    {
        get
        {
            if (_haKnown is null)
            {
                _haKnown = File.Exists(HaFile)
                    ? [.. (System.Text.Json.JsonSerializer.Deserialize<List<Guid>>(File.ReadAllText(HaFile)) ?? []).Select(g => new InstanceId(g))]
                    : [];
            }
            return _haKnown;
        }
    }

    /// <summary>Records the HA VMs of a desired state (called for every push).</summary>
    private void RememberHa(DesiredHostState desired)
    {
        var now = desired.Vms.Where(v => v.Ha).Select(v => v.Id).ToHashSet();
        lock (_rebootLock)
        {
            if (now.SetEquals(HaKnown))
            {
                return;
            }
            _haKnown = now;
            var tmp = HaFile + ".tmp";
            File.WriteAllText(tmp, System.Text.Json.JsonSerializer.Serialize(now.Select(i => i.Value)));
            File.Move(tmp, HaFile, overwrite: true);
        }
    }

    private string? HaDirectory => _options.SharedPoolDirectory is { } p ? Path.Combine(p, ".ha") : null;

    public Task RenewLeaseAsync(long epoch, TimeSpan valid, CancellationToken cancellationToken)
    {
        _leaseUntil = _time.GetUtcNow() + valid;
        _leaseValid = valid;
        _fenceDeferredNoted = false;
        if (_fenced)
        {
            _fenced = false;
            if (HaDirectory is { } dir)
            {
                File.Delete(Path.Combine(dir, _options.HostName + ".fenced"));
            }
            LogUnfenced(_log, _options.HostName);
            // HA VMs restart only on the controller's next desired state, which is authoritative: one it
            // recovered elsewhere meanwhile is no longer listed (and is released, never started here).
            Volatile.Write(ref _restartHaOnNextPush, 1);
        }
        return Task.CompletedTask;
    }

    /// <summary>Called every heartbeat tick: storage heartbeat and the lease check.</summary>
    private async Task HaTickAsync(CancellationToken ct)
    {
        if (HaDirectory is not { } dir)
        {
            return;
        }
        var now = _time.GetUtcNow();
        var controller = await ReadControllerBeatAsync(dir, now);
        if (controller == ControllerLiveness.Back && _leaseUntil is { } lapsing && lapsing < now + _leaseValid)
        {
            // The controller was down and is back: give this agent one lease period to reconnect before it counts as cut off.
            _leaseUntil = now + _leaseValid;
            LogControllerBack(_log, _options.HostName);
        }
        if (_leaseUntil is { } until && now > until && !_fenced)
        {
            if (controller == ControllerLiveness.Away)
            {
                // No controller runs, so none can restart these VMs elsewhere: fencing would only take them down. A controller
                // that comes back rewrites its heartbeat; then the lease counts again (and a restarted controller declares
                // nothing before this agent has fenced: its witnesses are this agent's fence record or stopped heartbeat).
                if (!_fenceDeferredNoted)
                {
                    _fenceDeferredNoted = true;
                    LogFenceDeferred(_log, _options.HostName, (now - _controllerBeatChangedAt).TotalSeconds);
                }
            }
            else
            {
                await FenceAsync(dir, ct);
            }
        }
        if (!_fenced && now - _lastStorageBeat >= TimeSpan.FromSeconds(1))
        {
            Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(Path.Combine(dir, _options.HostName + ".hb"),
                string.Create(CultureInfo.InvariantCulture, $"{_epoch} {now:O}\n"), ct);
            _lastStorageBeat = now;
        }
    }

    private enum ControllerLiveness
    {
        /// <summary>No controller heartbeat readable (none written, or the pool does not answer): fence as the lease says.</summary>
        Unknown,
        Alive,
        /// <summary>The heartbeat stands still: the controller is down.</summary>
        Away,
        /// <summary>The heartbeat moved again after standing still: the controller restarted.</summary>
        Back,
    }

    /// <summary>Reads the controller's storage heartbeat (comparing its content between reads, so clocks need not agree). A read
    /// that does not finish within half a second — a hung pool — counts as unknown, never as a controller outage.</summary>
    private async Task<ControllerLiveness> ReadControllerBeatAsync(string dir, DateTimeOffset now)
    {
        if (_controllerBeatRead is { IsCompleted: false })
        {
            return ControllerLiveness.Unknown;
        }
        var file = Path.Combine(dir, "controller.hb");
        var read = _controllerBeatRead = Task.Run(() => File.Exists(file) ? File.ReadAllText(file) : null);
        string? text;
        try
        {
            text = await read.WaitAsync(TimeSpan.FromMilliseconds(500), _time);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TimeoutException)
        {
            return ControllerLiveness.Unknown;
        }
        if (text is null)
        {
            return ControllerLiveness.Unknown;
        }
        if (text != _controllerBeat)
        {
            var wasAway = _controllerBeat is not null && now - _controllerBeatChangedAt >= _options.ControllerAwayAfter;
            _controllerBeat = text;
            _controllerBeatChangedAt = now;
            return wasAway ? ControllerLiveness.Back : ControllerLiveness.Alive;
        }
        return now - _controllerBeatChangedAt >= _options.ControllerAwayAfter ? ControllerLiveness.Away : ControllerLiveness.Alive;
    }

    /// <summary>Whether a VM is still one this agent stopped by fencing (a fenced VM that runs again is no longer one).</summary>
    private bool StillFenced(VmStatus s)
    {
        if (!_fencedVms.ContainsKey(s.Id))
        {
            return false;
        }
        if (s.Power is PowerState.Running or PowerState.Paused)
        {
            _fencedVms.TryRemove(s.Id, out _);
            return false;
        }
        return true;
    }

    private async Task FenceAsync(string dir, CancellationToken ct)
    {
        _fenced = true;
        var killed = 0;
        HashSet<InstanceId> ha;
        lock (_rebootLock)
        {
            ha = [.. HaKnown];
        }
        ha.UnionWith(_desired.Where(kv => kv.Value.Ha).Select(kv => kv.Key));
        foreach (var id in ha)
        {
            try
            {
                if (await _driver.GetStatusAsync(id, ct) is { Power: PowerState.Running or PowerState.Paused })
                {
                    _fencedVms[id] = 0;
                    await _driver.StopAsync(id, TimeSpan.Zero, ct);
                    killed++;
                }
            }
            catch (ComputeException e)
            {
                LogVmFailed(_log, id, e.Code, e.Message);
            }
        }
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, _options.HostName + ".fenced"),
            string.Create(CultureInfo.InvariantCulture, $"{_epoch} {_time.GetUtcNow():O} {killed}\n"), ct);
        LogFenced(_log, _options.HostName, killed, _epoch);
    }

    /// <summary>HA recovery on this host: start a VM defined by <see cref="ImportStoppedAsync"/> now.</summary>
    public async Task<ActualVm> StartVmAsync(InstanceId id, CancellationToken cancellationToken)
    {
        try
        {
            var s = await _driver.StartAsync(id, cancellationToken);
            _lastActedOn[id] = DesiredPower.Running;
            return new ActualVm(id, s.Power, s.Pid, [.. s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))], AppliedReboot(id), null, true) { HotPlugged = s.HotPlugged };
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
    }

    /// <summary>A shared-pool VM this host no longer owns: stop it and drop its local files, keep the shared disk.</summary>
    private async Task ReleaseAsync(InstanceId id, CancellationToken ct)
    {
        if (await _driver.GetStatusAsync(id, ct) is { } actual)
        {
            if (actual.Power is PowerState.Running or PowerState.Paused)
            {
                await _driver.StopAsync(id, TimeSpan.Zero, ct);
            }
            if (_driver is ILiveMigrationDriver m)
            {
                await m.CompleteOutgoingAsync(id, ct);
            }
            LogReleased(_log, id);
        }
        _desired.TryRemove(id, out _);
        _lastActedOn.TryRemove(id, out _);
        _errors.TryRemove(id, out _);
        _release.TryRemove(id, out _);
        _fencedVms.TryRemove(id, out _);
        ForgetReboot(id);
    }

    [LoggerMessage(20, LogLevel.Warning, "Host {HostName}: lease lapsed; fenced itself ({Killed} HA VM(s) stopped, epoch {Epoch})")]
    private static partial void LogFenced(ILogger log, string hostName, int killed, long epoch);

    [LoggerMessage(21, LogLevel.Information, "Host {HostName}: lease renewed; no longer fenced")]
    private static partial void LogUnfenced(ILogger log, string hostName);

    [LoggerMessage(23, LogLevel.Warning, "Host {HostName}: lease lapsed, but the controller's storage heartbeat has stood still for {Seconds:0.0} s (controller down): not fencing")]
    private static partial void LogFenceDeferred(ILogger log, string hostName, double seconds);

    [LoggerMessage(24, LogLevel.Information, "Host {HostName}: the controller's storage heartbeat moves again (controller back); one lease period to reconnect")]
    private static partial void LogControllerBack(ILogger log, string hostName);

    [LoggerMessage(22, LogLevel.Information, "VM {InstanceId}: no longer this host's (recovered or moved elsewhere); stopped, shared disk kept")]
    private static partial void LogReleased(ILogger log, InstanceId instanceId);
}
