using System.Globalization;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>Keeps hosts that have every required trait and none of the forbidden ones (Placement's required/forbidden traits).</summary>
public sealed class TraitsFilter : IFilterPlugin
{
    public string Name => "TraitsFilter";

    public bool Prepare(CycleState state) => !state.Request.RequiredTraits.IsDefaultOrEmpty || !state.Request.ForbiddenTraits.IsDefaultOrEmpty;

    public bool Filter(CycleState state, HostSnapshot host)
    {
        var traits = host.Traits;
        var required = state.Request.RequiredTraits;
        if (!required.IsDefault)
        {
            foreach (var t in required)
            {
                if (!traits.Contains(t))
                {
                    return false;
                }
            }
        }
        var forbidden = state.Request.ForbiddenTraits;
        if (!forbidden.IsDefault)
        {
            foreach (var t in forbidden)
            {
                if (traits.Contains(t))
                {
                    return false;
                }
            }
        }
        return true;
    }

    public FilterExplanation Explain(CycleState state, IReadOnlyList<HostSnapshot> reached)
    {
        var parts = new List<string>();
        var req = state.Request.RequiredTraits.IsDefault ? [] : state.Request.RequiredTraits;
        foreach (var t in req)
        {
            var lacking = reached.Count(h => !h.Traits.Contains(t));
            if (lacking > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{lacking} of {ResourceFormat.Hosts(reached.Count)} lack required trait {t}"));
            }
        }
        var forb = state.Request.ForbiddenTraits.IsDefault ? [] : state.Request.ForbiddenTraits;
        foreach (var t in forb)
        {
            var having = reached.Count(h => h.Traits.Contains(t));
            if (having > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{having} of {ResourceFormat.Hosts(reached.Count)} have forbidden trait {t}"));
            }
        }
        return new FilterExplanation("traits: " + string.Join("; ", parts), true);
    }
}
