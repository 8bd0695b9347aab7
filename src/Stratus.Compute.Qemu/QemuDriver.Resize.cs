using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Resize. Live: vCPU hot-add (<c>device_add</c> of the type and ids <c>query-hotpluggable-cpus</c> offers), memory growth by
/// <c>pc-dimm</c>s (128 MiB-aligned, up to the 4 slots and <c>maxmem</c> the VM was started with; the rest of a target that is
/// not aligned is held back by the balloon), memory shrink by the balloon, disk growth by <c>block_resize</c> (virtio-blk tells
/// the guest of the new capacity). Then the guest's own report is read until it shows the change, or the change is rolled back.
/// Offline: the spec is rewritten and the disk grown with <c>qemu-img resize</c>; the next start boots the new size.
/// </summary>
public sealed partial class QemuDriver : IResizeDriver
{
    private const long DimmAlignMib = 128;
    private const int DimmSlots = 4;
    private const long MinLiveMemoryMib = 64;
    private static readonly HttpClient GuestHttp = new() { Timeout = TimeSpan.FromSeconds(2) };

    private static string RevertPath(QemuVm vm) => Path.Combine(vm.Directory, "resize-revert.json");

    private static string PreResizeDiskPath(QemuVm vm) => Path.Combine(vm.DiskDirectory, "disk.pre-resize.qcow2");

    /// <summary>What a revert of an offline resize restores.</summary>
    private sealed record RevertFile(VmSpec Spec, bool DiskKept);

