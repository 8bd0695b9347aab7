using System.Collections.Concurrent;
using System.Text.Json;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Simulated;

/// <summary>Options of the simulated driver. Defaults model one large host.</summary>
public sealed class SimulatedDriverOptions
{
    /// <summary>Directory where the simulated hypervisor keeps its VMs (survives restarts).</summary>
    public required string StateDirectory { get; init; }

    /// <summary>Cores reported by the host (default 32).</summary>
    public int Cores { get; init; } = 32;

    /// <summary>Memory reported by the host, MiB (default 128 GiB).</summary>
    public long MemoryMib { get; init; } = 128 * 1024;

    /// <summary>Disk reported by the host, GiB (default 1 TiB).</summary>
    public long DiskGib { get; init; } = 1024;

    /// <summary>Multiplies every simulated delay (1.0 = realistic, at most 2 s per operation; 0 = instant).</summary>
    public double DelayScale { get; init; } = 1.0;

    /// <summary>Seed of the delay jitter, for reproducible runs.</summary>
    public int Seed { get; init; } = 1;
}

/// <summary>
/// A hypervisor that runs no guest code: VMs change state after realistic delays (create 1–2 s,
/// start 0.5–1 s, stop 0.3–0.8 s, reboot 1–2 s, pause/resume 0.1 s) and their state is kept in
/// the state directory, so the "hypervisor" survives a restart of the agent (VMs stay running, as
/// QEMU processes would) and <see cref="ShutdownAllAsync"/> stops them as a host shutdown would.
/// For scale tests and hollow hosts; never instead of the real driver.
/// <para>Metrics (<see cref="IMetricsSource"/>): each running VM gets a deterministic synthetic CPU load from the seed,
/// its id and the clock, unless <c>load.json</c> in the state directory names it (see <see cref="LoadFile"/>).</para>
/// <para>Live migration (<see cref="ILiveMigrationDriver"/>) runs between two instances with different state directories,
/// in one process or two: the destination's <see cref="PrepareIncomingAsync"/> writes a marker file
/// (<c>&lt;state dir&gt;/incoming/&lt;id&gt;</c>, content <c>waiting &lt;id&gt;</c>) and returns <c>sim:&lt;marker path&gt;</c> as the URI; the
/// source checks the marker before and during the transfer (gone = destination aborted: <c>migration_failed</c>) and
/// writes <c>completed &lt;id&gt;</c> into it at the end; <see cref="CompleteIncomingAsync"/> requires that word. A transfer takes
/// 200 ms + 1 ms per MiB of guest memory (about 1 GB/s; longer under a bandwidth cap), times <see cref="SimulatedDriverOptions.DelayScale"/>,
/// and reports progress every simulated 100 ms (at least ten times).</para>
/// </summary>
public sealed partial class SimulatedDriver : IComputeDriver, ILiveMigrationDriver, IMetricsSource, ISnapshotDriver, IBackupDriver, IResizeDriver
{
    private readonly SimulatedDriverOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<InstanceId, SimVm> _vms = new();
    private readonly Random _random;
    private readonly Lock _randomLock = new();
    private readonly SemaphoreSlim _saveLock = new(1, 1);
    private readonly string _stateFile;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public SimulatedDriver(SimulatedDriverOptions options, TimeProvider? time = null)
    {
        _options = options;
        _time = time ?? TimeProvider.System;
        _random = new Random(options.Seed);
        Directory.CreateDirectory(options.StateDirectory);
        _stateFile = Path.Combine(options.StateDirectory, "simulated-vms.json");
        if (File.Exists(_stateFile))
        {
            foreach (var vm in JsonSerializer.Deserialize<List<SimVm>>(File.ReadAllText(_stateFile), Json) ?? [])
            {
                _vms[vm.Id] = vm;
            }
        }
    }

    public string Name => "simulated";

    public event Action<VmEvent>? VmChanged;

    public Task<HostInventory> DetectInventoryAsync(CancellationToken cancellationToken) =>
        Task.FromResult(new HostInventory(_options.Cores, _options.MemoryMib, _options.DiskGib, "sim", "Simulated CPU", 0));

    public Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<VmStatus>>(_vms.Values.Where(v => !v.Incoming).Select(Status).ToList());

