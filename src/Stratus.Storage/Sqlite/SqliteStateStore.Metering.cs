using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Storage.Sqlite;

/// <summary>Metering (usage intervals kept in step with the ledger), price sheets and budgets.</summary>
public sealed partial class SqliteStateStore
{
    private const string UsageCols = "id,instance_id,instance_name,project_id,flavor_id,flavor_name,cpu_milli,mem_mib,disk_gib,state,started_at,ended_at";

    private static UsageInterval ReadUsage(SqliteDataReader r) => new(
        r.GetInt64(0), new InstanceId(Guid.Parse(r.GetString(1))), r.GetString(2), Guid.Parse(r.GetString(3)),
        new FlavorId(Guid.Parse(r.GetString(4))), r.GetString(5), new ResourceVector(r.GetInt64(6), r.GetInt64(7), r.GetInt64(8)),
        r.GetString(9) == "running" ? UsageState.Running : UsageState.Stopped, Date(r.GetString(10)), r.IsDBNull(11) ? null : Date(r.GetString(11)));

    private static string Utc(DateTimeOffset t) => t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private static string Money(decimal d) => d.ToString(CultureInfo.InvariantCulture);

    private static decimal Money(string s) => decimal.Parse(s, NumberStyles.Number, CultureInfo.InvariantCulture);

    /// <summary>
    /// The metering hook, called at the end of every transaction that writes a server row or its allocation: brings the
    /// server's open interval in line with <see cref="Metering"/> at <c>i.UpdatedAt</c> (never before the open interval's start).
    /// Same transaction as the lifecycle write, so a crash loses or doubles nothing.
    /// </summary>
    private static async Task MeterAsync(SqliteConnection c, SqliteTransaction tx, Instance i, CancellationToken ct)
    {
        var allocation = await AllocationOfAsync(c, tx, i.Id, ct);
        var open = await OpenUsageAsync(c, tx, i.Id, ct);
        var want = Metering.Expected(i, allocation is not null) is null
            ? null
            : Metering.ExpectedInterval(i, allocation, await FlavorNameAsync(c, tx, i.FlavorId, ct), i.UpdatedAt.ToUniversalTime());
        if (want is null ? open.Count == 0 : open.Count == 1 && open[0].SameMeter(want))
        {
            return;
        }
        await SwitchUsageAsync(c, tx, open, want, i.UpdatedAt, ct);
    }

    /// <summary>Closes <paramref name="open"/> at <paramref name="at"/> and opens <paramref name="next"/> (if any) where they closed.</summary>
    private static async Task SwitchUsageAsync(SqliteConnection c, SqliteTransaction tx, IReadOnlyList<UsageInterval> open, UsageInterval? next, DateTimeOffset at, CancellationToken ct)
    {
        var start = at.ToUniversalTime();
        foreach (var o in open)
        {
            var end = at < o.Start ? o.Start : at; // a write carrying an older time never makes an interval run backwards
            if (end > start)
            {
                start = end;
            }
            await using var close = Cmd(c, tx, "UPDATE usage_intervals SET ended_at=$e WHERE id=$id");
            close.Parameters.AddWithValue("$id", o.Id);
            close.Parameters.AddWithValue("$e", Utc(end));
            await close.ExecuteNonQueryAsync(ct);
        }
        if (next is null)
        {
            return;
        }
        await using var ins = Cmd(c, tx, $"INSERT INTO usage_intervals({UsageCols[3..]}) VALUES ($i,$n,$p,$f,$fn,$c,$m,$d,$s,$at,NULL)");
        ins.Parameters.AddWithValue("$i", next.InstanceId.ToString());
        ins.Parameters.AddWithValue("$n", next.InstanceName);
        ins.Parameters.AddWithValue("$p", next.ProjectId.ToString("D"));
        ins.Parameters.AddWithValue("$f", next.FlavorId.ToString());
        ins.Parameters.AddWithValue("$fn", next.FlavorName);
        ins.Parameters.AddWithValue("$c", next.Resources.MilliVcpus);
        ins.Parameters.AddWithValue("$m", next.Resources.MemoryMib);
        ins.Parameters.AddWithValue("$d", next.Resources.DiskGib);
        ins.Parameters.AddWithValue("$s", Metering.Name(next.State));
        ins.Parameters.AddWithValue("$at", Utc(start));
        await ins.ExecuteNonQueryAsync(ct);
    }

