using System.Collections.Concurrent;
using Stratus.Core.Identity;
using Stratus.Storage;

namespace Stratus.Controller.Identity;

/// <summary>
/// Snapshot and backup quotas: the count is checked and the object created under one lock per project,
/// so concurrent requests of a project cannot overshoot (servers are checked inside the store's create
/// transaction instead). One controller owns the store, so a process-wide lock is enough.
/// </summary>
public sealed class QuotaGate(IStateStore store)
{
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> _locks = new();

    public async Task<Outcome<T>> WithinAsync<T>(Guid project, QuotaKind kind, Func<Task<Outcome<T>>> create, CancellationToken ct)
    {
        var gate = _locks.GetOrAdd(project, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            var p = await store.GetProjectAsync(project, ct);
            var q = p?.Quotas ?? Quotas.Default;
            var u = await store.GetProjectUsageAsync(project, ct);
            var (used, limit, what) = kind == QuotaKind.Snapshots ? (u.Snapshots, q.Snapshots, "snapshots") : (u.Backups, q.Backups, "backups");
            if (used >= limit)
            {
                return new Problem("quota_exceeded", 409, "Quota exceeded",
                    $"project '{p?.Name ?? project.ToString("D")}' has {used} {what} of its quota of {limit}; delete some first");
            }
            return await create();
        }
        finally
        {
            gate.Release();
        }
    }
}

public enum QuotaKind { Snapshots, Backups }
