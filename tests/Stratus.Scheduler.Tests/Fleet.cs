using System.Collections.Immutable;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Scheduler.Framework;

namespace Stratus.Scheduler.Tests;

/// <summary>Builds small fleets and requests for tests.</summary>
internal static class Fleet
{
    public static HostId Id(int i) => new(new Guid(i + 1, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0));

    public static InstanceId Vm(int i) => new(new Guid(i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9));

    /// <summary>A host of <paramref name="vcpus"/> vCPUs and <paramref name="memGib"/> GiB with <paramref name="usedVcpus"/> / <paramref name="usedGib"/> used.</summary>
    public static HostSnapshot Host(int i, int vcpus = 16, int memGib = 64, int usedVcpus = 0, int usedGib = 0, HostState state = HostState.Up, string zone = "az1") =>
        new(Id(i), $"host-{i}", state, ResourceVector.Of(vcpus, memGib * 1024L, 1000), ResourceVector.Of(usedVcpus, usedGib * 1024L, 0), 10 + i, zone)
        {
            InstanceCount = usedVcpus > 0 || usedGib > 0 ? 1 : 0,
        };

    public static ClusterSnapshot Of(params HostSnapshot[] hosts) => new([.. hosts]);

    public static PlacementRequest Ask(int vcpus, int memGib, int vm = 1) => new(Vm(vm), ResourceVector.Of(vcpus, memGib * 1024L, 0));

    public static ServerGroupSnapshot Group(string name, ServerGroupPolicy policy, params HostId[] members)
    {
        var d = ImmutableDictionary<HostId, int>.Empty;
        foreach (var m in members)
        {
            d = d.SetItem(m, d.GetValueOrDefault(m) + 1);
        }
        return new ServerGroupSnapshot(name, policy, 1, d);
    }

    public static string DataDir(string name) => Path.Combine(AppContext.BaseDirectory, "Data", name);
}
