using Stratus.Core.Audit;
using Stratus.Storage;

namespace Stratus.Controller.Identity;

/// <summary>What verifying the audit chain found.</summary>
public sealed record AuditVerification(bool Ok, long Entries, string HeadHash, long? FirstBadSeq, string? Problem);

/// <summary>Reads and verifies the hash-chained audit log.</summary>
public sealed class AuditLog(IStateStore store)
{
    /// <summary>
    /// Walks the whole chain: sequence numbers contiguous from 1, each entry's previous hash equal to the
    /// hash before it, each hash equal to the recomputed one. The first break is reported.
    /// </summary>
    public async Task<AuditVerification> VerifyAsync(CancellationToken ct)
    {
        var prev = AuditEntry.Genesis;
        long expected = 1, count = 0;
        while (true)
        {
            var page = await store.ListAuditAsync(expected - 1, 2000, ct);
            if (page.Count == 0)
            {
                return new AuditVerification(true, count, prev, null, null);
            }
            foreach (var e in page)
            {
                string? problem = e.Seq != expected ? $"entry {expected} is missing (found {e.Seq} next)"
                    : e.PrevHash != prev ? $"entry {e.Seq} does not chain to the entry before it"
                    : e.Recompute() != e.Hash ? $"entry {e.Seq} was changed after it was written"
                    : null;
                if (problem is not null)
                {
                    return new AuditVerification(false, count, prev, expected, problem);
                }
                prev = e.Hash;
                expected++;
                count++;
            }
        }
    }
}
