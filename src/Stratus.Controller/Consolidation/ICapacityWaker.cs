using Stratus.Core.Compute;

namespace Stratus.Controller.Consolidation;

/// <summary>
/// Called by the reconciler when a server finds no room on the hosts that are up. Returning true keeps the server
/// waiting for a host (it stays <c>scheduling</c> and the next passes try again) because capacity is being brought
/// up; false lets the reconciler fail it with "no valid host" as before. Must be cheap and must not block on slow
/// power operations (start them in the background).
/// </summary>
public interface ICapacityWaker
{
    /// <summary>Wakes (or is already waking) a host that could take <paramref name="server"/>; false when none can.</summary>
    Task<bool> WakeForAsync(Instance server, CancellationToken cancellationToken);
}
