namespace Stratus.Scheduler.Consolidation;

/// <summary>A physical machine type: CPU, memory, network and power curve. Immutable.</summary>
/// <param name="Name">Model name, e.g. "HP ProLiant ML110 G5".</param>
/// <param name="Pes">Number of cores (processing elements).</param>
/// <param name="MipsPerPe">Capacity of one core in MIPS.</param>
/// <param name="RamMb">Memory in MB.</param>
/// <param name="BandwidthMbps">Network bandwidth in Mbit/s (CloudSim's unit: 1,000,000 = 1 Gbit/s is kbit/s; we keep CloudSim's raw number).</param>
/// <param name="Power">Power curve.</param>
public sealed record HostSpec(string Name, int Pes, double MipsPerPe, int RamMb, long BandwidthMbps, PowerModel Power)
{
    /// <summary>Total MIPS (cores × MIPS per core).</summary>
    public double TotalMips => Pes * MipsPerPe;
}

/// <summary>A VM type (flavour) as the consolidation planner sees it. Immutable.</summary>
/// <param name="Name">Type name.</param>
/// <param name="Mips">MIPS of its single vCPU (peak demand).</param>
/// <param name="RamMb">Memory in MB (also what a live migration copies).</param>
/// <param name="Bandwidth">Network reservation in CloudSim's units.</param>
public sealed record VmSpec(string Name, double Mips, int RamMb, long Bandwidth);

/// <summary>How the planner accounts memory and bandwidth reservations.</summary>
public enum ReservationMode
{
    /// <summary>
    /// CloudSim 3.0.3's behaviour: a VM's memory/bandwidth reservation drops to zero the first time
    /// its provisioners are asked whether it fits elsewhere (so RAM stops constraining placement).
    /// </summary>
    CloudSimCompatible,

    /// <summary>Every VM always reserves its full memory and bandwidth on the host that runs it.</summary>
    Reserved,
}

/// <summary>One host in a <see cref="ConsolidationSnapshot"/>.</summary>
/// <param name="Spec">Machine type.</param>
/// <param name="UtilizationMips">CPU in use at the snapshot (allocated MIPS, as measured), 0 when idle or off.</param>
/// <param name="IsOn">False when powered down.</param>
public readonly record struct HostLoadSnapshot(HostSpec Spec, double UtilizationMips, bool IsOn);

/// <summary>One VM in a <see cref="ConsolidationSnapshot"/>.</summary>
/// <param name="Spec">VM type.</param>
/// <param name="Host">Index of the host running it (the source while it migrates), −1 if none.</param>
/// <param name="RequestedMips">CPU demand at the snapshot in MIPS.</param>
/// <param name="History">Utilisation history as fractions of <see cref="VmSpec.Mips"/>, most recent first (at most 30 kept).</param>
/// <param name="MigratingTo">Destination host while a live migration runs, otherwise −1.</param>
/// <param name="HeldRamMb">Memory currently reserved for it (CloudSim mode may drop this to 0).</param>
/// <param name="HeldBandwidth">Bandwidth currently reserved for it.</param>
/// <param name="LastMigrationTime">Virtual time (s) its last migration started, or −∞.</param>
public readonly record struct VmLoadSnapshot(
    VmSpec Spec,
    int Host,
    double RequestedMips,
    ReadOnlyMemory<double> History,
    int MigratingTo,
    int HeldRamMb,
    long HeldBandwidth,
    double LastMigrationTime);

/// <summary>
/// A point-in-time view of a power-managed cluster, the only input of a consolidation planner.
/// Host VM lists keep the order in which VMs arrived on each host (CloudSim's selection policies
/// break ties by that order). The arrays and history memories are owned by the caller and must not
/// change while a planner runs; planners never write to them.
/// </summary>
/// <param name="Time">Virtual time in seconds.</param>
/// <param name="SchedulingInterval">Seconds between two planning rounds.</param>
/// <param name="Hosts">Hosts, by index.</param>
/// <param name="HostVms">For each host, the indices of the VMs on it in arrival order, migrating-in VMs included.</param>
/// <param name="Vms">VMs, by index.</param>
/// <param name="Reservations">Memory/bandwidth accounting.</param>
public sealed record ConsolidationSnapshot(
    double Time,
    double SchedulingInterval,
    IReadOnlyList<HostLoadSnapshot> Hosts,
    IReadOnlyList<IReadOnlyList<int>> HostVms,
    IReadOnlyList<VmLoadSnapshot> Vms,
    ReservationMode Reservations);

/// <summary>One live migration of a plan.</summary>
/// <param name="Vm">VM index.</param>
/// <param name="From">Source host index (the VM's host in the snapshot).</param>
/// <param name="To">Destination host index.</param>
public readonly record struct MigrationMove(int Vm, int From, int To);

/// <summary>
/// What a consolidation round wants done. Moves are applied in order; a VM may appear twice
/// (CloudSim's planner can re-place a VM it moved earlier in the same round, and compatible mode
/// keeps that). The plan never aliases the snapshot.
/// </summary>
/// <param name="Moves">Live migrations, in order.</param>
/// <param name="HostsToSwitchOff">Hosts left without VMs once the plan is applied.</param>
/// <param name="HostsToSwitchOn">Hosts that are off and receive VMs.</param>
/// <param name="ReservationsDropped">CloudSim-compatible mode only: VMs whose memory/bandwidth reservation the round dropped.</param>
public sealed record MigrationPlan(
    IReadOnlyList<MigrationMove> Moves,
    IReadOnlyList<int> HostsToSwitchOff,
    IReadOnlyList<int> HostsToSwitchOn,
    IReadOnlyList<int> ReservationsDropped)
{
    /// <summary>A plan that changes nothing.</summary>
    public static MigrationPlan Empty { get; } = new([], [], [], []);
}

/// <summary>A consolidation policy: decides migrations from a snapshot. Implementations are pure.</summary>
public interface IConsolidationPlanner
{
    /// <summary>Plans one round. Must not mutate <paramref name="snapshot"/>.</summary>
    MigrationPlan Plan(ConsolidationSnapshot snapshot);
}
