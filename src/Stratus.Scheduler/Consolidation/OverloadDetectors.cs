using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>Decides whether a host is overloaded (CloudSim's <c>isHostOverUtilized</c>). Pure given the state.</summary>
public interface IOverloadDetector
{
    /// <summary>True when the host, with <paramref name="extraVm"/> added if ≥ 0, counts as overloaded.</summary>
    bool IsOverloaded(PlanningState state, int host, int extraVm);
}

/// <summary>Static threshold (THR): overloaded when current demand exceeds a fraction of capacity.</summary>
/// <param name="threshold">Fraction of host MIPS, e.g. 0.8.</param>
public sealed class StaticThresholdDetector(double threshold) : IOverloadDetector
{
    /// <summary>The threshold (fraction of host MIPS).</summary>
    public double Threshold => threshold;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool IsOverloaded(PlanningState state, int host, int extraVm)
        => state.HostRequestedMips(host, extraVm) / state.HostSpecOf(host).TotalMips > threshold;
}

/// <summary>
/// Adaptive threshold from the host's utilisation history: overloaded when demand exceeds
/// 1 − s × spread, where spread is the IQR or the MAD of the history (CloudSim's IQR and MAD
/// policies). Needs 12 history points, else defers to a fallback.
/// </summary>
public sealed class AdaptiveThresholdDetector : IOverloadDetector
{
    private readonly bool _useIqr;
    private readonly double _safety;
    private readonly IOverloadDetector _fallback;

    private AdaptiveThresholdDetector(bool useIqr, double safety, IOverloadDetector fallback)
    {
        _useIqr = useIqr;
        _safety = safety;
        _fallback = fallback;
    }

    /// <summary>Inter-quartile range (IQR) detector with safety parameter s.</summary>
    public static AdaptiveThresholdDetector Iqr(double safety, IOverloadDetector fallback) => new(true, safety, fallback);

    /// <summary>Median absolute deviation (MAD) detector with safety parameter s.</summary>
    public static AdaptiveThresholdDetector Mad(double safety, IOverloadDetector fallback) => new(false, safety, fallback);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool IsOverloaded(PlanningState state, int host, int extraVm)
    {
        Span<double> hist = stackalloc double[PlanningState.HistoryLength];
        var len = state.HostHistory(host, extraVm, hist);
        if (len < 12)
        {
            return _fallback.IsOverloaded(state, host, extraVm);
        }
        var spread = _useIqr ? Statistics.Iqr(hist[..len]) : Statistics.Mad(hist[..len]);
        var upper = 1 - (_safety * spread);
        return state.HostRequestedMips(host, extraVm) / state.HostSpecOf(host).TotalMips > upper;
    }
}

/// <summary>
/// Local regression (LR) and robust local regression (LRR): fit a line to the last 10 points of the
/// host's utilisation history, extrapolate past the longest migration of its VMs, multiply by the
/// safety parameter; overloaded when that reaches 1. Fewer than 10 points defer to a fallback.
/// CloudSim's "loess" weights are never applied (its weighting condition is never met), so the fit
/// is ordinary least squares; LRR refits after a residual-based reweighting that CloudSim likewise
/// does not apply. Both are reproduced as CloudSim runs them.
/// </summary>
/// <param name="safety">Safety parameter s (1.2 in the reference experiment).</param>
/// <param name="fallback">Detector used while the history is short.</param>
/// <param name="robust">True for LRR.</param>
public sealed class LocalRegressionDetector(double safety, IOverloadDetector fallback, bool robust = false) : IOverloadDetector
{
    private const int Length = 10;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool IsOverloaded(PlanningState state, int host, int extraVm)
    {
        Span<double> hist = stackalloc double[PlanningState.HistoryLength];
        var len = state.HostHistory(host, extraVm, hist);
        if (len < Length)
        {
            return fallback.IsOverloaded(state, host, extraVm);
        }
        Span<double> reversed = stackalloc double[Length];
        for (var i = 0; i < Length; i++)
        {
            reversed[i] = hist[Length - i - 1];
        }
        var (intercept, slope) = Statistics.LinearFit(reversed);
        if (double.IsNaN(slope))
        {
            return fallback.IsOverloaded(state, host, extraVm);
        }
        _ = robust; // the robust refit gives the same line in CloudSim (see remarks)
        var migrationIntervals = Math.Ceiling(state.MaxMigrationTime(host, extraVm) / state.Interval);
        var predicted = (intercept + (slope * (Length + migrationIntervals))) * safety;
        return predicted >= 1;
    }
}
