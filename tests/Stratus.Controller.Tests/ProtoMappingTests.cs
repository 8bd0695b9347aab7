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
}
