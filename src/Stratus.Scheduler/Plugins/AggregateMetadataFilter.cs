using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Keeps hosts where, for every key/value the request asks for, one of the host's aggregates
/// carries that metadata (Nova's AggregateInstanceExtraSpecsFilter). A value may list
/// alternatives separated by commas.
/// </summary>
public sealed class AggregateMetadataFilter : IFilterPlugin
{
    public string Name => "AggregateMetadataFilter";

    public bool Prepare(CycleState state) => !state.Request.AggregateMetadata.IsEmpty;

    public bool Filter(CycleState state, HostSnapshot host)
    {
        foreach (var (key, wanted) in state.Request.AggregateMetadata)
        {
            if (!HostHas(host, key, wanted))
            {
                return false;
            }
        }
        return true;
    }

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var parts = new List<string>();
        foreach (var (key, wanted) in state.Request.AggregateMetadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var lacking = reached.Count(h => !HostHas(h, key, wanted));
            if (lacking > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{lacking} of {ResourceFormat.Hosts(reached.Count)} are in no aggregate with {key}={wanted}"));
            }
        }
        return new FilterExplanation("aggregates: " + string.Join("; ", parts), true);
    }

    private static bool HostHas(HostSnapshot host, string key, string wanted)
    {
        foreach (var agg in host.Aggregates)
        {
            if (agg.Metadata.TryGetValue(key, out var value) && Matches(value, wanted))
            {
                return true;
            }
        }
        return false;
    }

    private static bool Matches(string value, string wanted)
    {
        if (string.Equals(value, wanted, StringComparison.Ordinal))
        {
            return true;
        }
        foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (string.Equals(part, wanted, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
