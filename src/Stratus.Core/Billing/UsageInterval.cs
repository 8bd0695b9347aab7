using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Billing;

/// <summary>What a server is billed for during an interval: everything while it runs, its disk only while it is stopped.</summary>
public enum UsageState { Running, Stopped }

/// <summary>
/// One stretch of a server's billable life with constant state, flavor and resources: opened and closed by the
/// lifecycle write that causes it, in the same store transaction (see <see cref="Metering"/>).
/// </summary>
/// <param name="Id">Store sequence number (0 before it is stored).</param>
/// <param name="Resources">What the server holds in the resource ledger (its allocation) during the interval.</param>
/// <param name="Start">When the interval opened (the time of the state change, UTC).</param>
/// <param name="End">When it closed; null while it is open.</param>
public sealed record UsageInterval(
    long Id,
    InstanceId InstanceId,
    string InstanceName,
    Guid ProjectId,
    FlavorId FlavorId,
    string FlavorName,
    ResourceVector Resources,
    UsageState State,
    DateTimeOffset Start,
    DateTimeOffset? End)
{
    /// <summary>True when this interval bills the same thing as <paramref name="other"/> (everything but the times and ids).</summary>
    public bool SameMeter(UsageInterval other) =>
        InstanceId == other.InstanceId && ProjectId == other.ProjectId && FlavorId == other.FlavorId && Resources == other.Resources && State == other.State;
}

/// <summary>
/// The metering rule, one place for the store's lifecycle writes and for the reconciliation against the ledger:
/// a server has exactly one open interval while it holds an allocation and is billable, none otherwise.
/// <list type="bullet">
/// <item><c>active</c> and <c>paused</c> are <see cref="UsageState.Running"/> (a paused VM keeps its memory and vCPUs);</item>
/// <item><c>stopped</c> is <see cref="UsageState.Stopped"/> (disk only);</item>
/// <item><c>building</c>, <c>error</c> and <c>deleted</c> are not billed, nor is a server from the moment its delete is
/// accepted (task <c>deleting</c>): billing ends when the user deletes, not when the host has let the VM go.</item>
/// </list>
/// Tasks other than deleting do not matter: a server being stopped runs (and is billed as running) until it is off.
/// </summary>
public static class Metering
{
    /// <summary>The built-in admin project (Stratus.Core.Identity.Project.AdminId once projects exist).</summary>
    public static readonly Guid AdminProjectId = Stratus.Core.Identity.Project.AdminId;

    /// <summary>The project a server's usage is billed to.</summary>
    public static Guid ProjectOf(Instance instance) => instance.ProjectId ?? AdminProjectId;

    /// <summary>What <paramref name="instance"/> is billed for now, or null when nothing; <paramref name="holdsAllocation"/>: it has a row in the ledger.</summary>
    public static UsageState? Expected(Instance instance, bool holdsAllocation)
    {
        if (!holdsAllocation || instance.Task == InstanceTask.Deleting)
        {
            return null;
        }
        return instance.VmState switch
        {
            VmState.Active or VmState.Paused => UsageState.Running,
            VmState.Stopped => UsageState.Stopped,
            _ => null,
        };
    }

    /// <summary>The open interval <paramref name="instance"/> should have, given its allocation (null: none).</summary>
    public static UsageInterval? ExpectedInterval(Instance instance, ResourceVector? allocation, string flavorName, DateTimeOffset at) =>
        allocation is { } a && Expected(instance, true) is { } state
            ? new UsageInterval(0, instance.Id, instance.Name, ProjectOf(instance), instance.FlavorId, flavorName, a, state, at, null)
            : null;

    public static string Name(UsageState s) => s == UsageState.Running ? "running" : "stopped";
}
