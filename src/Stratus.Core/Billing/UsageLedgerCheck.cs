using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Billing;

/// <summary>How an open interval disagrees with the resource ledger.</summary>
public enum UsageDiscrepancyKind
{
    /// <summary>A billable server holds an allocation but has no open interval: its usage is not being counted.</summary>
    Missing,
    /// <summary>An open interval without a billable allocation behind it: usage is counted that does not exist.</summary>
    Orphan,
    /// <summary>The open interval bills other resources, state, flavor or project than the ledger and the server say.</summary>
    Mismatch,
    /// <summary>More than one open interval for one server: its usage is counted twice.</summary>
    Duplicate,
}

/// <summary>One disagreement between the meter and the ledger.</summary>
public sealed record UsageDiscrepancy(InstanceId InstanceId, string InstanceName, UsageDiscrepancyKind Kind, string Detail)
{
    public static string Name(UsageDiscrepancyKind k) => k switch
    {
        UsageDiscrepancyKind.Missing => "missing",
        UsageDiscrepancyKind.Orphan => "orphan",
        UsageDiscrepancyKind.Mismatch => "mismatch",
        _ => "duplicate",
    };
}

/// <summary>A server's side of the check: its row, its allocation in the ledger (null: none), and its flavor's name.</summary>
public sealed record LedgerEntry(Instance Instance, ResourceVector? Allocation, string FlavorName);

/// <summary>
/// Compares the open usage intervals with the resource ledger: every allocation of a billable server has exactly one
/// open interval with the allocation's resources and the server's state, flavor and project, and every open interval
/// has such an allocation behind it (<see cref="Metering"/> says what is billable). Pure.
/// </summary>
public static class UsageLedgerCheck
{
    public static IReadOnlyList<UsageDiscrepancy> Compare(IReadOnlyList<UsageInterval> open, IReadOnlyList<LedgerEntry> ledger, DateTimeOffset now)
    {
        var found = new List<UsageDiscrepancy>();
        var byInstance = open.GroupBy(i => i.InstanceId).ToDictionary(g => g.Key, g => g.ToList());
        var seen = new HashSet<InstanceId>();
        foreach (var e in ledger)
        {
            seen.Add(e.Instance.Id);
            var expected = Metering.ExpectedInterval(e.Instance, e.Allocation, e.FlavorName, now);
            var have = byInstance.GetValueOrDefault(e.Instance.Id) ?? [];
            if (have.Count > 1)
            {
                found.Add(new(e.Instance.Id, e.Instance.Name, UsageDiscrepancyKind.Duplicate, $"{have.Count} open intervals (since {string.Join(", ", have.Select(h => h.Start.ToString("u")))})"));
                continue;
            }
            var one = have.SingleOrDefault();
            if (expected is null && one is not null)
            {
                found.Add(new(e.Instance.Id, e.Instance.Name, UsageDiscrepancyKind.Orphan,
                    $"open {Metering.Name(one.State)} interval since {one.Start:u}, but the server is {Lifecycle.Names.Of(e.Instance.VmState)}" +
                    (e.Allocation is null ? " and holds no allocation" : e.Instance.Task == InstanceTask.Deleting ? " and being deleted" : "")));
            }
            else if (expected is not null && one is null)
            {
                found.Add(new(e.Instance.Id, e.Instance.Name, UsageDiscrepancyKind.Missing,
                    $"the server is {Lifecycle.Names.Of(e.Instance.VmState)} and holds {expected.Resources} but no interval is open"));
            }
            else if (expected is not null && one is not null && !one.SameMeter(expected))
            {
                found.Add(new(e.Instance.Id, e.Instance.Name, UsageDiscrepancyKind.Mismatch,
                    $"the open interval bills {Metering.Name(one.State)} {one.Resources} ({one.FlavorName}), the ledger says {Metering.Name(expected.State)} {expected.Resources} ({expected.FlavorName})"));
            }
        }
        foreach (var (id, have) in byInstance.Where(kv => !seen.Contains(kv.Key)))
        {
            found.Add(new(id, have[0].InstanceName, have.Count > 1 ? UsageDiscrepancyKind.Duplicate : UsageDiscrepancyKind.Orphan,
                $"open interval since {have[0].Start:u} for a server the store does not have"));
        }
        return found;
    }
}
