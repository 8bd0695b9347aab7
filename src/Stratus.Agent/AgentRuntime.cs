using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Agent;

/// <summary>
/// One host's agent: registers the host, receives its desired state, converges the hypervisor
/// toward it one VM at a time (each VM on its own worker so a slow boot never blocks another), and
/// reports actual state as a heartbeat. Level-triggered: after a restart it re-reads desired
/// state and carries on; VMs that are running are adopted, never restarted.
/// </summary>
public sealed partial class AgentRuntime : IAgentSession, IAsyncDisposable
{
    private readonly AgentOptions _options;
    private readonly IComputeDriver _driver;
    private readonly IControllerEndpoint _controller;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<InstanceId, DesiredVm> _desired = new();
    private readonly ConcurrentDictionary<InstanceId, DesiredPower> _lastActedOn = new();
    private readonly ConcurrentDictionary<InstanceId, string> _errors = new();
    private readonly ConcurrentDictionary<InstanceId, VmWorker> _workers = new();
    private readonly Dictionary<InstanceId, long> _appliedReboots;
    private readonly Lock _rebootLock = new();
    private readonly string _rebootFile;
    private readonly CancellationTokenSource _stop = new();
    private Task? _heartbeat;
    private long _epoch;
    private bool _firstDesiredSeen;
    private int _pushes;

    public AgentRuntime(AgentOptions options, IComputeDriver driver, IControllerEndpoint controller, ILogger logger, TimeProvider? time = null)
    {
        options.Validate();
        _options = options;
        _driver = driver;
        _controller = controller;
        _log = logger;
        _time = time ?? TimeProvider.System;
        Directory.CreateDirectory(options.StateDirectory);
        _rebootFile = Path.Combine(options.StateDirectory, "applied-reboots.json");
        _appliedReboots = File.Exists(_rebootFile)
            ? (JsonSerializer.Deserialize<Dictionary<Guid, long>>(File.ReadAllText(_rebootFile)) ?? []).ToDictionary(kv => new InstanceId(kv.Key), kv => kv.Value)
            : [];
        _driver.VmChanged += e => Kick(e.Id);
    }

    public HostId HostId { get; private set; }

    /// <summary>The driver this agent runs (for tests and the console endpoint).</summary>
    public IComputeDriver Driver => _driver;

