using Microsoft.Data.Sqlite;
using Stratus.Core.Ids;

namespace Stratus.Storage.Sqlite;

/// <summary>Snapshot, backup and retention rows.</summary>
public sealed partial class SqliteStateStore
{
    public Task RecordActionAsync(Stratus.Core.Compute.InstanceAction action, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await InsertActionAsync(c, tx, action, cancellationToken);
        return 0;
    }, cancellationToken);

    public Task UpsertSnapshotAsync(SnapshotRecord s, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR REPLACE INTO snapshots(instance_id,name,with_memory,status,vm_state_bytes,created_at) VALUES ($i,$n,$m,$s,$b,$at)");
        cmd.Parameters.AddWithValue("$i", s.InstanceId.ToString());
        cmd.Parameters.AddWithValue("$n", s.Name);
        cmd.Parameters.AddWithValue("$m", s.WithMemory ? 1 : 0);
        cmd.Parameters.AddWithValue("$s", s.Status);
        cmd.Parameters.AddWithValue("$b", s.VmStateBytes);
        cmd.Parameters.AddWithValue("$at", s.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<IReadOnlyList<SnapshotRecord>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken) =>
        QueryAsync("SELECT instance_id,name,with_memory,status,vm_state_bytes,created_at FROM snapshots WHERE instance_id=$k ORDER BY created_at, name", id.ToString(),
            r => new SnapshotRecord(new InstanceId(Guid.Parse(r.GetString(0))), r.GetString(1), r.GetInt64(2) != 0, r.GetString(3), r.GetInt64(4), Date(r.GetString(5))),
            cancellationToken);

    public Task DeleteSnapshotRecordAsync(InstanceId id, string name, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "DELETE FROM snapshots WHERE instance_id=$i AND name=$n");
        cmd.Parameters.AddWithValue("$i", id.ToString());
        cmd.Parameters.AddWithValue("$n", name);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    private const string BackupCols = "id,instance_id,instance_name,flavor_id,image_id,kind,parent_id,status,directory,size_bytes,manifest_sha256,spec_json,error,created_at,finished_at,"
        + "full_reason,expired_reason,verified_at,verify_error";

    public Task UpsertBackupAsync(BackupRecord b, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, $"INSERT OR REPLACE INTO backups({BackupCols}) VALUES ($id,$i,$in,$f,$im,$k,$p,$s,$d,$sz,$ms,$sj,$e,$at,$fin,$fr,$er,$va,$ve)");
        cmd.Parameters.AddWithValue("$id", b.Id.ToString());
        cmd.Parameters.AddWithValue("$i", b.InstanceId.ToString());
        cmd.Parameters.AddWithValue("$in", b.InstanceName);
        cmd.Parameters.AddWithValue("$f", b.FlavorId.ToString());
        cmd.Parameters.AddWithValue("$im", b.ImageId.ToString());
        cmd.Parameters.AddWithValue("$k", b.Kind);
        cmd.Parameters.AddWithValue("$p", (object?)b.ParentId?.ToString() ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$s", b.Status);
        cmd.Parameters.AddWithValue("$d", b.Directory);
        cmd.Parameters.AddWithValue("$sz", b.SizeBytes);
        cmd.Parameters.AddWithValue("$ms", (object?)b.ManifestSha256 ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$sj", b.SpecJson);
        cmd.Parameters.AddWithValue("$e", (object?)b.Error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$at", b.CreatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$fin", b.FinishedAt is { } f ? f.ToString("O") : DBNull.Value);
        cmd.Parameters.AddWithValue("$fr", (object?)b.FullReason ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$er", (object?)b.ExpiredReason ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$va", b.VerifiedAt is { } v ? v.ToString("O") : DBNull.Value);
        cmd.Parameters.AddWithValue("$ve", (object?)b.VerifyError ?? DBNull.Value);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    private static BackupRecord ReadBackup(SqliteDataReader r) => new(
        Guid.Parse(r.GetString(0)), new InstanceId(Guid.Parse(r.GetString(1))), r.GetString(2), new FlavorId(Guid.Parse(r.GetString(3))),
        new ImageId(Guid.Parse(r.GetString(4))), r.GetString(5), r.IsDBNull(6) ? null : Guid.Parse(r.GetString(6)), r.GetString(7), r.GetString(8),
        r.GetInt64(9), r.IsDBNull(10) ? null : r.GetString(10), r.GetString(11), r.IsDBNull(12) ? null : r.GetString(12), Date(r.GetString(13)),
        r.IsDBNull(14) ? null : Date(r.GetString(14)), r.IsDBNull(15) ? null : r.GetString(15), r.IsDBNull(16) ? null : r.GetString(16),
        r.IsDBNull(17) ? null : Date(r.GetString(17)), r.IsDBNull(18) ? null : r.GetString(18));

    public Task<BackupRecord?> GetBackupAsync(Guid id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {BackupCols} FROM backups WHERE id=$k", id.ToString(), ReadBackup, cancellationToken);

    public Task<IReadOnlyList<BackupRecord>> ListBackupsAsync(InstanceId? instance, CancellationToken cancellationToken) =>
        instance is { } i
            ? QueryAsync($"SELECT {BackupCols} FROM backups WHERE instance_id=$k ORDER BY created_at, id", i.ToString(), ReadBackup, cancellationToken)
            : QueryAsync($"SELECT {BackupCols} FROM backups ORDER BY created_at, id", null, ReadBackup, cancellationToken);

    public Task DeleteBackupAsync(Guid id, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "DELETE FROM backups WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString());
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task SetBackupPolicyAsync(InstanceId id, BackupPolicy policy, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR REPLACE INTO backup_policies(instance_id,keep,full_every) VALUES ($i,$k,$f)");
        cmd.Parameters.AddWithValue("$i", id.ToString());
        cmd.Parameters.AddWithValue("$k", policy.Keep);
        cmd.Parameters.AddWithValue("$f", (object?)policy.FullEvery ?? DBNull.Value);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public async Task<BackupPolicy?> GetBackupPolicyAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync("SELECT keep,full_every FROM backup_policies WHERE instance_id=$k", id.ToString(),
            r => new BackupPolicy((int)r.GetInt64(0), r.IsDBNull(1) ? null : (int)r.GetInt64(1)), cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }
}
