using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Protocol;

/// <summary>The protocol version agents and controllers speak; a mismatch in the major part is refused.</summary>
public static class ProtocolVersion
{
    public const int Major = 1;
    public const int Minor = 0;
}

/// <summary>What a VM should be doing, as the controller wants it.</summary>
public enum DesiredPower { Running, Stopped, Paused, Absent }

/// <summary>A port forward in the protocol (host port 0 = choose).</summary>
public sealed record ForwardSpec(int HostPort, int GuestPort);

/// <summary>The controller's desired state for one VM on a host.</summary>
/// <param name="RebootSeq">Bumped for each reboot request; the agent reboots once per new value (hard when <paramref name="RebootHard"/>).</param>
public sealed record DesiredVm(
    InstanceId Id,
    string Name,
    int Vcpus,
    long MemoryMib,
    long DiskGib,
    string? ImageRef,
    string? ImageFormat,
    string? UserData,
    IReadOnlyList<string> PublicKeys,
    IReadOnlyList<ForwardSpec> Forwards,
    DesiredPower Power,
    long RebootSeq,
    bool RebootHard);

/// <summary>The full desired state of one host: level-triggered, the agent converges to it.</summary>
public sealed record DesiredHostState(HostId HostId, long Epoch, IReadOnlyList<DesiredVm> Vms);

/// <summary>What an agent reports of one VM.</summary>
/// <param name="RebootSeq">The latest reboot sequence the agent has carried out.</param>
/// <param name="Error">Set when the agent could not reach the desired state.</param>
public sealed record ActualVm(
    InstanceId Id,
    PowerState Power,
    int? Pid,
    IReadOnlyList<ForwardSpec> Forwards,
    long RebootSeq,
    string? Error,
    bool Exists);

/// <summary>An agent's registration: who it is and what its host has.</summary>
public sealed record HostRegistration(
    string Name,
    int Cores,
    long MemoryMib,
    long DiskGib,
    string Accelerator,
    string Driver,
    string CpuModel,
    int CgroupVersion,
    int AgentPid,
    int ProtocolMajor);

/// <summary>Agent → controller: a report of actual state for a host (full, level-triggered).</summary>
public sealed record HostReport(HostId HostId, long Epoch, IReadOnlyList<ActualVm> Vms, bool Complete);

/// <summary>
/// The controller side of the agent stream: what an agent calls. The all-in-one controller's
/// embedded agent calls it in-process; remote agents reach it over gRPC.
/// </summary>
public interface IControllerEndpoint
{
    /// <summary>Registers (or re-registers) a host by name; returns its id and current epoch.</summary>
    Task<(HostId HostId, long Epoch)> RegisterAsync(HostRegistration registration, CancellationToken cancellationToken);

    /// <summary>A heartbeat with the VMs' actual state.</summary>
    Task ReportAsync(HostReport report, CancellationToken cancellationToken);
}

/// <summary>The agent side of the stream: what the controller calls.</summary>
public interface IAgentSession
{
    HostId HostId { get; }

    /// <summary>Pushes the host's full desired state; the agent converges asynchronously and reports back.</summary>
    Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken);

    /// <summary>Reads the tail of a VM's console.</summary>
    Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken);
}
