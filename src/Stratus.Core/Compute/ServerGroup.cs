namespace Stratus.Core.Compute;

/// <summary>
/// A server group: a placement rule among its members. Policies as in OpenStack Nova:
/// <c>affinity</c>, <c>anti-affinity</c> (at most <see cref="MaxPerHost"/> members per host),
/// <c>soft-affinity</c>, <c>soft-anti-affinity</c>.
/// </summary>
/// <param name="Generation">Bumped whenever a member is placed; a claim compare-and-swaps on it so two placers cannot both break the rule.</param>
public sealed record ServerGroup(Guid Id, string Name, string Policy, int MaxPerHost, long Generation, DateTimeOffset CreatedAt, Guid? ProjectId = null)
{
    public static readonly IReadOnlyList<string> Policies = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"];
}
