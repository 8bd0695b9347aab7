using System.Globalization;
using Stratus.Core.Compute;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Removes hosts that may not receive new servers: only <see cref="HostState.Up"/> hosts pass,
/// plus <see cref="HostState.Standby"/> hosts when <paramref name="allowStandby"/> (the caller
/// wakes them before use; the energy profile allows them as a last resort).
/// </summary>
public sealed class HostStateFilter(bool allowStandby = false) : IFilterPlugin
{
    public string Name => "HostStateFilter";

    public bool Prepare(CycleState state) => true;

    public bool Filter(CycleState state, HostSnapshot host) =>
        host.State == HostState.Up || (allowStandby && host.State == HostState.Standby);

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var byState = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var h in reached)
        {
            if (!Filter(state, h))
            {
                var key = h.State.ToString().ToLowerInvariant();
                byState[key] = byState.GetValueOrDefault(key) + 1;
            }
        }
        var detail = string.Join(", ", byState.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Value} {kv.Key}")));
        return new FilterExplanation(string.Create(CultureInfo.InvariantCulture,
            $"host state: {byState.Values.Sum()} of {ResourceFormat.Hosts(reached.Count)} cannot take servers ({detail})"), false);
    }
}