    public async Task<VmStatus> CreateAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        if (_vms.TryGetValue(spec.Id, out var existing))
        {
            return existing.Incoming ? throw new ComputeException("invalid_state", $"VM {spec.Id} is being migrated to this host") : Status(existing);
        }
        await DelayAsync(1000, 2000, cancellationToken);
        var forwards = spec.Forwards.Select((f, i) => f with { HostPort = f.HostPort != 0 ? f.HostPort : 20000 + (Math.Abs(spec.Id.GetHashCode()) % 20000) + i }).ToList();
        var vm = new SimVm(spec.Id, spec.Name, PowerState.Running, forwards, $"[sim] {spec.Name} booted\n", spec.Vcpus, spec.MemoryMib, spec.DiskGib, spec.StoragePool)
        {
            MaxVcpus = spec.MaxVcpus,
            MaxMemoryMib = spec.MaxMemoryMib,
        };
        _vms[spec.Id] = vm;
        await SaveAsync(cancellationToken);
        return Status(vm);
    }

    public Task<VmStatus> StartAsync(InstanceId id, CancellationToken cancellationToken) =>
        TransitionAsync(id, 500, 1000, vm => vm.Power == PowerState.Running ? vm : vm with { Power = PowerState.Running, Console = vm.Console + "[sim] started\n" }, cancellationToken);

    public Task<VmStatus> StopAsync(InstanceId id, TimeSpan graceful, CancellationToken cancellationToken) =>
        TransitionAsync(id, 300, 800, vm => vm with { Power = PowerState.Shutdown, Console = vm.Console + "[sim] powered off\n" }, cancellationToken);

    public Task<VmStatus> RebootAsync(InstanceId id, bool hard, CancellationToken cancellationToken) =>
        TransitionAsync(id, 1000, 2000, vm => vm with { Power = PowerState.Running, Console = vm.Console + (hard ? "[sim] reset\n" : "[sim] rebooted\n") }, cancellationToken);

    public Task<VmStatus> PauseAsync(InstanceId id, CancellationToken cancellationToken) =>
        TransitionAsync(id, 100, 100, vm => vm.Power is PowerState.Running or PowerState.Paused
            ? vm with { Power = PowerState.Paused }
            : throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; only a running VM can be paused"), cancellationToken);

    public Task<VmStatus> ResumeAsync(InstanceId id, CancellationToken cancellationToken) =>
        TransitionAsync(id, 100, 100, vm => vm.Power is PowerState.Running or PowerState.Paused
            ? vm with { Power = PowerState.Running }
            : throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; only a paused VM can be resumed"), cancellationToken);

    public async Task DestroyAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (!_vms.TryGetValue(id, out var existing) || existing.Incoming)
        {
            return;
        }
        await DelayAsync(300, 800, cancellationToken);
        _vms.TryRemove(id, out _);
        DeleteFile(DiskPath(id));
        await SaveAsync(cancellationToken);
    }

    public Task<VmStatus?> GetStatusAsync(InstanceId id, CancellationToken cancellationToken) =>
        Task.FromResult(_vms.TryGetValue(id, out var vm) && !vm.Incoming ? Status(vm) : null);

    public Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken)
    {
        if (!_vms.TryGetValue(id, out var vm) || vm.Incoming)
        {
            throw new ComputeException("not_found", $"no VM {id} on this host");
        }
        var text = vm.Console;
        return Task.FromResult(text.Length > maxBytes ? text[^maxBytes..] : text);
    }

    public async Task ShutdownAllAsync(TimeSpan graceful, CancellationToken cancellationToken)
    {
        foreach (var vm in _vms.Values.Where(v => !v.Incoming))
        {
            _vms[vm.Id] = vm with { Power = PowerState.Shutdown };
        }
        await SaveAsync(cancellationToken);
    }

    /// <summary>Simulates a VM crashing on its own (for tests of recovery and power-state sync).</summary>
    public async Task CrashAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (_vms.TryGetValue(id, out var vm))
        {
            _vms[id] = vm with { Power = PowerState.Crashed };
            await SaveAsync(cancellationToken);
            VmChanged?.Invoke(new VmEvent(id, PowerState.Crashed, "simulated crash"));
        }
    }

    private async Task<VmStatus> TransitionAsync(InstanceId id, int minMs, int maxMs, Func<SimVm, SimVm> change, CancellationToken ct)
    {
        if (!_vms.TryGetValue(id, out var current) || current.Incoming)
        {
            throw new ComputeException("not_found", $"no VM {id} on this host");
        }
        await DelayAsync(minMs, maxMs, ct);
        if (!_vms.TryGetValue(id, out var vm))
        {
            throw new ComputeException("not_found", $"no VM {id} on this host");
        }
        var next = change(vm);
        _vms[id] = next;
        await SaveAsync(ct);
        return Status(next);
    }

    private Task DelayAsync(int minMs, int maxMs, CancellationToken ct)
    {
        if (_options.DelayScale <= 0)
        {
            return Task.CompletedTask;
        }
        int ms;
        lock (_randomLock)
        {
            ms = _random.Next(minMs, maxMs + 1);
        }
        return Task.Delay(TimeSpan.FromMilliseconds(ms * _options.DelayScale), _time, ct);
    }

    private async Task SaveAsync(CancellationToken ct)
    {
        await _saveLock.WaitAsync(ct);
        try
        {
            var tmp = _stateFile + ".tmp";
            await File.WriteAllTextAsync(tmp, JsonSerializer.Serialize(_vms.Values.OrderBy(v => v.Id.Value).ToList(), Json), ct);
            File.Move(tmp, _stateFile, overwrite: true);
        }
        finally
        {
            _saveLock.Release();
        }
    }

    private static VmStatus Status(SimVm vm) => new(vm.Id, vm.Power, null, vm.Forwards);

    public ValueTask DisposeAsync()
    {
        _saveLock.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>A simulated VM as kept in the state file (size fields default for files written before they existed).</summary>
    /// <param name="MemoryMib">Guest memory (sets the simulated migration time).</param>
    /// <param name="Incoming">Prepared as a migration destination and not yet completed: hidden from list and status.</param>
    /// <param name="MigratedOut">The VM's state was sent elsewhere; the source waits for <see cref="CompleteOutgoingAsync"/>.</param>
    private sealed record SimVm(InstanceId Id, string Name, PowerState Power, IReadOnlyList<PortForward> Forwards, string Console,
        int Vcpus = 1, long MemoryMib = 256, long DiskGib = 1, string StoragePool = StoragePools.Local, bool Incoming = false, bool MigratedOut = false,
        IReadOnlyList<VmSnapshotInfo>? Snapshots = null, IReadOnlyList<string>? BackupAnchors = null, string? ChainBreak = null,
        int MaxVcpus = 0, long MaxMemoryMib = 0, VmResizeTarget? PreResize = null);
}
