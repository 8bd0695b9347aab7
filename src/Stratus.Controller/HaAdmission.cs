using System.Globalization;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Scheduler.Admission;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>An admission decision: the generation it was made on (pass it to the write), the reserve with the change applied, and the verdict.</summary>
public sealed record AdmissionDecision(long Generation, FailoverReport Report, bool Admitted);

/// <summary>
/// HA admission control (<see cref="HaOptions.Tolerate"/>): keeps enough failover capacity that the HA servers of any
/// <c>tolerate</c> failed hosts can be restarted elsewhere. Checked when a server is created (HA or not: servers that are
/// not HA may not eat into the reserve either) and when HA is switched on; not when a server starts, because a stopped
/// server keeps its allocation and is counted already. The rule (<see cref="FailoverReserve"/>) does not depend on where
/// servers are placed, so a decision made at admission holds whatever the scheduler does later.
/// <para>Atomicity: a decision reads the store's admission generation first, then the hosts and servers, and the write
/// compare-and-swaps that generation; every checked write bumps it, so two decisions made on the same state cannot both
/// commit (a lost race decides again on fresh state). Writes that only give room back (deletes, HA off) need no check.
/// Checked writes also queue on one lock in this process, so concurrent creates do not spin on lost races.</para>
/// </summary>
public sealed class HaAdmission(IStateStore store, HaOptions options)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>True when <see cref="HaOptions.Tolerate"/> is above 0.</summary>
    public bool Enabled => options.Tolerate > 0;

    public int Tolerate => options.Tolerate;

    /// <summary>The reserve as it is now, for the configured tolerance or, as a what-if, for <paramref name="tolerate"/>.</summary>
    public async Task<FailoverReport> ReportAsync(int? tolerate, CancellationToken ct) => (await DecideAsync([], null, tolerate ?? options.Tolerate, ct)).Report;

    /// <summary>
    /// Decides with <paramref name="added"/> servers created and HA switched on for <paramref name="haOn"/>. Admitted when the
    /// reserve holds afterwards, or when the change leaves the reserve's inputs as they were (HA switched on for a server no
    /// larger than the slot).
    /// </summary>
    public Task<AdmissionDecision> DecideAsync(IReadOnlyList<FailoverServer> added, InstanceId? haOn, CancellationToken ct) =>
        DecideAsync(added, haOn, options.Tolerate, ct);

    private async Task<AdmissionDecision> DecideAsync(IReadOnlyList<FailoverServer> added, InstanceId? haOn, int tolerate, CancellationToken ct)
    {
        var generation = await store.GetAdmissionGenerationAsync(ct); // first: anything committed after this moves it
        var hosts = (await store.ListHostsAsync(ct)).Where(h => h.State == HostState.Up).Select(h => new FailoverHost(h.Name, h.Capacity)).ToList();
        var reserved = await store.ListReservedServersAsync(ct);
        var after = reserved.Select(r => new FailoverServer(r.Resources, r.Ha || r.Id == haOn)).Concat(added).ToList();
        var report = FailoverReserve.Evaluate(tolerate, hosts, after);
        // HA flags matter only through the largest HA server: when it stays the same, nothing the rule reads changed.
        var unchanged = added.Count == 0
            && report.LargestHa == FailoverReserve.Evaluate(tolerate, hosts, [.. reserved.Select(r => new FailoverServer(r.Resources, r.Ha))]).LargestHa;
        return new(generation, report, report.Ok || unchanged);
    }

    /// <summary>Serialises checked writes in this process (the generation compare-and-swap is what makes them correct).</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        return new Release(_gate);
    }

    /// <summary>The 409 a refused request gets: what was refused and which failure would leave which demand without room.</summary>
    public Problem Refusal(string what, FailoverReport report) => new("failover_reserve", 409, "Refused by HA admission control",
        string.Create(CultureInfo.InvariantCulture,
            $"{what} is refused by HA admission control (--ha-tolerate {options.Tolerate}): with it, the cloud {report.Summary}. Free room (delete servers), add hosts, or run stratusd with a lower --ha-tolerate."));

    private sealed class Release(SemaphoreSlim gate) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
