using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>
/// Beloglazov &amp; Buyya's consolidation as CloudSim 3.0.3 runs it: find overloaded hosts (a detector),
/// pick VMs off them until they are not overloaded (a selector), place those VMs with power-aware
/// best-fit decreasing (the host whose power grows least, never one that the placement would
/// overload), then repeatedly take the least-utilised host and move all its VMs elsewhere if every
/// one of them fits. Works on a private <see cref="PlanningState"/>; the snapshot is never written.
/// </summary>
/// <param name="detector">Overload detection (THR, IQR, MAD, LR, LRR).</param>
/// <param name="selector">VM selection (MMT, MC, MU, RS).</param>
public sealed class PowerAwareConsolidationPlanner(IOverloadDetector detector, IVmSelector selector) : IConsolidationPlanner, IInitialPlacementPolicy
{
    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public MigrationPlan Plan(ConsolidationSnapshot snapshot)
    {
        var s = new PlanningState(snapshot);
        var hostCount = s.HostCount;
        var overloaded = new List<int>();
        var isOver = new bool[hostCount];
        for (var h = 0; h < hostCount; h++)
        {
            if (detector.IsOverloaded(s, h, -1))
            {
                overloaded.Add(h);
                isOver[h] = true;
            }
        }

        var toMigrate = new List<int>();
        foreach (var h in overloaded)
        {
            while (true)
            {
                var vm = selector.Select(s, h);
                if (vm < 0)
                {
                    break;
                }
                toMigrate.Add(vm);
                s.Destroy(h, vm);
                if (!detector.IsOverloaded(s, h, -1))
                {
                    break;
                }
            }
        }

        var moves = new List<MigrationMove>();
        var excluded = (bool[])isOver.Clone();
        foreach (var vm in SortByDemandDescending(s, toMigrate))
        {
            var target = FindHost(s, detector, vm, excluded);
            if (target >= 0)
            {
                s.Create(target, vm);
                moves.Add(new MigrationMove(vm, snapshot.Vms[vm].Host, target));
            }
        }

        // Underload evacuation. As in CloudSim, destinations chosen above are not excluded here.
        var exclUnder = new bool[hostCount];
        var exclPlace = new bool[hostCount];
        var exclUnderCount = 0;
        for (var h = 0; h < hostCount; h++)
        {
            if (isOver[h] || s.SnapshotUtilization(h) == 0)
            {
                exclUnder[h] = true;
                exclPlace[h] = true;
                exclUnderCount++;
            }
        }
        var placed = new List<MigrationMove>();
        while (exclUnderCount != hostCount)
        {
            var under = FindUnderUtilized(s, exclUnder);
            if (under < 0)
            {
                break;
            }
            exclUnder[under] = true;
            exclUnderCount++;
            exclPlace[under] = true;
            var vms = new List<int>();
            for (var i = 0; i < s.VmCountOn(under); i++)
            {
                var vm = s.VmOn(under, i);
                if (!s.IsInMigration(vm))
                {
                    vms.Add(vm);
                }
            }
            if (vms.Count == 0)
            {
                continue;
            }
            placed.Clear();
            foreach (var vm in SortByDemandDescending(s, vms))
            {
                var target = FindHost(s, detector, vm, exclPlace);
                if (target < 0)
                {
                    foreach (var p in placed)
                    {
                        s.Destroy(p.To, p.Vm);
                    }
                    placed.Clear();
                    break;
                }
                s.Create(target, vm);
                placed.Add(new MigrationMove(vm, snapshot.Vms[vm].Host, target));
            }
            foreach (var p in placed)
            {
                if (!exclUnder[p.To])
                {
                    exclUnder[p.To] = true;
                    exclUnderCount++;
                }
            }
            moves.AddRange(placed);
        }
        return BuildPlan(snapshot, s, moves);
    }

    /// <summary>
    /// Initial placement of new VMs in the given order with the same power-aware best fit (each VM
    /// asks for its full MIPS, memory and bandwidth, as CloudSim's first allocation does).
    /// </summary>
    /// <returns>The chosen host per VM index (−1 where none fits).</returns>
    public int[] PlaceInitial(ConsolidationSnapshot snapshot, IReadOnlyList<int> vmsInOrder, bool fullDemand)
        => PlaceInitial(snapshot, vmsInOrder, detector, fullDemand);

