using Google.OrTools.Sat;

namespace Stratus.Scheduler.Bounds;

/// <summary>
/// A tighter lower bound from OR-Tools' CP-SAT solver on the aggregated bin-packing model
/// (item types × hosts, integer counts), for instances small enough to model. CP-SAT proves a
/// bound on the optimum (its best objective bound); within its deterministic work limit it often
/// proves the optimum itself. Deterministic (no wall-clock limit), so the scheduler stays pure.
/// </summary>
public static class ExactBinPackingBound
{
    /// <summary>Largest model (item types × candidate hosts) this bound will build.</summary>
    public const int MaxCells = 20_000;

    /// <summary>
    /// The bound for <paramref name="items"/> on identical hosts of capacity <paramref name="host"/>,
    /// given a known feasible packing of <paramref name="upperBound"/> hosts; null when the model is
    /// too large (see <see cref="MaxCells"/>). The result is never below the volume bound.
    /// </summary>
    /// <param name="deterministicTime">CP-SAT's deterministic work limit (about seconds on a fast core).</param>
    public static LowerBound? TryCompute(IReadOnlyList<PackingVector> items, PackingVector host, int upperBound, double deterministicTime = 5.0)
    {
        ArgumentNullException.ThrowIfNull(items);
        var volume = LowerBounds.MartelloTothL2(items, host);
        if (items.Count == 0 || upperBound <= volume.Hosts)
        {
            return volume;
        }
        var types = items.GroupBy(i => i).Select(g => (Size: g.Key, Count: g.Count())).OrderByDescending(t => t.Size.Memory).ToArray();
        if ((long)types.Length * upperBound > MaxCells)
        {
            return null;
        }
        var model = new CpModel();
        var used = new BoolVar[upperBound];
        var x = new IntVar[types.Length, upperBound];
        for (var b = 0; b < upperBound; b++)
        {
            used[b] = model.NewBoolVar($"y{b}");
            for (var t = 0; t < types.Length; t++)
            {
                x[t, b] = model.NewIntVar(0, types[t].Count, $"x{t}_{b}");
            }
            for (var d = 0; d < PackingVector.Dimensions; d++)
            {
                if (host[d] <= 0 || types.All(t => t.Size[d] == 0))
                {
                    continue;
                }
                var load = LinearExpr.WeightedSum(Enumerable.Range(0, types.Length).Select(t => x[t, b]), types.Select(t => t.Size[d]));
                model.Add(load <= host[d] * used[b]);
            }
            if (b > 0)
            {
                model.AddImplication(used[b], used[b - 1]);
            }
        }
        for (var t = 0; t < types.Length; t++)
        {
            model.Add(LinearExpr.Sum(Enumerable.Range(0, upperBound).Select(b => x[t, b])) == types[t].Count);
        }
        model.AddLinearConstraint(LinearExpr.Sum(used), volume.Hosts, upperBound);
        model.Minimize(LinearExpr.Sum(used));
        var solver = new CpSolver
        {
            StringParameters = FormattableString.Invariant($"max_deterministic_time:{deterministicTime} num_workers:1 random_seed:1"),
        };
        var status = solver.Solve(model);
        if (status is not (CpSolverStatus.Optimal or CpSolverStatus.Feasible))
        {
            return volume;
        }
        var bound = (int)Math.Ceiling(solver.BestObjectiveBound - 1e-6);
        return bound > volume.Hosts ? new LowerBound(bound, status == CpSolverStatus.Optimal ? "cp-sat:optimal" : "cp-sat") : volume;
    }
}
