using Microsoft.Data.Sqlite;
using Stratus.Core.Audit;

namespace Stratus.Storage.Sqlite;

/// <summary>The hash-chained audit log.</summary>
public sealed partial class SqliteStateStore
{
    public Task<AuditEntry> AppendAuditAsync(DateTimeOffset at, string actor, string? project, string method, string route, string? target, int status, string source,
        CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        long seq = 1;
        var prev = AuditEntry.Genesis;
        await using (var q = Cmd(c, tx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
        await using (var r = await q.ExecuteReaderAsync(cancellationToken))
        {
            if (await r.ReadAsync(cancellationToken))
            {
                seq = r.GetInt64(0) + 1;
                prev = r.GetString(1);
            }
        }
        var hash = AuditEntry.ComputeHash(prev, seq, at, actor, project, method, route, target, status, source);
        await using var ins = Cmd(c, tx, "INSERT INTO audit_log(seq,at,actor,project,method,route,target,status,source,prev_hash,hash) VALUES ($s,$at,$a,$p,$m,$r,$t,$st,$src,$ph,$h)");
        ins.Parameters.AddWithValue("$s", seq);
        ins.Parameters.AddWithValue("$at", at.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        ins.Parameters.AddWithValue("$a", actor);
        ins.Parameters.AddWithValue("$p", (object?)project ?? DBNull.Value);
        ins.Parameters.AddWithValue("$m", method);
        ins.Parameters.AddWithValue("$r", route);
        ins.Parameters.AddWithValue("$t", (object?)target ?? DBNull.Value);
        ins.Parameters.AddWithValue("$st", status);
        ins.Parameters.AddWithValue("$src", source);
        ins.Parameters.AddWithValue("$ph", prev);
        ins.Parameters.AddWithValue("$h", hash);
        await ins.ExecuteNonQueryAsync(cancellationToken);
        return new AuditEntry(seq, at, actor, project, method, route, target, status, source, prev, hash);
    }, cancellationToken);

    public Task<IReadOnlyList<AuditEntry>> ListAuditAsync(long after, int limit, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<AuditEntry>>(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT seq,at,actor,project,method,route,target,status,source,prev_hash,hash FROM audit_log WHERE seq > $a ORDER BY seq LIMIT $l";
        cmd.Parameters.AddWithValue("$a", after);
        cmd.Parameters.AddWithValue("$l", limit);
        var list = new List<AuditEntry>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await r.ReadAsync(cancellationToken))
        {
            list.Add(new AuditEntry(r.GetInt64(0), Date(r.GetString(1)), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetString(4), r.GetString(5),
                r.IsDBNull(6) ? null : r.GetString(6), (int)r.GetInt64(7), r.GetString(8), r.GetString(9), r.GetString(10)));
        }
        return list;
    }, cancellationToken);
}
