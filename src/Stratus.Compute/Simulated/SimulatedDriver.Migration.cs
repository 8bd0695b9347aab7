using System.Diagnostics;
using System.Globalization;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Simulated;

/// <summary>Simulated live and cold migration; the protocol between two instances is in the class summary.</summary>
public sealed partial class SimulatedDriver
{
    private const string UriScheme = "sim:";

    private string IncomingDirectory => Path.Combine(_options.StateDirectory, "incoming");

    private string MarkerPath(InstanceId id) => Path.Combine(IncomingDirectory, id.ToString());

    private static void DeleteFile(string path)
    {
        if (File.Exists(path))
        {
            File.Delete(path);
        }
    }

    private string DiskPath(InstanceId id) => Path.Combine(_options.StateDirectory, "disks", id + ".disk");

    /// <summary>Host ports of a VM arriving here: requested ones kept, "any" ones differ from the source's (salted by this host's state directory).</summary>
    private IReadOnlyList<PortForward> ArrivingForwards(VmSpec spec)
    {
        var salt = 0u;
        foreach (var c in _options.StateDirectory)
        {
            salt = (salt ^ c) * 16777619u; // FNV-1a: stable across processes, unlike string.GetHashCode
        }

        return spec.Forwards.Select((f, i) => f with
        {
            HostPort = f.HostPort != 0 ? f.HostPort : 20000 + (int)(((uint)Math.Abs(spec.Id.GetHashCode()) + salt) % 20000) + i,
        }).ToList();
    }

    public Task<IReadOnlyList<InstanceId>> ListIncomingAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<InstanceId>>([.. _vms.Values.Where(v => v.Incoming).Select(v => v.Id)]);

    public async Task<IncomingMigration> PrepareIncomingAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        RequirePool(spec);
        if (_vms.TryGetValue(spec.Id, out var existing))
        {
            return existing.Incoming
                ? new IncomingMigration(spec.Id, UriScheme + MarkerPath(spec.Id), null, existing.Forwards)
                : throw new ComputeException("invalid_state", $"VM {spec.Id} already exists on this host");
        }

