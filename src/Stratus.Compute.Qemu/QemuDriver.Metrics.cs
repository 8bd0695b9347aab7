using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Resource-use sampling (<see cref="IMetricsSource"/>). Per VM: CPU from the VM cgroup's usage counter (cpuacct.usage on
/// v1, cpu.stat usage_usec on v2; /proc/&lt;pid&gt;/stat utime+stime without cgroups) as a share of its vCPUs; memory
/// from the cgroup (memory.usage_in_bytes / memory.current; the process RSS without cgroups); disk read/write rates from
/// QMP <c>query-blockstats</c> over the driver's existing QMP connection (QEMU serves one QMP client at a time).
/// Network rates are always 0: user-mode (slirp) networking keeps no counters QEMU 7.2 exposes (no netdev stats in
/// QMP or HMP; <c>query-stats</c> offers only KVM statistics). Host: CPU from /proc/stat, memory MemTotal − MemAvailable,
/// disk used of the data directory's file system.
/// <para>Rates are deltas since the previous call, so a VM is listed from its second sample on (after every QEMU
/// restart the counters start again); the first call's host CPU is the average since boot.</para>
/// </summary>
public sealed partial class QemuDriver : IMetricsSource
{
    private readonly SemaphoreSlim _sampleGate = new(1, 1);
    private readonly ConcurrentDictionary<InstanceId, VmReading> _readings = new();
    private (long Busy, long Total) _hostTicks;

    /// <summary>One reading of a VM's cumulative counters.</summary>
    private sealed record VmReading(int Pid, bool FromCgroup, long Timestamp, long CpuNanoseconds, long? ReadBytes, long? WriteBytes);

    /// <inheritdoc />
    public async Task<HostSample> SampleAsync(CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        await _sampleGate.WaitAsync(cancellationToken);
        try
        {
            var vms = new List<VmSample>();
            foreach (var vm in _vms.Values.OrderBy(v => v.Id.Value))
            {
                if (vm.Pid is not { } pid)
                {
                    _readings.TryRemove(vm.Id, out _);
                    continue;
                }

                if (await SampleVmAsync(vm, pid, cancellationToken) is { } sample)
                {
                    vms.Add(sample);
                }
            }

            foreach (var gone in _readings.Keys.Where(id => !_vms.ContainsKey(id)).ToList())
            {
                _readings.TryRemove(gone, out _);
            }

            var ticks = HostProbe.CpuTicks();
            var total = ticks.Total - _hostTicks.Total;
            var hostCpu = total > 0 ? Math.Clamp(100.0 * (ticks.Busy - _hostTicks.Busy) / total, 0, 100) : 0;
            _hostTicks = ticks;
            return new HostSample(DateTimeOffset.UtcNow, hostCpu, HostProbe.MemoryUsedMib(), HostProbe.DiskUsedGib(_options.DataDirectory), vms);
        }
        finally
        {
            _sampleGate.Release();
        }
    }

    private async Task<VmSample?> SampleVmAsync(QemuVm vm, int pid, CancellationToken cancellationToken)
    {
        var now = Stopwatch.GetTimestamp();
        long cpu;
        long memory;
        var fromCgroup = false;
        if (_cgroups is not null && _cgroups.Exists(vm.CgroupName)
            && await _cgroups.ReadUsageAsync(vm.CgroupName, cancellationToken) is { CpuUsageNanoseconds: > 0 } usage)
        {
            (cpu, memory, fromCgroup) = (usage.CpuUsageNanoseconds, usage.MemoryBytes, true);
        }
        else if (HostProbe.ProcessUsage(pid) is { } proc)
        {
            (cpu, memory) = proc;
        }
        else
        {
            return null; // exiting
        }

        var (read, write) = await BlockBytesAsync(vm, cancellationToken);
        var reading = new VmReading(pid, fromCgroup, now, cpu, read, write);
        var previous = _readings.GetValueOrDefault(vm.Id);
        _readings[vm.Id] = reading;
        if (previous is null || previous.Pid != pid || previous.FromCgroup != fromCgroup || now <= previous.Timestamp)
        {
            return null; // a rate needs two readings of the same process from the same counter
        }

        var seconds = (double)(now - previous.Timestamp) / Stopwatch.Frequency;
        var cpuPercent = Math.Clamp((cpu - previous.CpuNanoseconds) / (seconds * 1e9 * Math.Max(1, vm.Spec.Vcpus)) * 100, 0, 100);
        return new VmSample(vm.Id, cpuPercent, memory / (1024 * 1024),
            Rate(previous.ReadBytes, read, seconds), Rate(previous.WriteBytes, write, seconds), 0, 0);
    }

    private static long Rate(long? before, long? after, double seconds) =>
        before is { } b && after is { } a && a >= b ? (long)((a - b) / seconds) : 0;

    /// <summary>Bytes read and written by all of the VM's block devices since QEMU started (null when QMP cannot answer now).</summary>
    private async Task<(long? Read, long? Write)> BlockBytesAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (vm.Qmp is not { } qmp)
        {
            return (null, null);
        }

        try
        {
            var stats = await qmp.ExecuteAsync("query-blockstats", null, cancellationToken, TimeSpan.FromSeconds(2));
            long read = 0, write = 0;
            foreach (var device in stats.EnumerateArray())
            {
                if (device.TryGetProperty("stats", out var s))
                {
                    read += s.GetProperty("rd_bytes").GetInt64();
                    write += s.GetProperty("wr_bytes").GetInt64();
                }
            }

            return (read, write);
        }
        catch (Exception e) when (e is IOException or TimeoutException or QmpException or ObjectDisposedException or KeyNotFoundException or InvalidOperationException)
        {
            return (null, null);
        }
    }
}
