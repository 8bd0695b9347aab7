using Stratus.Scheduler.Consolidation;

namespace Stratus.Simulator.Tests;

/// <summary>Builds small hand-made snapshots for planner and detector tests.</summary>
internal static class TestCluster
{
    public static readonly HostSpec G4 = new("HP ProLiant ML110 G4", 2, 1860, 4096, 1_000_000, SpecPowerModel.HpProLiantMl110G4);
    public static readonly HostSpec G5 = new("HP ProLiant ML110 G5", 2, 2660, 4096, 1_000_000, SpecPowerModel.HpProLiantMl110G5);

    /// <summary>A one-core 1,000-MIPS host so a 1,000-MIPS VM's history equals the host's.</summary>
    public static readonly HostSpec Unit = new("unit", 1, 1000, 65536, 1_000_000, new LinearPowerModel(100, 200));

    public sealed class Builder
    {
        private readonly List<HostLoadSnapshot> _hosts = [];
        private readonly List<List<int>> _hostVms = [];
        private readonly List<VmLoadSnapshot> _vms = [];

        public int Host(HostSpec spec, double utilizationMips = 0)
        {
            _hosts.Add(new HostLoadSnapshot(spec, utilizationMips, true));
            _hostVms.Add([]);
            return _hosts.Count - 1;
        }

        /// <summary>Adds a VM; history is most recent first (fractions of the VM's MIPS).</summary>
        public int Vm(int host, double mips, int ramMb, double requestedMips, params double[] history)
        {
            _vms.Add(new VmLoadSnapshot(new VmSpec($"vm{_vms.Count}", mips, ramMb, 100_000), host, requestedMips, history, -1, ramMb, 100_000, double.NegativeInfinity));
            _hostVms[host].Add(_vms.Count - 1);
            return _vms.Count - 1;
        }

        public ConsolidationSnapshot Build(ReservationMode mode = ReservationMode.CloudSimCompatible)
        {
            // Measured utilisation = sum of the VMs' demand, as after a scheduling update.
            var hosts = _hosts.Select((h, i) => h with { UtilizationMips = _hostVms[i].Sum(v => _vms[v].RequestedMips) }).ToArray();
            return new ConsolidationSnapshot(300.1, 300, hosts, _hostVms.Select(l => (IReadOnlyList<int>)l.ToArray()).ToArray(), _vms.ToArray(), mode);
        }
    }
}