        await DelayAsync(200, 400, cancellationToken);
        Directory.CreateDirectory(IncomingDirectory);
        await File.WriteAllTextAsync(MarkerPath(spec.Id), "waiting " + spec.Id, cancellationToken);
        var vm = new SimVm(spec.Id, spec.Name, PowerState.Paused, ArrivingForwards(spec), "", spec.Vcpus, spec.MemoryMib, spec.DiskGib, spec.StoragePool, Incoming: true);
        _vms[spec.Id] = vm;
        await SaveAsync(cancellationToken);
        var diskTarget = spec.StoragePool == StoragePools.Local ? UriScheme + DiskPath(spec.Id) : null;
        return new IncomingMigration(spec.Id, UriScheme + MarkerPath(spec.Id), diskTarget, vm.Forwards);
    }

    private static void RequirePool(VmSpec spec)
    {
        if (spec.StoragePool is not (StoragePools.Local or StoragePools.Shared))
        {
            throw new ComputeException("invalid_spec", $"storage pool '{spec.StoragePool}' is not '{StoragePools.Local}' or '{StoragePools.Shared}'");
        }
    }

    public async Task<MigrationProgress> MigrateOutAsync(InstanceId id, IncomingMigration target, MigrationOptions options,
        IProgress<MigrationProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        options ??= new MigrationOptions();
        if (target.Id != id || !target.Uri.StartsWith(UriScheme, StringComparison.Ordinal) || options.BandwidthBytesPerSecond is <= 0)
        {
            throw new ComputeException("invalid_spec", $"target {target.Uri} (for VM {target.Id}) is not a simulated destination of VM {id}, or the bandwidth is not positive");
        }

        if (!_vms.TryGetValue(id, out var vm) || vm.Incoming)
        {
            throw new ComputeException("not_found", $"no VM {id} on this host");
        }

        if (vm.Power is not (PowerState.Running or PowerState.Paused) || vm.MigratedOut)
        {
            throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}{(vm.MigratedOut ? " (already migrated)" : "")}; only a running or paused VM can be live-migrated");
        }

        var marker = target.Uri[UriScheme.Length..];
        var memoryBytes = Math.Max(vm.MemoryMib, 1) * 1024 * 1024;
        var ms = 200 + Math.Max(vm.MemoryMib, 1);
        if (options.BandwidthBytesPerSecond is { } bw)
        {
            ms = Math.Max(ms, memoryBytes * 1000 / bw);
        }

        var clock = Stopwatch.StartNew();
        // One progress report per simulated 100 ms (10 to 1000 of them).
        var steps = (int)Math.Clamp(ms / 100, 10, 1000);
        var step = TimeSpan.FromMilliseconds(ms * _options.DelayScale / steps);
        for (var i = 0; i <= steps; i++)
        {
            if (!File.Exists(marker) || !(await File.ReadAllTextAsync(marker, cancellationToken)).Equals("waiting " + id, StringComparison.Ordinal))
            {
                throw new ComputeException("migration_failed", $"the destination of VM {id} is not waiting any more ({marker}); the VM keeps running here");
            }

            var sent = memoryBytes * i / steps;
            progress?.Report(new MigrationProgress("active", memoryBytes, sent, memoryBytes - sent, 0, 30, null, null));
            if (i < steps && step > TimeSpan.Zero)
            {
                await Task.Delay(step, _time, cancellationToken);
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        await File.WriteAllTextAsync(marker, "completed " + id, CancellationToken.None);
        _vms[id] = vm with { Power = PowerState.Paused, MigratedOut = true, Console = vm.Console + "[sim] migrated out\n" };
        await SaveAsync(CancellationToken.None);
        var final = new MigrationProgress("completed", memoryBytes, memoryBytes, 0, 0, 30,
            (long)Math.Round(30 * _options.DelayScale), clock.ElapsedMilliseconds);
        progress?.Report(final);
        return final;
    }

    public async Task<VmStatus> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (!_vms.TryGetValue(id, out var vm))
        {
            throw new ComputeException("not_found", $"no incoming migration of VM {id} on this host");
        }

        if (!vm.Incoming)
        {
            return Status(vm);
        }

        var marker = MarkerPath(id);
        var state = File.Exists(marker) ? await File.ReadAllTextAsync(marker, cancellationToken) : "";
        if (!state.Equals("completed " + id, StringComparison.Ordinal))
        {
            throw new ComputeException("invalid_state", $"the incoming migration of VM {id} has not completed");
        }

        var arrived = vm with { Incoming = false, Power = PowerState.Running, Console = "[sim] arrived by migration\n" };
        _vms[id] = arrived;
        await SaveAsync(cancellationToken);
        DeleteFile(marker);
        return Status(arrived);
    }

    public async Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (!_vms.TryGetValue(id, out var vm) || vm.Incoming)
        {
            return;
        }

        if (!vm.MigratedOut && vm.Power is PowerState.Running or PowerState.Paused)
        {
            throw new ComputeException("invalid_state", $"VM {id} still runs here; nothing was migrated");
        }

        _vms.TryRemove(id, out _);
        DeleteFile(DiskPath(id));
        await SaveAsync(cancellationToken);
    }

    public async Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        DeleteFile(MarkerPath(id));
        if (_vms.TryGetValue(id, out var vm) && vm.Incoming)
        {
            _vms.TryRemove(id, out _);
            DeleteFile(DiskPath(id));
            await SaveAsync(cancellationToken);
        }
    }

    /// <summary>A small file standing for the stopped VM's disk (simulated VMs have none until exported).</summary>
    public async Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (!_vms.TryGetValue(id, out var vm) || vm.Incoming)
        {
            throw new ComputeException("not_found", $"no VM {id} on this host");
        }

        if (vm.Power is not (PowerState.Shutdown or PowerState.Crashed))
        {
            throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; stop it before a cold migration");
        }

        if (vm.StoragePool == StoragePools.Shared)
        {
            return null;
        }

        var path = DiskPath(id);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, $"simulated disk of {id}\n", cancellationToken);
        }

        return path;
    }

    public async Task<VmStatus> ImportStoppedAsync(VmSpec spec, string? sourceDisk, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        RequirePool(spec);
        if (_vms.TryGetValue(spec.Id, out var existing))
        {
            return existing.Incoming ? throw new ComputeException("invalid_state", $"VM {spec.Id} is being migrated to this host") : Status(existing);
        }

        if (sourceDisk is not null)
        {
            if (!File.Exists(sourceDisk) || !(await File.ReadAllTextAsync(sourceDisk, cancellationToken)).StartsWith("simulated disk of " + spec.Id, StringComparison.Ordinal))
            {
                throw new ComputeException("not_found", $"{sourceDisk} is not the exported disk of VM {spec.Id}");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(DiskPath(spec.Id))!);
            File.Copy(sourceDisk, DiskPath(spec.Id), overwrite: true);
        }

        await DelayAsync(300, 600, cancellationToken);
        var vm = new SimVm(spec.Id, spec.Name, PowerState.Shutdown, ArrivingForwards(spec),
            string.Create(CultureInfo.InvariantCulture, $"[sim] {spec.Name} imported\n"), spec.Vcpus, spec.MemoryMib, spec.DiskGib, spec.StoragePool);
        _vms[spec.Id] = vm;
        await SaveAsync(cancellationToken);
        return Status(vm);
    }
}
