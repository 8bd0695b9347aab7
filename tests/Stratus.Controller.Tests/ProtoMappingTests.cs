using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Controller.Tests;

/// <summary>The agent protocol's optional fields survive the protobuf round trip, and their absence stays absent.</summary>
public sealed class ProtoMappingTests
{
    [Fact]
    public void Hello_HypervisorUser_RoundTripsAndAbsentStaysNull()
    {
        var registration = new HostRegistration("h1", 2, 4096, 100, "tcg", "qemu", "cpu", 1, 1, ProtocolVersion.Major)
        {
            HypervisorUser = "root (fallback: setpriv exit code 1)",
        };

        Assert.Equal("root (fallback: setpriv exit code 1)", registration.ToProto().FromProto().HypervisorUser);
        Assert.Null((registration with { HypervisorUser = null }).ToProto().FromProto().HypervisorUser);
    }

    [Fact]
    public void IncomingMigration_PostCopyUnavailable_RoundTripsAndAbsentStaysNull()
    {
        var incoming = new IncomingMigrationInfo(InstanceId.New(), "tcp:127.0.0.1:4444", null, []) { PostCopyUnavailable = "no userfaultfd" };

        Assert.Equal("no userfaultfd", incoming.ToProto().FromProto().PostCopyUnavailable);
        Assert.Null((incoming with { PostCopyUnavailable = null }).ToProto().FromProto().PostCopyUnavailable);
    }

    [Fact]
    public void HotPlugLayout_RoundTripsOnActualAndDesiredAndAbsentStaysNull()
    {
        var layout = new HotPlugLayout(1, 3, 256, [256, 128]);
        var actual = new ActualVm(InstanceId.New(), PowerState.Running, 42, [], 0, null, true) { HotPlugged = layout };
        var desired = new DesiredVm(InstanceId.New(), "web", 3, 640, 1, "tiny", "qcow2", null, [], [], DesiredPower.Running, 0, false, "shared", false, 4, 1024)
        {
            HotPlugged = layout,
        };

        Assert.Equal(layout, actual.ToProto().FromProto().HotPlugged);
        Assert.Equal(layout, desired.ToProto().FromProto().HotPlugged);
        Assert.NotEqual(layout, new HotPlugLayout(1, 3, 256, [128, 256])); // the plug order is part of the model
        Assert.Null((actual with { HotPlugged = null }).ToProto().FromProto().HotPlugged);
        Assert.Null((desired with { HotPlugged = null }).ToProto().FromProto().HotPlugged);
    }
}
