using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>Migration role of a VM on one host, for CPU share allocation.</summary>
public enum MigrationRole : byte
{
    /// <summary>Not migrating.</summary>
    None,

    /// <summary>Source side of a live migration: the VM runs here at 90 % of its demand.</summary>
    Out,

    /// <summary>Destination side: the host sees 10 % of the VM's demand while memory is copied.</summary>
    In,
}

/// <summary>
/// Time-shared CPU allocation with over-subscription, as CloudSim 3.0.3's
/// <c>VmSchedulerTimeSharedOverSubscription</c>: each VM gets its request (capped at one core)
/// while the host has room; once the sum exceeds the host's MIPS every share is scaled down
/// proportionally and floored. Migration roles apply the 90 % / 10 % factors. Pure function.
/// </summary>
public static class CloudSimCpuScheduler
{
    /// <summary>Allocates CPU shares in list order.</summary>
    /// <param name="totalMips">Host MIPS.</param>
    /// <param name="peMips">MIPS of one core (a single-vCPU VM never gets more).</param>
    /// <param name="requested">Requested MIPS per VM.</param>
    /// <param name="roles">Migration role per VM.</param>
    /// <param name="allocated">Receives the MIPS allocated to each VM.</param>
    /// <returns>MIPS still available (0 when over-subscribed).</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double Allocate(double totalMips, double peMips, ReadOnlySpan<double> requested, ReadOnlySpan<MigrationRole> roles, Span<double> allocated)
    {
        var available = totalMips;
        var oversubscribed = false;
        for (var i = 0; i < requested.Length; i++)
        {
            var req = Math.Min(requested[i], peMips);
            var eff = roles[i] == MigrationRole.In ? req * 0.1 : req;
            if (!oversubscribed && available >= eff)
            {
                allocated[i] = roles[i] switch
                {
                    MigrationRole.Out => req * 0.9,
                    MigrationRole.In => req * 0.1,
                    _ => req,
                };
                available -= eff;
            }
            else if (eff > 0 || oversubscribed)
            {
                oversubscribed = true;
            }
        }
        if (!oversubscribed)
        {
            return available;
        }
        double total = 0;
        for (var i = 0; i < requested.Length; i++)
        {
            var req = Math.Min(requested[i], peMips);
            total += roles[i] == MigrationRole.In ? req * 0.1 : req;
        }
        var scale = totalMips / total;
        for (var i = 0; i < requested.Length; i++)
        {
            var req = Math.Min(requested[i], peMips);
            allocated[i] = roles[i] switch
            {
                MigrationRole.Out => Math.Floor(req * scale * 0.9),
                MigrationRole.In => Math.Floor(req * 0.1 * scale),
                _ => Math.Floor(req * scale),
            };
        }
        return 0;
    }
}