    private static async Task<ResourceVector?> AllocationOfAsync(SqliteConnection c, SqliteTransaction tx, InstanceId id, CancellationToken ct)
    {
        await using var q = Cmd(c, tx, "SELECT cpu_milli,mem_mib,disk_gib FROM allocations WHERE instance_id=$i");
        q.Parameters.AddWithValue("$i", id.ToString());
        await using var r = await q.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new ResourceVector(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2)) : null;
    }

    private static async Task<List<UsageInterval>> OpenUsageAsync(SqliteConnection c, SqliteTransaction tx, InstanceId? id, CancellationToken ct)
    {
        await using var q = Cmd(c, tx, $"SELECT {UsageCols} FROM usage_intervals WHERE ended_at IS NULL" + (id is null ? " ORDER BY id" : " AND instance_id=$i ORDER BY id"));
        if (id is { } i)
        {
            q.Parameters.AddWithValue("$i", i.ToString());
        }
        var list = new List<UsageInterval>();
        await using var r = await q.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            list.Add(ReadUsage(r));
        }
        return list;
    }

    private static async Task<string> FlavorNameAsync(SqliteConnection c, SqliteTransaction tx, FlavorId id, CancellationToken ct)
    {
        await using var q = Cmd(c, tx, "SELECT name FROM flavors WHERE id=$id");
        q.Parameters.AddWithValue("$id", id.ToString());
        return await q.ExecuteScalarAsync(ct) as string ?? id.ToString(); // a flavor in use cannot be deleted; the id is a fallback
    }

    public Task<CasOutcome> ResizeAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        string? host = null;
        var old = ResourceVector.Zero;
        await using (var sel = Cmd(c, tx, "SELECT host_id,cpu_milli,mem_mib,disk_gib FROM allocations WHERE instance_id=$i"))
        {
            sel.Parameters.AddWithValue("$i", updated.Id.ToString());
            await using var r = await sel.ExecuteReaderAsync(cancellationToken);
            if (await r.ReadAsync(cancellationToken))
            {
                host = r.GetString(0);
                old = new ResourceVector(r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
            }
        }
        if (host is null)
        {
            await tx.RollbackAsync(cancellationToken);
            return CasOutcome.NotFound;
        }
        var delta = updated.Resources - old;
        if ((delta.MilliVcpus > 0 || delta.MemoryMib > 0 || delta.DiskGib > 0) && !await WithinQuotaDeltaAsync(c, tx, updated.Project, delta, cancellationToken))
        {
            await tx.RollbackAsync(cancellationToken);
            return CasOutcome.QuotaExceeded;
        }
        await using (var h = Cmd(c, tx, """
            UPDATE hosts SET used_cpu_milli=used_cpu_milli+$c, used_mem_mib=used_mem_mib+$m, used_disk_gib=used_disk_gib+$d, generation=generation+1
            WHERE id=$id
              AND ($c <= 0 OR used_cpu_milli+$c <= (total_cpu_milli-reserved_cpu_milli)*ratio_cpu_permille/1000)
              AND ($m <= 0 OR used_mem_mib+$m <= (total_mem_mib-reserved_mem_mib)*ratio_ram_permille/1000)
              AND ($d <= 0 OR used_disk_gib+$d <= (total_disk_gib-reserved_disk_gib)*ratio_disk_permille/1000)
            """))
        {
            h.Parameters.AddWithValue("$id", host);
            h.Parameters.AddWithValue("$c", delta.MilliVcpus);
            h.Parameters.AddWithValue("$m", delta.MemoryMib);
            h.Parameters.AddWithValue("$d", delta.DiskGib);
            if (await h.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.NoCapacity;
            }
        }
        await using (var a = Cmd(c, tx, "UPDATE allocations SET cpu_milli=$c, mem_mib=$m, disk_gib=$d WHERE instance_id=$i"))
        {
            a.Parameters.AddWithValue("$i", updated.Id.ToString());
            a.Parameters.AddWithValue("$c", updated.Resources.MilliVcpus);
            a.Parameters.AddWithValue("$m", updated.Resources.MemoryMib);
            a.Parameters.AddWithValue("$d", updated.Resources.DiskGib);
            await a.ExecuteNonQueryAsync(cancellationToken);
        }
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        await FinishInTxAsync(c, tx, updated.Id, finish, cancellationToken);
        if (action is not null)
        {
            await InsertActionAsync(c, tx, action, cancellationToken);
        }
        await MeterAsync(c, tx, updated, cancellationToken);
        return CasOutcome.Ok;
    }, cancellationToken);

    public Task<IReadOnlyList<UsageInterval>> ListUsageAsync(Guid? project, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<UsageInterval>>(async c =>
        {
            await using var q = c.CreateCommand();
            q.CommandText = $"SELECT {UsageCols} FROM usage_intervals WHERE started_at < $to AND (ended_at IS NULL OR ended_at > $from)" +
                (project is null ? "" : " AND project_id=$p") + " ORDER BY started_at, id";
            q.Parameters.AddWithValue("$from", Utc(from));
            q.Parameters.AddWithValue("$to", Utc(to));
            if (project is { } p)
            {
                q.Parameters.AddWithValue("$p", p.ToString("D"));
            }
            var list = new List<UsageInterval>();
            await using var r = await q.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken))
            {
                list.Add(ReadUsage(r));
            }
            return list;
        }, cancellationToken);

    public Task<IReadOnlyList<UsageInterval>> ListServerUsageAsync(InstanceId id, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {UsageCols} FROM usage_intervals WHERE instance_id=$k ORDER BY started_at, id", id.ToString(), ReadUsage, cancellationToken);

    public Task<IReadOnlyList<UsageDiscrepancy>> ReconcileUsageAsync(DateTimeOffset now, bool repair, CancellationToken cancellationToken) => WriteAsync<IReadOnlyList<UsageDiscrepancy>>(async (c, tx) =>
    {
        var open = await OpenUsageAsync(c, tx, null, cancellationToken);
        var allocations = new Dictionary<string, ResourceVector>(StringComparer.Ordinal);
        await using (var q = Cmd(c, tx, "SELECT instance_id,cpu_milli,mem_mib,disk_gib FROM allocations"))
        await using (var r = await q.ExecuteReaderAsync(cancellationToken))
        {
            while (await r.ReadAsync(cancellationToken))
            {
                allocations[r.GetString(0)] = new ResourceVector(r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
            }
        }
        var flavors = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var q = Cmd(c, tx, "SELECT id,name FROM flavors"))
        await using (var r = await q.ExecuteReaderAsync(cancellationToken))
        {
            while (await r.ReadAsync(cancellationToken))
            {
                flavors[r.GetString(0)] = r.GetString(1);
            }
        }
        var ledger = new List<LedgerEntry>();
        await using (var q = Cmd(c, tx, $"""
            SELECT {InstanceCols} FROM instances
            WHERE vm_state <> 'deleted' OR id IN (SELECT instance_id FROM allocations) OR id IN (SELECT instance_id FROM usage_intervals WHERE ended_at IS NULL)
            ORDER BY id
            """))
        await using (var r = await q.ExecuteReaderAsync(cancellationToken))
        {
            while (await r.ReadAsync(cancellationToken))
            {
                var i = ReadInstance(r);
                var key = i.Id.ToString();
                ledger.Add(new LedgerEntry(i, allocations.TryGetValue(key, out var a) ? a : null, flavors.GetValueOrDefault(i.FlavorId.ToString()) ?? i.FlavorId.ToString()));
            }
        }
        var found = UsageLedgerCheck.Compare(open, ledger, now);
        if (!repair || found.Count == 0)
        {
            await tx.RollbackAsync(cancellationToken); // a check writes nothing
            return found;
        }
        var byId = ledger.ToDictionary(e => e.Instance.Id);
        foreach (var id in found.Select(d => d.InstanceId).Distinct())
        {
            var next = byId.TryGetValue(id, out var e) ? Metering.ExpectedInterval(e.Instance, e.Allocation, e.FlavorName, now.ToUniversalTime()) : null;
            await SwitchUsageAsync(c, tx, [.. open.Where(o => o.InstanceId == id)], next, now, cancellationToken);
        }
        return found;
    }, cancellationToken);

    public Task<bool> AnyUsageAsync(CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        await using var q = c.CreateCommand();
        q.CommandText = "SELECT EXISTS(SELECT 1 FROM usage_intervals)";
        return (long)(await q.ExecuteScalarAsync(cancellationToken))! != 0;
    }, cancellationToken);

    // ---------- price sheets ----------

    public Task<IReadOnlyList<PriceSheet>> ListPriceSheetsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT effective_from,currency,vcpu_hour,memory_gib_hour,disk_gib_hour,flavor_hour FROM price_sheets ORDER BY effective_from", null, r => new PriceSheet(
            r.GetString(1), Money(r.GetString(2)), Money(r.GetString(3)), Money(r.GetString(4)),
            (JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(5)) ?? []).ToDictionary(kv => kv.Key, kv => Money(kv.Value), StringComparer.Ordinal),
            Date(r.GetString(0))), cancellationToken);

    public Task SavePriceSheetAsync(PriceSheet sheet, DateTimeOffset now, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, """
            INSERT INTO price_sheets(effective_from,currency,vcpu_hour,memory_gib_hour,disk_gib_hour,flavor_hour,created_at) VALUES ($e,$cur,$v,$m,$d,$f,$at)
            ON CONFLICT(effective_from) DO UPDATE SET currency=$cur, vcpu_hour=$v, memory_gib_hour=$m, disk_gib_hour=$d, flavor_hour=$f, created_at=$at
            """);
        cmd.Parameters.AddWithValue("$e", Utc(sheet.EffectiveFrom));
        cmd.Parameters.AddWithValue("$cur", sheet.Currency);
        cmd.Parameters.AddWithValue("$v", Money(sheet.VcpuHour));
        cmd.Parameters.AddWithValue("$m", Money(sheet.MemoryGibHour));
        cmd.Parameters.AddWithValue("$d", Money(sheet.DiskGibHour));
        cmd.Parameters.AddWithValue("$f", JsonSerializer.Serialize(sheet.FlavorHour.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => Money(kv.Value))));
        cmd.Parameters.AddWithValue("$at", Utc(now));
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    // ---------- budgets ----------

    private static Budget ReadBudget(SqliteDataReader r) =>
        new(Guid.Parse(r.GetString(0)), Money(r.GetString(1)), r.GetInt32(2), r.GetInt64(3) != 0, Date(r.GetString(4)));

    public Task<Budget?> GetBudgetAsync(Guid project, CancellationToken cancellationToken) =>
        QueryOneAsync("SELECT project_id,amount,warn_percent,block,updated_at FROM budgets WHERE project_id=$k", project.ToString("D"), ReadBudget, cancellationToken);

    public Task<IReadOnlyList<Budget>> ListBudgetsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT project_id,amount,warn_percent,block,updated_at FROM budgets ORDER BY project_id", null, ReadBudget, cancellationToken);

    public Task SetBudgetAsync(Budget budget, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, """
            INSERT INTO budgets(project_id,amount,warn_percent,block,version,updated_at) VALUES ($p,$a,$w,$b,1,$at)
            ON CONFLICT(project_id) DO UPDATE SET amount=$a, warn_percent=$w, block=$b, version=version+1, updated_at=$at
            """);
        cmd.Parameters.AddWithValue("$p", budget.ProjectId.ToString("D"));
        cmd.Parameters.AddWithValue("$a", Money(budget.Amount));
        cmd.Parameters.AddWithValue("$w", budget.WarnPercent);
        cmd.Parameters.AddWithValue("$b", budget.Block ? 1 : 0);
        cmd.Parameters.AddWithValue("$at", Utc(budget.UpdatedAt));
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<bool> DeleteBudgetAsync(Guid project, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "DELETE FROM budgets WHERE project_id=$p");
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);
}
