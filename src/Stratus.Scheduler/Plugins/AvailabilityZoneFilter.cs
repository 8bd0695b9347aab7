using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>Keeps only hosts in the availability zone the request asks for (when it asks for one).</summary>
public sealed class AvailabilityZoneFilter : IFilterPlugin
{
    public string Name => "AvailabilityZoneFilter";

    public bool Prepare(CycleState state) => state.Request.Zone is not null;

    public bool Filter(CycleState state, HostSnapshot host) => string.Equals(host.Zone, state.Request.Zone, StringComparison.Ordinal);

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var outside = reached.Count(h => !Filter(state, h));
        var zones = reached.Select(h => h.Zone).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(5);
        return new FilterExplanation(string.Create(CultureInfo.InvariantCulture,
            $"availability zone: {outside} of {ResourceFormat.Hosts(reached.Count)} are not in zone '{state.Request.Zone}' (zones seen: {string.Join(", ", zones)})"), true);
    }
}
