using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Simulated;

/// <summary>
/// Resize (<see cref="IResizeDriver"/>) with the same rules as the QEMU driver: live vCPU growth up to the VM's ceiling and
/// never removal, live memory growth up to the ceiling and shrink (a balloon), disk growth only. The "guest" reports the new
/// size at once (100 ms of simulated work, scaled).
/// </summary>
public sealed partial class SimulatedDriver
{
    public async Task<VmResizeOutcome> ResizeLiveAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (vm.Power != PowerState.Running)
        {
            throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; a live resize needs a running VM");
        }
        var maxCpus = vm.MaxVcpus > 0 ? vm.MaxVcpus : target.MaxVcpus;
        var maxMem = vm.MaxMemoryMib > 0 ? vm.MaxMemoryMib : target.MaxMemoryMib;
        var errors = new List<string>();
        if (target.Vcpus < vm.Vcpus) errors.Add($"vCPU removal ({vm.Vcpus}→{target.Vcpus}) is never live");
        if (target.Vcpus > maxCpus) errors.Add($"{target.Vcpus} vCPUs is above the VM's ceiling of {maxCpus}");
        if (target.MemoryMib > maxMem) errors.Add($"{target.MemoryMib} MiB is above the VM's memory ceiling of {maxMem} MiB");
        if (target.DiskGib < vm.DiskGib) errors.Add($"disk shrink ({vm.DiskGib}→{target.DiskGib} GiB) is refused");
        if (errors.Count > 0)
        {
            throw new ComputeException("invalid_spec", string.Join("; ", errors));
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await DelayAsync(100, 100, cancellationToken);
        var detail = Steps(vm.Vcpus, vm.MemoryMib, vm.DiskGib, target, live: true);
        _vms[id] = Existing(id) with { Vcpus = target.Vcpus, MemoryMib = target.MemoryMib, DiskGib = target.DiskGib, Console = vm.Console + $"[sim] resized live to {target.Vcpus} vCPU {target.MemoryMib} MiB {target.DiskGib} GiB\n" };
        await SaveAsync(cancellationToken);
        return new VmResizeOutcome(Status(_vms[id]), true, true, target.Vcpus, target.MemoryMib * 1024, sw.ElapsedMilliseconds, detail);
    }

    public async Task<VmResizeOutcome> ResizeStoppedAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (vm.Power is PowerState.Running or PowerState.Paused)
        {
            throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; stop it first");
        }
        if (target.DiskGib < vm.DiskGib)
        {
            throw new ComputeException("invalid_spec", $"disk shrink ({vm.DiskGib}→{target.DiskGib} GiB) is refused");
        }
        if (target.Vcpus < 1 || target.MemoryMib < 16)
        {
            throw new ComputeException("invalid_spec", "a VM needs ≥ 1 vCPU and ≥ 16 MiB");
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await DelayAsync(100, 200, cancellationToken);
        var before = new VmResizeTarget(vm.Vcpus, vm.MemoryMib, vm.DiskGib, vm.MaxVcpus, vm.MaxMemoryMib);
        _vms[id] = Existing(id) with
        {
            Vcpus = target.Vcpus,
            MemoryMib = target.MemoryMib,
            DiskGib = target.DiskGib,
            MaxVcpus = Math.Max(target.MaxVcpus, target.Vcpus),
            MaxMemoryMib = Math.Max(target.MaxMemoryMib, target.MemoryMib),
            PreResize = vm.PreResize ?? before,
        };
        await SaveAsync(cancellationToken);
        return new VmResizeOutcome(Status(_vms[id]), false, false, null, null, sw.ElapsedMilliseconds, Steps(vm.Vcpus, vm.MemoryMib, vm.DiskGib, target, live: false));
    }

    public async Task ConfirmResizeAsync(InstanceId id, CancellationToken cancellationToken)
    {
        if (_vms.TryGetValue(id, out var vm) && vm.PreResize is not null)
        {
            _vms[id] = vm with { PreResize = null };
            await SaveAsync(cancellationToken);
        }
    }

    public async Task<VmStatus> RevertResizeAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var vm = Existing(id);
        if (vm.Power is PowerState.Running or PowerState.Paused)
        {
            throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; stop it first");
        }
        if (vm.PreResize is not { } p)
        {
            throw new ComputeException("invalid_state", $"VM {id} has no resize to revert");
        }
        _vms[id] = vm with { Vcpus = p.Vcpus, MemoryMib = p.MemoryMib, DiskGib = p.DiskGib, MaxVcpus = p.MaxVcpus, MaxMemoryMib = p.MaxMemoryMib, PreResize = null };
        await SaveAsync(cancellationToken);
        return Status(_vms[id]);
    }

    /// <summary>The simulated VM's current size (for tests).</summary>
    public (int Vcpus, long MemoryMib, long DiskGib)? SizeOf(InstanceId id) =>
        _vms.TryGetValue(id, out var vm) ? (vm.Vcpus, vm.MemoryMib, vm.DiskGib) : null;

    private static List<string> Steps(int vcpus, long memoryMib, long diskGib, VmResizeTarget t, bool live)
    {
        var steps = new List<string>();
        if (t.Vcpus != vcpus) steps.Add(live ? $"hot-added {t.Vcpus - vcpus} vCPU(s): {vcpus}→{t.Vcpus}" : $"vCPUs {vcpus}→{t.Vcpus}");
        if (t.MemoryMib > memoryMib) steps.Add(live ? $"hot-plugged memory {memoryMib}→{t.MemoryMib} MiB" : $"memory {memoryMib}→{t.MemoryMib} MiB");
        if (t.MemoryMib < memoryMib) steps.Add(live ? $"balloon {memoryMib}→{t.MemoryMib} MiB" : $"memory {memoryMib}→{t.MemoryMib} MiB");
        if (t.DiskGib > diskGib) steps.Add(live ? $"disk grown online {diskGib}→{t.DiskGib} GiB" : $"disk {diskGib}→{t.DiskGib} GiB");
        return steps;
    }
}
