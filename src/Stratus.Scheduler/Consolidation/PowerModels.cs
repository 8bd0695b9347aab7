using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>
/// Power drawn by a host as a function of its CPU utilisation (0..1). Implementations are pure and
/// thread-safe. Utilisation outside [0, 1] is clamped: a simulator must never ask for more, and a
/// planner asking for more gets the peak power.
/// </summary>
public abstract class PowerModel
{
    /// <summary>Watts at the given utilisation (fraction of the host's total MIPS, 0..1).</summary>
    public abstract double PowerAt(double utilization);

    /// <summary>Watts at 0 % utilisation (host on, idle).</summary>
    public double IdleWatts => PowerAt(0);

    /// <summary>Watts at 100 % utilisation.</summary>
    public double PeakWatts => PowerAt(1);
}

/// <summary>
/// SPECpower-style table: watts measured at 0, 10, …, 100 % utilisation, linearly interpolated
/// between the two neighbouring points exactly as CloudSim's <c>PowerModelSpecPower</c> does
/// (same floating-point expression, so results compare bit for bit).
/// </summary>
public sealed class SpecPowerModel : PowerModel
{
    private readonly double[] _watts;

    /// <param name="watts">Eleven values: watts at 0 %, 10 %, …, 100 %.</param>
    public SpecPowerModel(IReadOnlyList<double> watts)
    {
        if (watts.Count != 11)
        {
            throw new ArgumentException("A SPECpower table has 11 points (0 %..100 % in steps of 10 %).", nameof(watts));
        }
        _watts = watts.ToArray();
    }

    /// <summary>The table, watts at 0 %, 10 %, …, 100 %.</summary>
    public IReadOnlyList<double> Watts => _watts;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override double PowerAt(double utilization)
    {
        if (utilization <= 0)
        {
            return _watts[0];
        }
        if (utilization >= 1)
        {
            return _watts[10];
        }
        if (utilization % 0.1 == 0)
        {
            return _watts[(int)(utilization * 10)];
        }
        var u1 = (int)Math.Floor(utilization * 10);
        var u2 = (int)Math.Ceiling(utilization * 10);
        var p1 = _watts[u1];
        var p2 = _watts[u2];
        var delta = (p2 - p1) / 10;
        return p1 + (delta * (utilization - ((double)u1 / 10)) * 100);
    }

    /// <summary>HP ProLiant ML110 G4 (Xeon 3040), the CloudSim PlanetLab experiment's first host type.</summary>
    public static SpecPowerModel HpProLiantMl110G4 { get; } = new([86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117]);

    /// <summary>HP ProLiant ML110 G5 (Xeon 3075), the CloudSim PlanetLab experiment's second host type.</summary>
    public static SpecPowerModel HpProLiantMl110G5 { get; } = new([93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135]);
}

/// <summary>Linear model: idle + (peak − idle) × u, as CloudSim's <c>PowerModelLinear</c>.</summary>
public sealed class LinearPowerModel(double idleWatts, double peakWatts) : PowerModel
{
    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override double PowerAt(double utilization)
    {
        var u = Math.Clamp(utilization, 0, 1);
        return idleWatts + ((peakWatts - idleWatts) / 100 * u * 100);
    }
}

/// <summary>Cubic model: idle + (peak − idle) × u³, as CloudSim's <c>PowerModelCubic</c>.</summary>
public sealed class CubicPowerModel(double idleWatts, double peakWatts) : PowerModel
{
    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override double PowerAt(double utilization)
    {
        var u = Math.Clamp(utilization, 0, 1);
        return idleWatts + ((peakWatts - idleWatts) / 1_000_000 * Math.Pow(u * 100, 3));
    }
}
