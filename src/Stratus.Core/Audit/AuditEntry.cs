using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Stratus.Core.Audit;

/// <summary>
/// One state-changing request in the audit log: who, what, on which target, with which result, from
/// where. Entries form a hash chain: each hash covers the previous entry's hash and every field, so
/// changing, removing or reordering an entry breaks every hash after it.
/// </summary>
public sealed record AuditEntry(
    long Seq, DateTimeOffset At, string Actor, string? Project, string Method, string Route, string? Target, int Status, string Source,
    string PrevHash, string Hash)
{
    /// <summary>The chain's start: the previous hash of the first entry.</summary>
    public const string Genesis = "0000000000000000000000000000000000000000000000000000000000000000";

    /// <summary>SHA-256 (hex) of the previous hash and the entry's fields, in a fixed order and encoding.</summary>
    public static string ComputeHash(string prevHash, long seq, DateTimeOffset at, string actor, string? project, string method, string route, string? target, int status, string source)
    {
        var canonical = JsonSerializer.Serialize(new object?[]
        {
            prevHash, seq, at.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture), actor, project, method, route, target, status, source,
        });
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }

    public string Recompute() => ComputeHash(PrevHash, Seq, At, Actor, Project, Method, Route, Target, Status, Source);
}
