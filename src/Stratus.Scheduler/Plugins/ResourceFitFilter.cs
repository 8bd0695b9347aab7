using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Removes hosts without enough free CPU, memory, disk or GPU. Capacity already folds in the
/// allocation ratios and reserved resources, so the check is exact integer arithmetic.
/// </summary>
public sealed class ResourceFitFilter : IFilterPlugin
{
    public string Name => "ResourceFitFilter";

    public bool Prepare(CycleState state) => true;

    public bool Filter(CycleState state, HostSnapshot host)
    {
        var c = host.Capacity;
        var u = host.Used;
        return c.MilliVcpus - u.MilliVcpus >= state.Cpu
            && c.MemoryMib - u.MemoryMib >= state.Memory
            && c.DiskGib - u.DiskGib >= state.Disk
            && host.GpuMilliCapacity - host.GpuMilliUsed >= state.Gpu;
    }

    private static string Describe(CycleState state)
    {
        var s = $"{ResourceFormat.Cpu(state.Cpu)}, {ResourceFormat.Memory(state.Memory)}";
        if (state.Disk > 0)
        {
            s += $", {ResourceFormat.Disk(state.Disk)}";
        }
        if (state.Gpu > 0)
        {
            s += $", {ResourceFormat.Gpu(state.Gpu)}";
        }
        return s;
    }

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        long maxCpu = long.MinValue, maxMem = long.MinValue, maxDisk = long.MinValue, maxGpu = long.MinValue;
        var everFits = false;
        foreach (var h in reached)
        {
            var f = h.Free;
            maxCpu = Math.Max(maxCpu, f.MilliVcpus);
            maxMem = Math.Max(maxMem, f.MemoryMib);
            maxDisk = Math.Max(maxDisk, f.DiskGib);
            maxGpu = Math.Max(maxGpu, h.GpuMilliCapacity - h.GpuMilliUsed);
            var c = h.Capacity;
            everFits |= state.Cpu <= c.MilliVcpus && state.Memory <= c.MemoryMib && state.Disk <= c.DiskGib && state.Gpu <= h.GpuMilliCapacity;
        }
        var parts = new List<string>(4);
        if (state.Cpu > maxCpu)
        {
            parts.Add($"vcpu: largest free {ResourceFormat.Cpu(Math.Max(0, maxCpu))}, asked {ResourceFormat.Cpu(state.Cpu)}");
        }
        if (state.Memory > maxMem)
        {
            parts.Add($"memory: largest free {ResourceFormat.Memory(Math.Max(0, maxMem))}, asked {ResourceFormat.Memory(state.Memory)}");
        }
        if (state.Disk > maxDisk)
        {
            parts.Add($"disk: largest free {ResourceFormat.Disk(Math.Max(0, maxDisk))}, asked {ResourceFormat.Disk(state.Disk)}");
        }
        if (state.Gpu > maxGpu)
        {
            parts.Add($"gpu: largest free {ResourceFormat.Gpu(Math.Max(0, maxGpu))}, asked {ResourceFormat.Gpu(state.Gpu)}");
        }
        if (parts.Count == 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"resources: no single host of {ResourceFormat.Hosts(reached.Count)} has {Describe(state)} free at once"));
        }
        var reason = string.Join("; ", parts);
        // The reason reads the same either way; the result type (unresolvable) says no host is large enough.
        return new FilterExplanation(reason, !everFits);
    }
}
