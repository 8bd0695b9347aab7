using Stratus.Core.Compute;

namespace Stratus.Core.Lifecycle;

/// <summary>The wire names (snake_case) of states and tasks, the same in the API, the store and the CLI.</summary>
public static class Names
{
    public static string Of(VmState s) => s switch
    {
        VmState.Building => "building",
        VmState.Active => "active",
        VmState.Stopped => "stopped",
        VmState.Paused => "paused",
        VmState.Error => "error",
        VmState.Deleted => "deleted",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    public static string Of(InstanceTask t) => t switch
    {
        InstanceTask.Scheduling => "scheduling",
        InstanceTask.Spawning => "spawning",
        InstanceTask.Starting => "starting",
        InstanceTask.Stopping => "stopping",
        InstanceTask.Rebooting => "rebooting",
        InstanceTask.RebootingHard => "rebooting_hard",
        InstanceTask.Pausing => "pausing",
        InstanceTask.Resuming => "resuming",
        InstanceTask.Deleting => "deleting",
        InstanceTask.Migrating => "migrating",
        InstanceTask.Resizing => "resizing",
        InstanceTask.Recovering => "recovering",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static string Of(HostState s) => s switch
    {
        HostState.Up => "up",
        HostState.Down => "down",
        HostState.Disabled => "disabled",
        HostState.Maintenance => "maintenance",
        HostState.Standby => "standby",
        HostState.Failed => "failed",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    public static string Of(PowerState s) => s switch
    {
        PowerState.NoState => "nostate",
        PowerState.Running => "running",
        PowerState.Paused => "paused",
        PowerState.Shutdown => "shutdown",
        PowerState.Crashed => "crashed",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    public static VmState? ParseVmState(string? s) => s switch
    {
        "building" => VmState.Building,
        "active" => VmState.Active,
        "stopped" => VmState.Stopped,
        "paused" => VmState.Paused,
        "error" => VmState.Error,
        "deleted" => VmState.Deleted,
        _ => null,
    };

    public static InstanceTask? ParseTask(string? s) =>
        s is null ? null : Enum.GetValues<InstanceTask>().Cast<InstanceTask?>().FirstOrDefault(t => Of(t!.Value) == s);

    public static HostState? ParseHostState(string? s) =>
        s is null ? null : Enum.GetValues<HostState>().Cast<HostState?>().FirstOrDefault(t => Of(t!.Value) == s);

    public static PowerState ParsePowerState(string? s) =>
        Enum.GetValues<PowerState>().FirstOrDefault(t => Of(t) == s);
}
