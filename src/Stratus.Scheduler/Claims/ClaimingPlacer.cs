using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Claims;

/// <summary>The outcome of <see cref="ClaimingPlacer.PlaceAndClaim"/>.</summary>
/// <param name="Result">The last decision (a <see cref="Placed"/> that was claimed, or the refusal).</param>
/// <param name="Retries">Decisions re-made after a lost race.</param>
/// <param name="Claimed">True when the placement was committed in the ledger.</param>
public readonly record struct ClaimedPlacement(PlacementResult Result, int Retries, bool Claimed);

/// <summary>
/// The caller's loop around a pure engine: decide on a fresh view, claim with compare-and-swap,
/// and on a lost race re-plan on a fresher view (up to <c>maxRetries</c> times).
/// </summary>
public static class ClaimingPlacer
{
    /// <summary>Places and claims one request. The group in the request is refreshed from the ledger before each attempt.</summary>
    public static ClaimedPlacement PlaceAndClaim(IPlacementEngine engine, ClaimLedger ledger, PlacementRequest request, int maxRetries = 32)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(request);
        for (var attempt = 0; ; attempt++)
        {
            var r = request.Group is { } g ? request with { Group = ledger.Group(g.Name) ?? g, Attempt = attempt } : attempt == 0 ? request : request with { Attempt = attempt };
            var result = engine.Place(r, ledger.LiveSnapshot);
            if (result is not Placed placed)
            {
                return new ClaimedPlacement(result, attempt, false);
            }
            if (ledger.TryClaim(r, placed) == ClaimOutcome.Claimed)
            {
                return new ClaimedPlacement(result, attempt, true);
            }
            if (attempt >= maxRetries)
            {
                return new ClaimedPlacement(result, attempt, false);
            }
        }
    }
}
