using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// The host's capacity relative to the largest scored host, averaged over the counted dimensions.
/// A positive weight prefers larger hosts: on a mixed fleet, filling the largest hosts first needs
/// the fewest hosts (the volume lower bound counts hosts largest first, too).
/// </summary>
public sealed class HostSizeScorer : IScorePlugin
{
    public string Name => "HostSizeScorer";

    public bool NeedsNormalize => true;

    public bool Prepare(CycleState state) => true;

    // Raw size on one scale: vCPUs + memory in 8 GiB units (+ GPUs × 8 when asked); Normalize divides by the largest.
    public double Score(CycleState state, HostSnapshot host)
    {
        var c = host.Capacity;
        var sum = (c.MilliVcpus / 1000.0) + (c.MemoryMib / 8192.0);
        if (state.Gpu > 0)
        {
            sum += host.GpuMilliCapacity / 125.0;
        }
        return sum;
    }

    public void Normalize(CycleState state, Span<double> scores)
    {
        var max = 0.0;
        foreach (var s in scores)
        {
            max = Math.Max(max, s);
        }
        for (var i = 0; i < scores.Length; i++)
        {
            scores[i] = max <= 0 ? 0 : scores[i] / max;
        }
    }
}
