using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Plugins;

/// <summary>
/// Power-aware preference: 1 for a powered-on host already running servers, 0.5 for a powered-on
/// idle host (it could be powered down), 0 for a host that is off and would have to be woken.
/// A positive weight keeps work on hosts that are already on.
/// </summary>
public sealed class PowerStateScorer : IScorePlugin
{
    public string Name => "PowerStateScorer";

    public bool NeedsNormalize => false;

    public bool Prepare(CycleState state) => true;

    public double Score(CycleState state, HostSnapshot host) =>
        !host.PoweredOn ? 0 : host.InstanceCount > 0 || host.Used != ResourceVector.Zero ? 1 : 0.5;

    public void Normalize(CycleState state, Span<double> scores)
    {
    }
}