    /// <inheritdoc />
    public async Task<VmResizeOutcome> ResizeLiveAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var sw = Stopwatch.StartNew();
        VmResizeOutcome? outcome = null;
        await WithVmAsync(id, async vm =>
        {
            if (vm.Pid is null || vm.Qmp is null || vm.Power != PowerState.Running)
            {
                throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; a live resize needs a running VM with QMP");
            }

            var spec = vm.Spec;
            var live = vm.Live ?? new LiveSize(spec.Vcpus, spec.MemoryMib, []);
            var errors = new List<string>();
            if (target.Vcpus < spec.Vcpus) errors.Add($"vCPU removal ({spec.Vcpus}→{target.Vcpus}) is never live");
            if (target.Vcpus > spec.MaxVcpus) errors.Add($"{target.Vcpus} vCPUs is above the VM's ceiling of {spec.MaxVcpus}");
            if (target.MemoryMib > spec.MaxMemoryMib) errors.Add($"{target.MemoryMib} MiB is above the VM's memory ceiling of {spec.MaxMemoryMib} MiB");
            if (target.MemoryMib < MinLiveMemoryMib) errors.Add($"memory below {MinLiveMemoryMib} MiB is not live");
            if (target.DiskGib < spec.DiskGib) errors.Add($"disk shrink ({spec.DiskGib}→{target.DiskGib} GiB) is refused");
            var addMib = 0L;
            if (target.MemoryMib > live.PluggedMemoryMib)
            {
                addMib = (target.MemoryMib - live.PluggedMemoryMib + DimmAlignMib - 1) / DimmAlignMib * DimmAlignMib;
                if (live.PluggedMemoryMib + addMib > spec.MaxMemoryMib) errors.Add($"a {addMib} MiB DIMM would pass the memory ceiling of {spec.MaxMemoryMib} MiB");
                if (live.Dimms.Count >= DimmSlots) errors.Add($"all {DimmSlots} memory slots are used");
            }
            if (errors.Count > 0)
            {
                throw new ComputeException("invalid_spec", string.Join("; ", errors));
            }

            var qmp = vm.Qmp;
            var steps = new List<string>();
            var before = await ReadGuestReportAsync(vm, cancellationToken);
            var old = spec;
            var newSpec = spec with { Vcpus = target.Vcpus, MemoryMib = target.MemoryMib };

            // The cgroup first: a larger memory limit before the DIMM, a larger CPU quota before the vCPUs.
            vm.Spec = newSpec;
            vm.Live = live with { Dimms = addMib > 0 ? [.. live.Dimms, addMib] : live.Dimms };
            await WriteCgroupAsync(vm, cancellationToken);
            try
            {
                var plugged = live.PluggedVcpus;
                if (target.Vcpus > plugged)
                {
                    plugged = await HotAddVcpusAsync(qmp, plugged, target.Vcpus, steps, cancellationToken);
                    vm.Live = vm.Live with { PluggedVcpus = plugged };
                }

                if (addMib > 0)
                {
                    await PlugDimmAsync(qmp, live.Dimms.Count, addMib, cancellationToken);
                    steps.Add($"hot-plugged a {addMib} MiB DIMM (dimm{live.Dimms.Count})");
                }

                if (target.MemoryMib != old.MemoryMib || target.MemoryMib < vm.Live.PluggedMemoryMib)
                {
                    var balloon = Math.Min(target.MemoryMib, vm.Live.PluggedMemoryMib);
                    await qmp.ExecuteAsync("balloon", new Dictionary<string, object> { ["value"] = balloon * 1024 * 1024 }, cancellationToken);
                    steps.Add(balloon < vm.Live.PluggedMemoryMib
                        ? $"balloon holds back {vm.Live.PluggedMemoryMib - balloon} MiB of {vm.Live.PluggedMemoryMib} MiB (guest gets {balloon} MiB)"
                        : $"balloon deflated: guest gets all {balloon} MiB");
                }

                await SaveStateAsync(vm, cancellationToken);
            }
            catch (Exception e) when (e is QmpException or ComputeException)
            {
                await RollBackLiveAsync(vm, old, CancellationToken.None);
                throw e as ComputeException ?? new ComputeException("hypervisor_error", $"live resize failed: {e.Message}");
            }

            // The guest's own word: its status page must show the CPUs and memory (when it had one before).
            GuestReport? after = null;
            if (before is not null)
            {
                var deadline = sw.Elapsed + _options.ResizeGuestTimeout;
                while (true)
                {
                    after = await ReadGuestReportAsync(vm, cancellationToken);
                    if (after is not null && Shows(before, after, old, target))
                    {
                        break;
                    }
                    if (sw.Elapsed > deadline)
                    {
                        await RollBackLiveAsync(vm, old, CancellationToken.None);
                        throw new ComputeException("resize_not_visible",
                            $"the guest did not show {target.Vcpus} vCPU / {target.MemoryMib} MiB within {_options.ResizeGuestTimeout.TotalSeconds:0} s " +
                            $"(it reports cpus={after?.Cpus.ToString(CultureInfo.InvariantCulture) ?? "?"} mem_kib={after?.MemKib.ToString(CultureInfo.InvariantCulture) ?? "?"}); rolled back to {old.Vcpus} vCPU / {old.MemoryMib} MiB");
                    }
                    await Task.Delay(100, cancellationToken);
                }
                steps.Add($"guest reports cpus={after.Cpus} mem_kib={after.MemKib} (was cpus={before.Cpus} mem_kib={before.MemKib})");
            }
            else if (target.Vcpus != old.Vcpus || target.MemoryMib != old.MemoryMib)
            {
                steps.Add("not verified: the guest serves no status page on a forwarded port 80");
            }
            var visibleMs = sw.ElapsedMilliseconds;

            if (target.DiskGib > old.DiskGib && File.Exists(vm.DiskPath))
            {
                await qmp.ExecuteAsync("block_resize", new Dictionary<string, object> { ["node-name"] = "root-fmt", ["size"] = target.DiskGib * 1024L * 1024 * 1024 }, cancellationToken);
                steps.Add($"disk grown online {old.DiskGib}→{target.DiskGib} GiB (virtio-blk capacity change sent to the guest)");
            }

            vm.Spec = vm.Spec with { DiskGib = Math.Max(target.DiskGib, old.DiskGib) };
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(vm.Spec, Json), cancellationToken);
            await SaveStateAsync(vm, cancellationToken);
            LogResized(_logger, id.ToString(), "live", string.Join("; ", steps));
            outcome = new VmResizeOutcome(vm.Status(), true, after is not null, after?.Cpus, after?.MemKib, visibleMs, steps);
        }, cancellationToken);
        return outcome!;
    }

    /// <summary>The live change did not take: memory back through the balloon, CPU quota back to the old count. A plugged DIMM
    /// or vCPU stays in the process (unplug is unsafe or needs the guest), unused; the next start boots the old size.</summary>
    private async Task RollBackLiveAsync(QemuVm vm, VmSpec old, CancellationToken ct)
    {
        vm.Spec = old;
        try
        {
            if (vm.Qmp is { } qmp && vm.Live is { } live)
            {
                await qmp.ExecuteAsync("balloon", new Dictionary<string, object> { ["value"] = Math.Min(old.MemoryMib, live.PluggedMemoryMib) * 1024 * 1024 }, ct);
            }
            await WriteCgroupAsync(vm, ct);
            await SaveStateAsync(vm, ct);
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException)
        {
            LogResized(_logger, vm.Id.ToString(), "rollback", $"incomplete: {e.Message}");
        }
    }

    private static bool Shows(GuestReport before, GuestReport after, VmSpec old, VmResizeTarget target)
    {
        if (target.Vcpus != old.Vcpus && after.Cpus != target.Vcpus)
        {
            return false;
        }
        var deltaKib = (target.MemoryMib - old.MemoryMib) * 1024;
        return deltaKib switch
        {
            > 0 => after.MemKib - before.MemKib >= deltaKib * 9 / 10,
            < 0 => before.MemKib - after.MemKib >= -deltaKib * 9 / 10,
            _ => true,
        };
    }

    /// <summary>The guest's report from its status page (<c>cpus=</c>, <c>mem_kib=</c>), or null when it serves none.</summary>
    private async Task<GuestReport?> ReadGuestReportAsync(QemuVm vm, CancellationToken ct)
    {
        if (vm.Forwards.FirstOrDefault(f => f.GuestPort == 80 && f.Protocol == "tcp") is not { } f)
        {
            return null;
        }
        try
        {
            var page = await GuestHttp.GetStringAsync(new Uri($"http://{_options.ForwardBindAddress}:{f.HostPort}/"), ct);
            int? cpus = null;
            long? mem = null;
            foreach (var line in page.Split('\n'))
            {
                if (line.StartsWith("cpus=", StringComparison.Ordinal) && int.TryParse(line[5..], CultureInfo.InvariantCulture, out var c)) cpus = c;
                if (line.StartsWith("mem_kib=", StringComparison.Ordinal) && long.TryParse(line[8..], CultureInfo.InvariantCulture, out var m)) mem = m;
            }
            return cpus is { } cc && mem is { } mm ? new GuestReport(cc, mm) : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private sealed record GuestReport(int Cpus, long MemKib);

    /// <inheritdoc />
    public async Task<VmResizeOutcome> ResizeStoppedAsync(InstanceId id, VmResizeTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var sw = Stopwatch.StartNew();
        VmResizeOutcome? outcome = null;
        await WithVmAsync(id, async vm =>
        {
            if (vm.Pid is not null)
            {
                throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; stop it first");
            }
            var old = vm.Spec;
            var errors = new List<string>();
            if (target.Vcpus < 1) errors.Add("vcpus must be ≥ 1");
            if (target.MemoryMib < 16) errors.Add("memory must be ≥ 16 MiB");
            if (target.DiskGib < old.DiskGib) errors.Add($"disk shrink ({old.DiskGib}→{target.DiskGib} GiB) is refused");
            if (errors.Count > 0)
            {
                throw new ComputeException("invalid_spec", string.Join("; ", errors));
            }

            var steps = new List<string>();
            var growDisk = target.DiskGib > old.DiskGib && File.Exists(vm.DiskPath);
            if (!File.Exists(RevertPath(vm)))
            {
                if (growDisk)
                {
                    // A grown disk cannot be shrunk back once the guest has grown its filesystem: keep the disk as it was.
                    File.Copy(vm.DiskPath, PreResizeDiskPath(vm), overwrite: true);
                }
                await File.WriteAllTextAsync(RevertPath(vm), JsonSerializer.Serialize(new RevertFile(old, growDisk), Json), cancellationToken);
            }
            if (growDisk)
            {
                await _qemuImg.GrowAsync(vm.DiskPath, target.DiskGib * 1024L * 1024 * 1024, cancellationToken);
                steps.Add($"disk {old.DiskGib}→{target.DiskGib} GiB (qemu-img resize)");
            }
            vm.Spec = old with
            {
                Vcpus = target.Vcpus,
                MemoryMib = target.MemoryMib,
                DiskGib = Math.Max(old.DiskGib, target.DiskGib),
                MaxVcpus = Math.Max(target.MaxVcpus, target.Vcpus),
                MaxMemoryMib = Math.Max(target.MaxMemoryMib, target.MemoryMib),
            };
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(vm.Spec, Json), cancellationToken);
            steps.Insert(0, $"spec {old.Vcpus} vCPU / {old.MemoryMib} MiB → {vm.Spec.Vcpus} vCPU / {vm.Spec.MemoryMib} MiB (ceilings {vm.Spec.MaxVcpus} / {vm.Spec.MaxMemoryMib} MiB)");
            LogResized(_logger, id.ToString(), "offline", string.Join("; ", steps));
            outcome = new VmResizeOutcome(vm.Status(), false, false, null, null, sw.ElapsedMilliseconds, steps);
        }, cancellationToken);
        return outcome!;
    }

    /// <inheritdoc />
    public async Task ConfirmResizeAsync(InstanceId id, CancellationToken cancellationToken)
    {
        await WithVmAsync(id, vm =>
        {
            File.Delete(PreResizeDiskPath(vm));
            File.Delete(RevertPath(vm));
            return Task.CompletedTask;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<VmStatus> RevertResizeAsync(InstanceId id, CancellationToken cancellationToken) =>
        WithVmAsync(id, async vm =>
        {
            if (vm.Pid is not null)
            {
                throw new ComputeException("invalid_state", $"VM {id} is {vm.Power}; stop it first");
            }
            if (!File.Exists(RevertPath(vm)))
            {
                throw new ComputeException("invalid_state", $"VM {id} has no resize to revert");
            }
            var revert = JsonSerializer.Deserialize<RevertFile>(await File.ReadAllTextAsync(RevertPath(vm), cancellationToken))!;
            if (revert.DiskKept)
            {
                File.Move(PreResizeDiskPath(vm), vm.DiskPath, overwrite: true);
            }
            vm.Spec = revert.Spec;
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(vm.Spec, Json), cancellationToken);
            File.Delete(RevertPath(vm));
            LogResized(_logger, id.ToString(), "revert", $"{revert.Spec.Vcpus} vCPU / {revert.Spec.MemoryMib} MiB / {revert.Spec.DiskGib} GiB");
        }, cancellationToken);

    /// <summary>The VM's spec as the driver holds it now (for tests).</summary>
    internal VmSpec? SpecOf(InstanceId id) => _vms.TryGetValue(id, out var vm) ? vm.Spec : null;

    [LoggerMessage(40, LogLevel.Information, "VM {InstanceId}: resize ({Kind}): {Steps}")]
    private static partial void LogResized(ILogger logger, string instanceId, string kind, string steps);

    /// <summary>Hot-adds vCPUs from <paramref name="plugged"/> up to <paramref name="target"/>: the free slots
    /// <c>query-hotpluggable-cpus</c> offers, last listed first, ids <c>cpuN</c>. A migration destination replays exactly this
    /// on the same boot size, so both processes end with the same slots. Returns the new count.</summary>
    private static async Task<int> HotAddVcpusAsync(QmpClient qmp, int plugged, int target, List<string>? steps, CancellationToken cancellationToken)
    {
        var slots = await qmp.ExecuteAsync("query-hotpluggable-cpus", null, cancellationToken);
        var free = slots.EnumerateArray().Where(s => !s.TryGetProperty("qom-path", out _)).Reverse().ToList();
        foreach (var slot in free.Take(target - plugged))
        {
            var args = new Dictionary<string, object> { ["driver"] = slot.GetProperty("type").GetString()!, ["id"] = $"cpu{plugged}" };
            foreach (var p in slot.GetProperty("props").EnumerateObject())
            {
                args[p.Name] = p.Value.GetInt64();
            }
            await qmp.ExecuteAsync("device_add", args, cancellationToken);
            plugged++;
            steps?.Add($"hot-added vCPU {plugged} ({string.Join(' ', slot.GetProperty("props").EnumerateObject().Select(p => $"{p.Name}={p.Value}"))})");
        }
        if (plugged < target)
        {
            throw new ComputeException("hypervisor_error", $"QEMU offered only {plugged} of {target} vCPU slots");
        }
        return plugged;
    }

    /// <summary>Plugs DIMM number <paramref name="index"/> (backend <c>mem-dimmN</c>, device <c>dimmN</c>: the names a
    /// migration matches RAM blocks and devices by).</summary>
    private static async Task PlugDimmAsync(QmpClient qmp, int index, long mib, CancellationToken cancellationToken)
    {
        await qmp.ExecuteAsync("object-add", new Dictionary<string, object> { ["qom-type"] = "memory-backend-ram", ["id"] = $"mem-dimm{index}", ["size"] = mib * 1024 * 1024 }, cancellationToken);
        await qmp.ExecuteAsync("device_add", new Dictionary<string, object> { ["driver"] = "pc-dimm", ["id"] = $"dimm{index}", ["memdev"] = $"mem-dimm{index}" }, cancellationToken);
    }
}
