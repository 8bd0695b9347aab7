namespace Stratus.Scheduler.Consolidation;

/// <summary>Chooses which VM to move off an overloaded host (CloudSim's <c>PowerVmSelectionPolicy</c>).</summary>
public interface IVmSelector
{
    /// <summary>A VM on the host that is not migrating, or −1 if none.</summary>
    int Select(PlanningState state, int host);
}

/// <summary>Minimum migration time (MMT): the VM with the least memory; ties go to the earliest arrival.</summary>
public sealed class MinimumMigrationTimeSelector : IVmSelector
{
    /// <inheritdoc />
    public int Select(PlanningState state, int host) => MovableVms.ArgMin(state, host, vm => state.VmSpecOf(vm).RamMb);
}

/// <summary>Minimum utilisation (MU): the VM with the lowest current demand in MIPS.</summary>
public sealed class MinimumUtilizationSelector : IVmSelector
{
    /// <inheritdoc />
    public int Select(PlanningState state, int host) => MovableVms.ArgMin(state, host, state.RequestedMips);
}

/// <summary>The VMs of a host that may be selected: not migrating out and not arriving.</summary>
internal static class MovableVms
{
    /// <summary>The movable VM with the smallest <paramref name="key"/> (ties: the earliest on the host), or −1.</summary>
    public static int ArgMin(PlanningState state, int host, Func<int, double> key)
    {
        var best = -1;
        var min = double.MaxValue;
        for (var i = 0; i < state.VmCountOn(host); i++)
        {
            var vm = state.VmOn(host, i);
            if (state.IsInMigration(vm) || state.IsMigratingIn(host, i))
            {
                continue;
            }
            var k = key(vm);
            if (k < min)
            {
                min = k;
                best = vm;
            }
        }
        return best;
    }
}

/// <summary>Random selection (RS) from a seeded source, so runs repeat exactly.</summary>
/// <param name="random">The random source (seeded by the caller).</param>
public sealed class RandomSelector(Random random) : IVmSelector
{
    /// <inheritdoc />
    public int Select(PlanningState state, int host)
    {
        var candidates = new List<int>();
        for (var i = 0; i < state.VmCountOn(host); i++)
        {
            var vm = state.VmOn(host, i);
            if (!state.IsInMigration(vm) && !state.IsMigratingIn(host, i))
            {
                candidates.Add(vm);
            }
        }
        return candidates.Count == 0 ? -1 : candidates[random.Next(candidates.Count)];
    }
}

/// <summary>
/// Maximum correlation (MC): the VM whose utilisation history is best explained (highest R² of a
/// multiple linear regression) by the other VMs' histories on the host. Falls back to another
/// selector when histories are too short for the regression.
/// </summary>
/// <param name="fallback">Selector used when the regression cannot be computed.</param>
public sealed class MaximumCorrelationSelector(IVmSelector fallback) : IVmSelector
{
    /// <inheritdoc />
    public int Select(PlanningState state, int host)
    {
        var vms = new List<int>();
        for (var i = 0; i < state.VmCountOn(host); i++)
        {
            var vm = state.VmOn(host, i);
            if (!state.IsInMigration(vm) && !state.IsMigratingIn(host, i))
            {
                vms.Add(vm);
            }
        }
        if (vms.Count == 0)
        {
            return -1;
        }
        var n = int.MaxValue;
        foreach (var vm in vms)
        {
            n = Math.Min(n, state.HistoryOf(vm).Length);
        }
        if (vms.Count < 2 || n <= vms.Count)
        {
            return fallback.Select(state, host);
        }
        var series = new double[vms.Count][];
        for (var i = 0; i < vms.Count; i++)
        {
            var hist = state.HistoryOf(vms[i]);
            series[i] = new double[n];
            for (var t = 0; t < n; t++)
            {
                series[i][t] = hist[n - 1 - t];
            }
        }
        var best = -1;
        var max = double.MinValue;
        for (var i = 0; i < vms.Count; i++)
        {
            var others = new double[vms.Count - 1][];
            for (int j = 0, k = 0; j < vms.Count; j++)
            {
                if (j != i)
                {
                    others[k++] = series[j];
                }
            }
            var r2 = Statistics.RSquared(series[i], others);
            if (!double.IsNaN(r2) && r2 > max)
            {
                max = r2;
                best = vms[i];
            }
        }
        return best >= 0 ? best : fallback.Select(state, host);
    }
}