    /// <summary>Detects the inventory, registers the host and starts heartbeats.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var inv = await _driver.DetectInventoryAsync(cancellationToken);
        var (hostId, epoch) = await _controller.RegisterAsync(new HostRegistration(
            _options.HostName, inv.Cores, inv.MemoryMib, inv.DiskGib, inv.Accelerator, _driver.Name, inv.CpuModel, inv.CgroupVersion,
            Environment.ProcessId, ProtocolVersion.Major)
        {
            CpuFlags = HostFacts.CpuFlags(),
            StoragePools = _options.StoragePools,
            HypervisorUser = inv.HypervisorUser,
        }, cancellationToken);
        HostId = hostId;
        _epoch = epoch;
        // A VM still prepared as a migration destination at start-up belongs to a migration that
        // is over: the controller aborts any migration whose destination agent disconnected.
        if (_driver is ILiveMigrationDriver migrator)
        {
            foreach (var orphan in await migrator.ListIncomingAsync(cancellationToken))
            {
                await migrator.AbortIncomingAsync(orphan, cancellationToken);
                LogOrphanAborted(_log, orphan);
            }
        }
        LogRegistered(_log, _options.HostName, hostId, inv.Accelerator);
        _heartbeat = Task.Run(() => HeartbeatLoopAsync(_stop.Token), CancellationToken.None);
        StartMetrics(_stop.Token);
    }

    public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken)
    {
        _epoch = desired.Epoch;
        RememberHa(desired);
        var restartHa = !_fenced && Interlocked.Exchange(ref _restartHaOnNextPush, 0) == 1;
        var ids = new HashSet<InstanceId>();
        foreach (var vm in desired.Vms)
        {
            ids.Add(vm.Id);
            _release.TryRemove(vm.Id, out _);
            if (restartHa && vm.Ha)
            {
                _lastActedOn.TryRemove(vm.Id, out _); // fenced before: act on it again
            }
            _desired[vm.Id] = vm;
            Kick(vm.Id);
        }
        // A VM this host runs that the controller no longer lists is not ours any more: a local one is
        // destroyed; a shared-pool one moved or was recovered elsewhere, so only this host's copy goes.
        foreach (var id in _desired.Keys.Where(id => !ids.Contains(id)).ToList())
        {
            if (_desired[id].StoragePool == StoragePools.Shared)
            {
                _release[id] = 0;
            }
            else
            {
                _desired[id] = _desired[id] with { Power = DesiredPower.Absent };
            }
            Kick(id);
        }
        _firstDesiredSeen = true;
        Interlocked.Increment(ref _pushes);
        return Task.CompletedTask;
    }

    public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) =>
        _driver.ReadConsoleAsync(id, maxBytes, cancellationToken);

    private void Kick(InstanceId id)
    {
        var w = _workers.GetOrAdd(id, _ => new VmWorker());
        Volatile.Write(ref w.Dirty, 1);
        if (Interlocked.CompareExchange(ref w.Running, 1, 0) == 0)
        {
            w.Task = Task.Run(() => WorkerAsync(id, w), CancellationToken.None);
        }
    }

    /// <summary>Runs until the VM's desired state stops changing; at most one worker per VM.</summary>
    private async Task WorkerAsync(InstanceId id, VmWorker w)
    {
        try
        {
            while (true)
            {
                while (Interlocked.Exchange(ref w.Dirty, 0) == 1 && !_stop.IsCancellationRequested)
                {
                    await ReconcileAsync(id, _stop.Token);
                }
                Volatile.Write(ref w.Running, 0);
                if (Volatile.Read(ref w.Dirty) == 0 || Interlocked.CompareExchange(ref w.Running, 1, 0) != 0)
                {
                    break;
                }
            }
            await ReportAsync(_stop.Token);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            Volatile.Write(ref w.Running, 0);
        }
        catch (Exception e)
        {
            // A bug or an infrastructure fault: report it against the VM (so the controller does
            // not mistake an unconverged VM for one the guest shut down) instead of dying quietly.
            _errors[id] = $"agent_failure: {e.GetType().Name}: {e.Message}";
            Volatile.Write(ref w.Running, 0);
            LogWorkerFailed(_log, e, id);
        }
    }

    private sealed class VmWorker
    {
        public int Dirty;
        public int Running;
        public Task Task = Task.CompletedTask;
    }

    private async Task ReconcileAsync(InstanceId id, CancellationToken ct)
    {
        if (!_desired.TryGetValue(id, out var d) || IsMigrating(id) || _reverting.ContainsKey(id) || _resizing.ContainsKey(id))
        {
            return;
        }
        if (_release.ContainsKey(id))
        {
            await ReleaseAsync(id, ct);
            return;
        }
        if (_fenced && d.Ha)
        {
            return; // fenced: HA VMs stay off until the lease is renewed
        }
        try
        {
            var actual = await _driver.GetStatusAsync(id, ct);
            if (d.Power == DesiredPower.Absent)
            {
                if (actual is not null)
                {
                    await _driver.DestroyAsync(id, ct);
                }
                _desired.TryRemove(id, out _);
                _lastActedOn.TryRemove(id, out _);
                _errors.TryRemove(id, out _);
                _fencedVms.TryRemove(id, out _);
                ForgetReboot(id);
                return;
            }
            var changed = !_lastActedOn.TryGetValue(id, out var last) || last != d.Power;
            if (actual is null && d.Power == DesiredPower.Stopped)
            {
                return; // nothing exists, so nothing to stop (a server whose spawn failed)
            }
            if (actual is null)
            {
                actual = await _driver.CreateAsync(ToSpec(d), ct);
                SetAppliedReboot(id, d.RebootSeq);
                changed = true;
            }
            if (!HasAppliedReboot(id))
            {
                SetAppliedReboot(id, d.RebootSeq); // adopted VM: past reboots are history, not requests
            }
            if (d.RebootSeq > AppliedReboot(id))
            {
                actual = actual.Power is PowerState.Running or PowerState.Paused && !d.RebootHard
                    ? await _driver.RebootAsync(id, hard: false, ct)
                    : actual.Power is PowerState.Shutdown or PowerState.Crashed
                        ? await _driver.StartAsync(id, ct)
                        : await _driver.RebootAsync(id, hard: true, ct);
                SetAppliedReboot(id, d.RebootSeq);
                changed = true;
            }
            if (changed)
            {
                actual = d.Power switch
                {
                    DesiredPower.Running => actual.Power switch
                    {
                        PowerState.Paused => await _driver.ResumeAsync(id, ct),
                        PowerState.Shutdown or PowerState.Crashed or PowerState.NoState => await _driver.StartAsync(id, ct),
                        _ => actual,
                    },
                    DesiredPower.Stopped => actual.Power is PowerState.Running or PowerState.Paused
                        ? await _driver.StopAsync(id, _options.GracefulStopTimeout, ct)
                        : actual,
                    DesiredPower.Paused => actual.Power switch
                    {
                        PowerState.Running => await _driver.PauseAsync(id, ct),
                        PowerState.Shutdown or PowerState.Crashed => await PauseAfterStartAsync(id, ct),
                        _ => actual,
                    },
                    _ => actual,
                };
                _lastActedOn[id] = d.Power;
            }
            _errors.TryRemove(id, out _);
        }
        catch (ComputeException e)
        {
            LogVmFailed(_log, id, e.Code, e.Message);
            _errors[id] = $"{e.Code}: {e.Message}";
            _lastActedOn[id] = d.Power; // do not retry until the controller asks for something new
        }
    }

    private async Task<VmStatus> PauseAfterStartAsync(InstanceId id, CancellationToken ct)
    {
        await _driver.StartAsync(id, ct);
        return await _driver.PauseAsync(id, ct);
    }

    /// <summary>
    /// The driver's spec for a desired VM. An image of format <c>kernel</c> is a directory bundle
    /// (the tiny guest: <c>vmlinuz</c>, <c>initrd.img</c>, <c>cmdline</c>, <c>disk.qcow2</c>) booted
    /// directly; any other image is a disk the VM boots from.
    /// </summary>
    public static VmSpec ToSpec(DesiredVm d)
    {
        var forwards = d.Forwards.Select(f => new PortForward(f.HostPort, f.GuestPort)).ToList();
        if (d.ImageFormat == "kernel" && d.ImageRef is { } dir && Directory.Exists(dir))
        {
            var cmdline = File.Exists(Path.Combine(dir, "cmdline")) ? File.ReadAllText(Path.Combine(dir, "cmdline")).Trim() : "console=ttyS0";
            return new VmSpec(d.Id, d.Name, d.Vcpus, d.MemoryMib, d.DiskGib, Path.Combine(dir, "disk.qcow2"), "qcow2",
                Path.Combine(dir, "vmlinuz"), Path.Combine(dir, "initrd.img"), cmdline, d.UserData, d.PublicKeys, forwards, Math.Max(d.MaxVcpus, d.Vcpus), Math.Max(d.MaxMemoryMib, d.MemoryMib),
                StoragePool: d.StoragePool) { HotPlugged = d.HotPlugged };
        }
        return new VmSpec(d.Id, d.Name, d.Vcpus, d.MemoryMib, d.DiskGib, d.ImageRef, d.ImageFormat, null, null, null, d.UserData, d.PublicKeys,
            forwards, Math.Max(d.MaxVcpus, d.Vcpus), Math.Max(d.MaxMemoryMib, d.MemoryMib), StoragePool: d.StoragePool) { HotPlugged = d.HotPlugged };
    }

    private async Task HeartbeatLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        try
        {
            do
            {
                try
                {
                    await HaTickAsync(ct);
                    await ReportAsync(ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogReportFailed(_log, e);
                }
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReportAsync(CancellationToken ct)
    {
        if (HostId == default)
        {
            return;
        }
        // Decide completeness before reading actual state, so a "complete" report never carries a
        // list read before the last convergence finished.
        var complete = _firstDesiredSeen && _workers.Values.All(w => Volatile.Read(ref w.Running) == 0);
        var list = await _driver.ListAsync(ct);
        var seen = new HashSet<InstanceId>();
        var vms = new List<ActualVm>(list.Count + _desired.Count);
        foreach (var s in list)
        {
            seen.Add(s.Id);
            vms.Add(new ActualVm(s.Id, s.Power, s.Pid, s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort)).ToList(),
                AppliedReboot(s.Id), _errors.GetValueOrDefault(s.Id), true, StillFenced(s)) { HotPlugged = s.HotPlugged });
        }
        foreach (var id in _desired.Keys.Where(id => !seen.Contains(id)))
        {
            vms.Add(new ActualVm(id, PowerState.NoState, null, [], 0, _errors.GetValueOrDefault(id), false));
        }
        await _controller.ReportAsync(new HostReport(HostId, _epoch, vms, complete), ct);
    }

    private long AppliedReboot(InstanceId id)
    {
        lock (_rebootLock)
        {
            return _appliedReboots.GetValueOrDefault(id);
        }
    }

    private bool HasAppliedReboot(InstanceId id)
    {
        lock (_rebootLock)
        {
            return _appliedReboots.ContainsKey(id);
        }
    }

    private void SetAppliedReboot(InstanceId id, long seq)
    {
        lock (_rebootLock)
        {
            _appliedReboots[id] = seq;
            SaveReboots();
        }
    }

    private void ForgetReboot(InstanceId id)
    {
        lock (_rebootLock)
        {
            if (_appliedReboots.Remove(id))
            {
                SaveReboots();
            }
        }
    }

    private void SaveReboots()
    {
        var tmp = _rebootFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(_appliedReboots.ToDictionary(kv => kv.Key.Value, kv => kv.Value)));
        File.Move(tmp, _rebootFile, overwrite: true);
    }

    /// <summary>Stops every VM on the host (for `stratus down`), leaving desired state untouched.</summary>
    public Task ShutdownVmsAsync(TimeSpan graceful, CancellationToken cancellationToken) => _driver.ShutdownAllAsync(graceful, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_heartbeat is not null)
        {
            await _heartbeat.ConfigureAwait(false);
        }
        await StopMetricsAsync();
        foreach (var w in _workers.Values)
        {
            try
            {
                await w.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        _stop.Dispose();
    }

    [LoggerMessage(1, LogLevel.Information, "Host {HostName} registered as {HostId} ({Accelerator})")]
    private static partial void LogRegistered(ILogger log, string hostName, HostId hostId, string accelerator);

    [LoggerMessage(2, LogLevel.Warning, "VM {InstanceId}: {Code}: {Message}")]
    private static partial void LogVmFailed(ILogger log, InstanceId instanceId, string code, string message);

    [LoggerMessage(3, LogLevel.Error, "Worker for VM {InstanceId} failed")]
    private static partial void LogWorkerFailed(ILogger log, Exception e, InstanceId instanceId);

    [LoggerMessage(5, LogLevel.Information, "VM {InstanceId}: removed an incoming migration left by a previous run")]
    private static partial void LogOrphanAborted(ILogger log, InstanceId instanceId);

    [LoggerMessage(4, LogLevel.Warning, "Report to the controller failed")]
    private static partial void LogReportFailed(ILogger log, Exception e);
}