    /// <summary>Initial power-aware best-fit placement with a given overload check.</summary>
    /// <param name="snapshot">The cluster before placement.</param>
    /// <param name="vmsInOrder">VMs to place, in order.</param>
    /// <param name="detector">Overload check applied to non-empty hosts.</param>
    /// <param name="fullDemand">True: VMs ask for their whole MIPS (CloudSim); false: for their snapshot demand.</param>
    public static int[] PlaceInitial(ConsolidationSnapshot snapshot, IReadOnlyList<int> vmsInOrder, IOverloadDetector detector, bool fullDemand = true)
    {
        var s = new PlanningState(snapshot, fullDemand ? vmsInOrder.ToHashSet() : null);
        var result = new int[snapshot.Vms.Count];
        Array.Fill(result, -1);
        var excluded = new bool[s.HostCount];
        foreach (var vm in vmsInOrder)
        {
            var h = FindHost(s, detector, vm, excluded);
            if (h >= 0 && (fullDemand ? s.CreateInstantiated(h, vm) : s.Create(h, vm)))
            {
                result[vm] = h;
            }
        }
        return result;
    }

    /// <summary>
    /// Power-aware best fit (CloudSim's <c>findHostForVm</c>): among non-excluded hosts where the VM
    /// fits and which the VM would not overload, the one whose power grows least; ties go to the
    /// lowest index. Identical idle hosts are evaluated once per spec (same answer, much faster).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int FindHost(PlanningState s, IOverloadDetector detector, int vm, bool[] excluded)
    {
        var minPower = double.MaxValue;
        var best = -1;
        Span<bool> seenIdle = stackalloc bool[s.HostTypeCount];
        var req = s.RequestedMips(vm);
        for (var h = 0; h < s.HostCount; h++)
        {
            if (excluded[h])
            {
                continue;
            }
            if (s.VmCountOn(h) == 0 && s.SnapshotUtilization(h) == 0)
            {
                var t = s.HostTypeOf(h);
                if (seenIdle[t])
                {
                    continue;
                }
                seenIdle[t] = true;
            }
            if (!s.IsSuitable(h, vm))
            {
                continue;
            }
            var used = s.AllocatedMips(h);
            if (used != 0 && detector.IsOverloaded(s, h, vm))
            {
                continue;
            }
            var spec = s.HostSpecOf(h);
            var after = spec.Power.PowerAt((used + req) / spec.TotalMips);
            var diff = after - s.SnapshotPower(h);
            if (diff < minPower)
            {
                minPower = diff;
                best = h;
            }
        }
        return best;
    }

    internal static List<int> SortByDemandDescending(PlanningState s, List<int> vms)
        => vms.OrderByDescending(s.RequestedMips).ToList();

    internal static MigrationPlan BuildPlan(ConsolidationSnapshot snapshot, PlanningState s, List<MigrationMove> moves)
    {
        var finalHost = new Dictionary<int, int>();
        foreach (var m in moves)
        {
            finalHost[m.Vm] = m.To;
        }
        var count = new int[s.HostCount];
        for (var v = 0; v < snapshot.Vms.Count; v++)
        {
            var h = finalHost.TryGetValue(v, out var to) ? to : snapshot.Vms[v].Host;
            if (h >= 0)
            {
                count[h]++;
            }
        }
        var off = new List<int>();
        var on = new List<int>();
        for (var h = 0; h < s.HostCount; h++)
        {
            if (count[h] == 0 && snapshot.HostVms[h].Count > 0)
            {
                off.Add(h);
            }
            if (count[h] > 0 && !snapshot.Hosts[h].IsOn)
            {
                on.Add(h);
            }
        }
        return new MigrationPlan(moves, off, on, s.DroppedReservations.ToArray());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FindUnderUtilized(PlanningState s, bool[] excluded)
    {
        double min = 1;
        var best = -1;
        for (var h = 0; h < s.HostCount; h++)
        {
            if (excluded[h])
            {
                continue;
            }
            var u = s.SnapshotUtilization(h);
            if (u > 0 && u < min && !AllMigratingOutOrAnyIn(s, h))
            {
                min = u;
                best = h;
            }
        }
        return best;
    }

    private static bool AllMigratingOutOrAnyIn(PlanningState s, int h)
    {
        for (var i = 0; i < s.VmCountOn(h); i++)
        {
            if (!s.IsInMigration(s.VmOn(h, i)))
            {
                return false;
            }
            if (s.IsMigratingIn(h, i))
            {
                return true;
            }
        }
        return true;
    }
}
