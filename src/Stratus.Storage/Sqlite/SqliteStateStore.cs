using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Resources;

namespace Stratus.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode. Writers are serialised in-process by one
/// lock (SQLite allows one writer at a time anyway; queuing here avoids busy-retry storms), and
/// every write is a single transaction, so a crash at any instant leaves either all or nothing.
/// </summary>
public sealed partial class SqliteStateStore : IStateStore
{
    private readonly string _connectionString;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private SqliteConnection? _writer;

    public SqliteStateStore(string path)
    {
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public string ConnectionString => _connectionString;

    private async Task<SqliteConnection> OpenAsync(CancellationToken ct)
    {
        var c = new SqliteConnection(_connectionString);
        await c.OpenAsync(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;";
        await cmd.ExecuteNonQueryAsync(ct);
        return c;
    }

    private async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct);
        try
        {
            _writer ??= await OpenAsync(ct);
            await using var tx = (SqliteTransaction)await _writer.BeginTransactionAsync(System.Data.IsolationLevel.Serializable, ct);
            var result = await work(_writer, tx);
            if (tx.Connection is not null)
            {
                await tx.CommitAsync(ct); // null once the work rolled back
            }
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task<T> ReadAsync<T>(Func<SqliteConnection, Task<T>> work, CancellationToken ct)
    {
        await using var c = await OpenAsync(ct);
        return await work(c);
    }

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using (var c = await OpenAsync(cancellationToken))
        {
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await WriteAsync(async (c, tx) =>
        {
            await Exec(c, tx, "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
            var applied = new HashSet<string>(StringComparer.Ordinal);
            await using (var q = Cmd(c, tx, "SELECT id FROM schema_migrations"))
            await using (var r = await q.ExecuteReaderAsync(cancellationToken))
            {
                while (await r.ReadAsync(cancellationToken))
                {
                    applied.Add(r.GetString(0));
                }
            }
            foreach (var (id, sql) in Migrations.For("Sqlite"))
            {
                if (applied.Contains(id))
                {
                    continue;
                }
                await Exec(c, tx, sql);
                await using var ins = Cmd(c, tx, "INSERT INTO schema_migrations(id, applied_at) VALUES ($id, $at)");
                ins.Parameters.AddWithValue("$id", id);
                ins.Parameters.AddWithValue("$at", DateTimeOffset.UtcNow.ToString("O"));
                await ins.ExecuteNonQueryAsync(cancellationToken);
            }
            return 0;
        }, cancellationToken);
    }

    // ---------- flavors ----------

    public Task<bool> CreateFlavorAsync(Flavor f, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR IGNORE INTO flavors(id,name,vcpus,ram_mib,disk_gib,is_public,created_at) VALUES ($id,$n,$v,$r,$d,$p,$at)");
        cmd.Parameters.AddWithValue("$id", f.Id.ToString());
        cmd.Parameters.AddWithValue("$n", f.Name);
        cmd.Parameters.AddWithValue("$v", f.Vcpus);
        cmd.Parameters.AddWithValue("$r", f.RamMib);
        cmd.Parameters.AddWithValue("$d", f.DiskGib);
        cmd.Parameters.AddWithValue("$p", f.IsPublic ? 1 : 0);
        cmd.Parameters.AddWithValue("$at", f.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    private const string FlavorCols = "id,name,vcpus,ram_mib,disk_gib,is_public,created_at";

    private static Flavor ReadFlavor(SqliteDataReader r) => new(
        new FlavorId(Guid.Parse(r.GetString(0))), r.GetString(1), r.GetInt32(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5) != 0, Date(r.GetString(6)));

    public Task<Flavor?> GetFlavorAsync(FlavorId id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {FlavorCols} FROM flavors WHERE id=$k", id.ToString(), ReadFlavor, cancellationToken);

    public Task<Flavor?> FindFlavorAsync(string name, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {FlavorCols} FROM flavors WHERE name=$k", name, ReadFlavor, cancellationToken);

    public Task<IReadOnlyList<Flavor>> ListFlavorsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {FlavorCols} FROM flavors ORDER BY vcpus, ram_mib, disk_gib, name", null, ReadFlavor, cancellationToken);

    public Task<DeleteOutcome> DeleteFlavorAsync(FlavorId id, CancellationToken cancellationToken) =>
        DeleteUnlessUsedAsync("flavors", "flavor_id", id.ToString(), cancellationToken);

    private Task<DeleteOutcome> DeleteUnlessUsedAsync(string table, string column, string id, CancellationToken ct) => WriteAsync(async (c, tx) =>
    {
        await using (var used = Cmd(c, tx, $"SELECT COUNT(*) FROM instances WHERE {column}=$id AND vm_state <> 'deleted'"))
        {
            used.Parameters.AddWithValue("$id", id);
            if ((long)(await used.ExecuteScalarAsync(ct))! > 0)
            {
                await using var exists = Cmd(c, tx, $"SELECT COUNT(*) FROM {table} WHERE id=$id");
                exists.Parameters.AddWithValue("$id", id);
                return (long)(await exists.ExecuteScalarAsync(ct))! > 0 ? DeleteOutcome.InUse : DeleteOutcome.NotFound;
            }
        }
        await using var del = Cmd(c, tx, $"DELETE FROM {table} WHERE id=$id");
        del.Parameters.AddWithValue("$id", id);
        return await del.ExecuteNonQueryAsync(ct) == 1 ? DeleteOutcome.Deleted : DeleteOutcome.NotFound;
    }, ct);

    // ---------- images ----------

    private const string ImageCols = "id,name,disk_format,status,size_bytes,checksum,path,is_public,created_at,project_id";

    private static Image ReadImage(SqliteDataReader r) => new(
        new ImageId(Guid.Parse(r.GetString(0))), r.GetString(1), r.GetString(2), Enum.Parse<ImageStatus>(r.GetString(3), true),
        r.GetInt64(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetInt64(7) != 0, Date(r.GetString(8)), Guid.Parse(r.GetString(9)));

    public Task<bool> CreateImageAsync(Image i, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, $"INSERT OR IGNORE INTO images({ImageCols}) VALUES ($id,$n,$f,$s,$sz,$ck,$p,$pub,$at,$proj)");
        cmd.Parameters.AddWithValue("$proj", (i.ProjectId ?? Stratus.Core.Identity.Project.AdminId).ToString("D"));
        cmd.Parameters.AddWithValue("$id", i.Id.ToString());
        cmd.Parameters.AddWithValue("$n", i.Name);
        cmd.Parameters.AddWithValue("$f", i.DiskFormat);
        cmd.Parameters.AddWithValue("$s", i.Status.ToString().ToLowerInvariant());
        cmd.Parameters.AddWithValue("$sz", i.SizeBytes);
        cmd.Parameters.AddWithValue("$ck", (object?)i.Checksum ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$p", (object?)i.Path ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$pub", i.IsPublic ? 1 : 0);
        cmd.Parameters.AddWithValue("$at", i.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<Image?> GetImageAsync(ImageId id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {ImageCols} FROM images WHERE id=$k", id.ToString(), ReadImage, cancellationToken);

    public Task<Image?> FindImageAsync(string name, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {ImageCols} FROM images WHERE name=$k", name, ReadImage, cancellationToken);

    public Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {ImageCols} FROM images ORDER BY name", null, ReadImage, cancellationToken);

    public Task<DeleteOutcome> DeleteImageAsync(ImageId id, CancellationToken cancellationToken) =>
        DeleteUnlessUsedAsync("images", "image_id", id.ToString(), cancellationToken);

    // ---------- hosts ----------

    private const string HostCols = "id,name,state,total_cpu_milli,total_mem_mib,total_disk_gib,reserved_cpu_milli,reserved_mem_mib,reserved_disk_gib,ratio_cpu_permille,ratio_ram_permille,ratio_disk_permille,used_cpu_milli,used_mem_mib,used_disk_gib,generation,epoch,zone,accelerator,driver,agent_pid,last_heartbeat,created_at,traits,hypervisor_user";

    private static Host ReadHost(SqliteDataReader r) => new(
        new HostId(Guid.Parse(r.GetString(0))), r.GetString(1), Names.ParseHostState(r.GetString(2)) ?? HostState.Down,
        new ResourceVector(r.GetInt64(3), r.GetInt64(4), r.GetInt64(5)),
        new ResourceVector(r.GetInt64(6), r.GetInt64(7), r.GetInt64(8)),
        new AllocationRatios(r.GetInt32(9), r.GetInt32(10), r.GetInt32(11)),
        new ResourceVector(r.GetInt64(12), r.GetInt64(13), r.GetInt64(14)),
        r.GetInt64(15), r.GetInt64(16), r.GetString(17), r.GetString(18), r.GetString(19),
        r.IsDBNull(20) ? null : r.GetInt32(20), r.IsDBNull(21) ? null : Date(r.GetString(21)), Date(r.GetString(22)),
        r.IsDBNull(23) ? null : JsonSerializer.Deserialize<List<string>>(r.GetString(23)),
        r.IsDBNull(24) ? null : r.GetString(24));

    public Task<Host> RegisterHostAsync(HostRegistrationRecord reg, DateTimeOffset now, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using (var up = Cmd(c, tx, """
            UPDATE hosts SET total_cpu_milli=$tc,total_mem_mib=$tm,total_disk_gib=$td,reserved_cpu_milli=$rc,reserved_mem_mib=$rm,reserved_disk_gib=$rd,
              accelerator=$acc,driver=$drv,agent_pid=$pid,hypervisor_user=$hvu,last_heartbeat=$now,
              state=CASE WHEN state IN ('down','failed') THEN 'up' ELSE state END, generation=generation+1
            WHERE name=$n
            """))
        {
            Bind(up, reg, now);
            if (await up.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                await using var ins = Cmd(c, tx, $"""
                    INSERT INTO hosts(id,name,state,total_cpu_milli,total_mem_mib,total_disk_gib,reserved_cpu_milli,reserved_mem_mib,reserved_disk_gib,
                      ratio_cpu_permille,ratio_ram_permille,ratio_disk_permille,zone,accelerator,driver,agent_pid,hypervisor_user,last_heartbeat,created_at)
                    VALUES ($id,$n,'up',$tc,$tm,$td,$rc,$rm,$rd,$qc,$qm,$qd,$z,$acc,$drv,$pid,$hvu,$now,$now)
                    """);
                Bind(ins, reg, now);
                ins.Parameters.AddWithValue("$id", HostId.New().ToString());
                ins.Parameters.AddWithValue("$qc", reg.Ratios.CpuPermille);
                ins.Parameters.AddWithValue("$qm", reg.Ratios.RamPermille);
                ins.Parameters.AddWithValue("$qd", reg.Ratios.DiskPermille);
                ins.Parameters.AddWithValue("$z", reg.Zone);
                await ins.ExecuteNonQueryAsync(cancellationToken);
            }
        }
        await using var q = Cmd(c, tx, $"SELECT {HostCols} FROM hosts WHERE name=$n");
        q.Parameters.AddWithValue("$n", reg.Name);
        await using var r = await q.ExecuteReaderAsync(cancellationToken);
        await r.ReadAsync(cancellationToken);
        return ReadHost(r);
    }, cancellationToken);

    private static void Bind(SqliteCommand cmd, HostRegistrationRecord reg, DateTimeOffset now)
    {
        cmd.Parameters.AddWithValue("$n", reg.Name);
        cmd.Parameters.AddWithValue("$tc", reg.Total.MilliVcpus);
        cmd.Parameters.AddWithValue("$tm", reg.Total.MemoryMib);
        cmd.Parameters.AddWithValue("$td", reg.Total.DiskGib);
        cmd.Parameters.AddWithValue("$rc", reg.Reserved.MilliVcpus);
        cmd.Parameters.AddWithValue("$rm", reg.Reserved.MemoryMib);
        cmd.Parameters.AddWithValue("$rd", reg.Reserved.DiskGib);
        cmd.Parameters.AddWithValue("$acc", reg.Accelerator);
        cmd.Parameters.AddWithValue("$drv", reg.Driver);
        cmd.Parameters.AddWithValue("$pid", (object?)reg.AgentPid ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$hvu", (object?)reg.HypervisorUser ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$now", now.ToString("O"));
    }

    public Task<Host?> GetHostAsync(HostId id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {HostCols} FROM hosts WHERE id=$k", id.ToString(), ReadHost, cancellationToken);

    public Task<Host?> FindHostAsync(string name, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {HostCols} FROM hosts WHERE name=$k", name, ReadHost, cancellationToken);

    public Task<IReadOnlyList<Host>> ListHostsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {HostCols} FROM hosts ORDER BY name", null, ReadHost, cancellationToken);

    public Task HeartbeatAsync(HostId id, DateTimeOffset now, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE hosts SET last_heartbeat=$now WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString());
        cmd.Parameters.AddWithValue("$now", now.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<CasOutcome> SetHostStateAsync(HostId id, HostState state, long expectedGeneration, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE hosts SET state=$s, generation=generation+1 WHERE id=$id AND generation=$g");
        cmd.Parameters.AddWithValue("$id", id.ToString());
        cmd.Parameters.AddWithValue("$s", Names.Of(state));
        cmd.Parameters.AddWithValue("$g", expectedGeneration);
        if (await cmd.ExecuteNonQueryAsync(cancellationToken) == 1)
        {
            return CasOutcome.Ok;
        }
        return await ExistsAsync(c, tx, "hosts", id.ToString(), cancellationToken) ? CasOutcome.Conflict : CasOutcome.NotFound;
    }, cancellationToken);

    // ---------- instances ----------

    private const string InstanceCols = "id,name,flavor_id,image_id,host_id,vm_state,task,power_state,cpu_milli,mem_mib,disk_gib,fault,idempotency_key,reboot_seq,version,created_at,updated_at,task_requested_at,user_data,key_name,zone,forwards,group_id,traits,batch_id,batch_all_or_nothing,storage_pool,ha,ha_priority,project_id,max_vcpus,max_mem_mib,pending_resize";

    private static Instance ReadInstance(SqliteDataReader r) => new(
        new InstanceId(Guid.Parse(r.GetString(0))), r.GetString(1),
        new FlavorId(Guid.Parse(r.GetString(2))), new ImageId(Guid.Parse(r.GetString(3))),
        r.IsDBNull(4) ? null : new HostId(Guid.Parse(r.GetString(4))),
        Names.ParseVmState(r.GetString(5)) ?? VmState.Error,
        r.IsDBNull(6) ? null : Names.ParseTask(r.GetString(6)),
        Names.ParsePowerState(r.GetString(7)),
        new ResourceVector(r.GetInt64(8), r.GetInt64(9), r.GetInt64(10)),
        r.IsDBNull(11) ? null : r.GetString(11),
        r.IsDBNull(12) ? null : r.GetString(12),
        r.GetInt64(13), r.GetInt64(14), Date(r.GetString(15)), Date(r.GetString(16)),
        r.IsDBNull(17) ? null : Date(r.GetString(17)),
        r.IsDBNull(18) ? null : r.GetString(18),
        r.IsDBNull(19) ? null : r.GetString(19),
        r.IsDBNull(20) ? null : r.GetString(20),
        r.IsDBNull(21) ? null : JsonSerializer.Deserialize<List<Forward>>(r.GetString(21)),
        r.IsDBNull(22) ? null : Guid.Parse(r.GetString(22)),
        r.IsDBNull(23) ? null : JsonSerializer.Deserialize<List<string>>(r.GetString(23)),
        r.IsDBNull(24) ? null : Guid.Parse(r.GetString(24)),
        r.GetInt64(25) != 0,
        r.GetString(26),
        r.GetInt64(27) != 0,
        (int)r.GetInt64(28),
        Guid.Parse(r.GetString(29)),
        (int)r.GetInt64(30),
        r.GetInt64(31),
        r.IsDBNull(32) ? null : JsonSerializer.Deserialize<PendingResize>(r.GetString(32)));

    private static void BindInstance(SqliteCommand cmd, Instance i)
    {
        cmd.Parameters.AddWithValue("$id", i.Id.ToString());
        cmd.Parameters.AddWithValue("$name", i.Name);
        cmd.Parameters.AddWithValue("$flavor", i.FlavorId.ToString());
        cmd.Parameters.AddWithValue("$image", i.ImageId.ToString());
        cmd.Parameters.AddWithValue("$host", i.HostId is { } h ? h.ToString() : DBNull.Value);
        cmd.Parameters.AddWithValue("$vm", Names.Of(i.VmState));
        cmd.Parameters.AddWithValue("$task", i.Task is { } t ? Names.Of(t) : DBNull.Value);
        cmd.Parameters.AddWithValue("$power", Names.Of(i.PowerState));
        cmd.Parameters.AddWithValue("$cpu", i.Resources.MilliVcpus);
        cmd.Parameters.AddWithValue("$mem", i.Resources.MemoryMib);
        cmd.Parameters.AddWithValue("$disk", i.Resources.DiskGib);
        cmd.Parameters.AddWithValue("$fault", (object?)i.Fault ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$idem", (object?)i.IdempotencyKey ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$reboot", i.RebootSeq);
        cmd.Parameters.AddWithValue("$created", i.CreatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$updated", i.UpdatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$taskat", i.TaskRequestedAt is { } ta ? ta.ToString("O") : DBNull.Value);
        cmd.Parameters.AddWithValue("$ud", (object?)i.UserData ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$key", (object?)i.KeyName ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$zone", (object?)i.Zone ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$fwd", i.Forwards is { Count: > 0 } f ? JsonSerializer.Serialize(f) : DBNull.Value);
        cmd.Parameters.AddWithValue("$group", i.GroupId is { } g ? g.ToString("D") : DBNull.Value);
        cmd.Parameters.AddWithValue("$traits", i.Traits is { Count: > 0 } tr ? JsonSerializer.Serialize(tr) : DBNull.Value);
        cmd.Parameters.AddWithValue("$batch", i.BatchId is { } b ? b.ToString("D") : DBNull.Value);
        cmd.Parameters.AddWithValue("$aon", i.BatchAllOrNothing ? 1 : 0);
        cmd.Parameters.AddWithValue("$pool", i.StoragePool);
        cmd.Parameters.AddWithValue("$ha", i.Ha ? 1 : 0);
        cmd.Parameters.AddWithValue("$hap", i.HaPriority);
        cmd.Parameters.AddWithValue("$project", i.Project.ToString("D"));
        cmd.Parameters.AddWithValue("$maxc", i.MaxVcpus);
        cmd.Parameters.AddWithValue("$maxm", i.MaxMemoryMib);
        cmd.Parameters.AddWithValue("$pending", i.PendingResize is { } pr ? JsonSerializer.Serialize(pr) : DBNull.Value);
    }

    public Task<CreateInstanceOutcome> CreateInstanceAsync(Instance instance, InstanceAction firstAction, CancellationToken cancellationToken) =>
        CreateInstanceAsync(instance, firstAction, null, cancellationToken);

    public Task<CreateStatus> CreateInstancesAsync(IReadOnlyList<(Instance Instance, InstanceAction FirstAction)> batch, CancellationToken cancellationToken) =>
        CreateInstancesAsync(batch, null, cancellationToken);

    public Task<CasOutcome> UpdateInstanceAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken) =>
        UpdateInstanceAsync(updated, action, finish, null, cancellationToken);

    public Task<CreateInstanceOutcome> CreateInstanceAsync(Instance instance, InstanceAction firstAction, long? admissionGeneration, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (instance.IdempotencyKey is { } key)
        {
            await using var q = Cmd(c, tx, $"SELECT {InstanceCols} FROM instances WHERE idempotency_key=$k");
            q.Parameters.AddWithValue("$k", key);
            await using var r = await q.ExecuteReaderAsync(cancellationToken);
            if (await r.ReadAsync(cancellationToken))
            {
                return new CreateInstanceOutcome(ReadInstance(r), CreateStatus.Existing);
            }
        }
        if (!await WithinQuotaAsync(c, tx, [instance], cancellationToken))
        {
            return new CreateInstanceOutcome(instance, CreateStatus.QuotaExceeded);
        }
        if (!await AdmissionCasAsync(c, tx, admissionGeneration, cancellationToken))
        {
            return new CreateInstanceOutcome(instance, CreateStatus.AdmissionChanged);
        }
        await using (var ins = Cmd(c, tx, """
            INSERT INTO instances(id,name,flavor_id,image_id,host_id,vm_state,task,power_state,cpu_milli,mem_mib,disk_gib,fault,idempotency_key,reboot_seq,version,created_at,updated_at,task_requested_at,user_data,key_name,zone,forwards,group_id,traits,batch_id,batch_all_or_nothing,storage_pool,ha,ha_priority,project_id,max_vcpus,max_mem_mib,pending_resize)
            VALUES ($id,$name,$flavor,$image,$host,$vm,$task,$power,$cpu,$mem,$disk,$fault,$idem,$reboot,1,$created,$updated,$taskat,$ud,$key,$zone,$fwd,$group,$traits,$batch,$aon,$pool,$ha,$hap,$project,$maxc,$maxm,$pending)
            """))
        {
            BindInstance(ins, instance);
            try
            {
                await ins.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (SqliteException e) when (e.SqliteErrorCode == 19 && e.Message.Contains("instances.name", StringComparison.Ordinal))
            {
                await tx.RollbackAsync(cancellationToken); // nothing written, not even the admission generation
                return new CreateInstanceOutcome(instance, CreateStatus.NameTaken);
            }
        }
        await InsertActionAsync(c, tx, firstAction, cancellationToken);
        return new CreateInstanceOutcome(instance with { Version = 1 }, CreateStatus.Created);
    }, cancellationToken);

    public Task<CreateStatus> CreateInstancesAsync(IReadOnlyList<(Instance Instance, InstanceAction FirstAction)> batch, long? admissionGeneration, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (!await WithinQuotaAsync(c, tx, [.. batch.Select(b => b.Instance)], cancellationToken))
        {
            return CreateStatus.QuotaExceeded;
        }
        if (!await AdmissionCasAsync(c, tx, admissionGeneration, cancellationToken))
        {
            return CreateStatus.AdmissionChanged;
        }
        foreach (var (instance, action) in batch)
        {
            await using var ins = Cmd(c, tx, """
                INSERT INTO instances(id,name,flavor_id,image_id,host_id,vm_state,task,power_state,cpu_milli,mem_mib,disk_gib,fault,idempotency_key,reboot_seq,version,created_at,updated_at,task_requested_at,user_data,key_name,zone,forwards,group_id,traits,batch_id,batch_all_or_nothing,storage_pool,ha,ha_priority,project_id,max_vcpus,max_mem_mib,pending_resize)
                VALUES ($id,$name,$flavor,$image,$host,$vm,$task,$power,$cpu,$mem,$disk,$fault,$idem,$reboot,1,$created,$updated,$taskat,$ud,$key,$zone,$fwd,$group,$traits,$batch,$aon,$pool,$ha,$hap,$project,$maxc,$maxm,$pending)
                """);
            BindInstance(ins, instance);
            try
            {
                await ins.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (SqliteException e) when (e.SqliteErrorCode == 19)
            {
                await tx.RollbackAsync(cancellationToken);
                return CreateStatus.NameTaken;
            }
            await InsertActionAsync(c, tx, action, cancellationToken);
        }
        return CreateStatus.Created;
    }, cancellationToken);

    public Task<CasOutcome> ClaimBatchAsync(IReadOnlyList<Instance> updated, IReadOnlyList<HostClaimRecord> hosts, IReadOnlyList<GroupClaim> groups, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        foreach (var group in groups)
        {
            await using var g = Cmd(c, tx, "UPDATE server_groups SET generation=generation+1 WHERE id=$g AND generation=$gen");
            g.Parameters.AddWithValue("$g", group.GroupId.ToString("D"));
            g.Parameters.AddWithValue("$gen", group.ExpectedGeneration);
            if (await g.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict; // a member joined the group since the decision: re-plan
            }
        }
        foreach (var h in hosts)
        {
            await using var cmd = Cmd(c, tx, """
                UPDATE hosts SET used_cpu_milli=used_cpu_milli+$c, used_mem_mib=used_mem_mib+$m, used_disk_gib=used_disk_gib+$d, generation=generation+1
                WHERE id=$id AND generation=$g AND state='up'
                  AND used_cpu_milli+$c <= (total_cpu_milli-reserved_cpu_milli)*ratio_cpu_permille/1000
                  AND used_mem_mib+$m <= (total_mem_mib-reserved_mem_mib)*ratio_ram_permille/1000
                  AND used_disk_gib+$d <= (total_disk_gib-reserved_disk_gib)*ratio_disk_permille/1000
                """);
            cmd.Parameters.AddWithValue("$id", h.Host.ToString());
            cmd.Parameters.AddWithValue("$g", h.ExpectedGeneration);
            cmd.Parameters.AddWithValue("$c", h.Total.MilliVcpus);
            cmd.Parameters.AddWithValue("$m", h.Total.MemoryMib);
            cmd.Parameters.AddWithValue("$d", h.Total.DiskGib);
            if (await cmd.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict;
            }
        }
        foreach (var i in updated)
        {
            await using (var a = Cmd(c, tx, "INSERT INTO allocations(instance_id,host_id,cpu_milli,mem_mib,disk_gib) VALUES ($i,$h,$c,$m,$d)"))
            {
                a.Parameters.AddWithValue("$i", i.Id.ToString());
                a.Parameters.AddWithValue("$h", i.HostId!.Value.ToString());
                a.Parameters.AddWithValue("$c", i.Resources.MilliVcpus);
                a.Parameters.AddWithValue("$m", i.Resources.MemoryMib);
                a.Parameters.AddWithValue("$d", i.Resources.DiskGib);
                try
                {
                    await a.ExecuteNonQueryAsync(cancellationToken);
                }
                catch (SqliteException e) when (e.SqliteErrorCode == 19)
                {
                    await tx.RollbackAsync(cancellationToken);
                    return CasOutcome.Conflict;
                }
            }
            if (await CasInstanceAsync(c, tx, i, cancellationToken) != CasOutcome.Ok)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict;
            }
            await MeterAsync(c, tx, i, cancellationToken);
        }
        return CasOutcome.Ok;
    }, cancellationToken);

    public Task<Instance?> GetInstanceAsync(InstanceId id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {InstanceCols} FROM instances WHERE id=$k", id.ToString(), ReadInstance, cancellationToken);

    public Task<Instance?> FindInstanceByIdempotencyKeyAsync(string key, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {InstanceCols} FROM instances WHERE idempotency_key=$k", key, ReadInstance, cancellationToken);

    public Task<Instance?> FindInstanceAsync(string name, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {InstanceCols} FROM instances WHERE name=$k AND vm_state <> 'deleted' ORDER BY id LIMIT 1", name, ReadInstance, cancellationToken);

    public Task<Instance?> FindInstanceAsync(string name, Guid project, CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {InstanceCols} FROM instances WHERE name=$k AND project_id=$p AND vm_state <> 'deleted' LIMIT 1";
        cmd.Parameters.AddWithValue("$k", name);
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        return await r.ReadAsync(cancellationToken) ? ReadInstance(r) : null;
    }, cancellationToken);

    public Task<Page<Instance>> ListInstancesAsync(InstanceQuery query, CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        var sql = new StringBuilder($"SELECT {InstanceCols} FROM instances WHERE 1=1");
        await using var cmd = c.CreateCommand();
        if (!query.IncludeDeleted && query.State != VmState.Deleted)
        {
            sql.Append(" AND vm_state <> 'deleted'");
        }
        if (query.Marker is not null)
        {
            sql.Append(" AND id > $marker");
            cmd.Parameters.AddWithValue("$marker", query.Marker);
        }
        if (query.Name is not null)
        {
            sql.Append(" AND name = $name");
            cmd.Parameters.AddWithValue("$name", query.Name);
        }
        if (query.State is { } s)
        {
            sql.Append(" AND vm_state = $state");
            cmd.Parameters.AddWithValue("$state", Names.Of(s));
        }
        if (query.Project is { } p)
        {
            sql.Append(" AND project_id = $project");
            cmd.Parameters.AddWithValue("$project", p.ToString("D"));
        }
        if (query.Host is { } h)
        {
            sql.Append(" AND host_id = $host");
            cmd.Parameters.AddWithValue("$host", h.ToString());
        }
        sql.Append(" ORDER BY id LIMIT $limit");
        cmd.Parameters.AddWithValue("$limit", query.Limit + 1);
        cmd.CommandText = sql.ToString();
        var items = new List<Instance>(Math.Min(query.Limit + 1, 1024));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await r.ReadAsync(cancellationToken))
        {
            items.Add(ReadInstance(r));
        }
        string? next = null;
        if (items.Count > query.Limit)
        {
            items.RemoveAt(items.Count - 1);
            next = items[^1].Id.ToString();
        }
        return new Page<Instance>(items, next);
    }, cancellationToken);

    public Task<IReadOnlyList<Instance>> ListInstancesWithTaskAsync(InstanceTask? task, int limit, CancellationToken cancellationToken) =>
        task is { } t
            ? QueryAsync($"SELECT {InstanceCols} FROM instances WHERE task=$k ORDER BY id LIMIT {limit}", Names.Of(t), ReadInstance, cancellationToken)
            : QueryAsync($"SELECT {InstanceCols} FROM instances WHERE task IS NOT NULL ORDER BY id LIMIT {limit}", null, ReadInstance, cancellationToken);

    public Task<IReadOnlyList<Instance>> ListInstancesOnHostAsync(HostId host, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {InstanceCols} FROM instances WHERE host_id=$k AND vm_state <> 'deleted' ORDER BY id", host.ToString(), ReadInstance, cancellationToken);

    public Task<CasOutcome> UpdateInstanceAsync(Instance updated, InstanceAction? action, ActionFinish? finish, long? admissionGeneration, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (!await AdmissionCasAsync(c, tx, admissionGeneration, cancellationToken))
        {
            return CasOutcome.Conflict;
        }
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok && admissionGeneration is not null)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        if (outcome == CasOutcome.Ok)
        {
            await FinishInTxAsync(c, tx, updated.Id, finish, cancellationToken);
            if (action is not null)
            {
                await InsertActionAsync(c, tx, action, cancellationToken);
            }
            await MeterAsync(c, tx, updated, cancellationToken);
        }
        return outcome;
    }, cancellationToken);

    private static async Task FinishInTxAsync(SqliteConnection c, SqliteTransaction tx, InstanceId id, ActionFinish? finish, CancellationToken ct)
    {
        if (finish is null)
        {
            return;
        }
        await using var cmd = Cmd(c, tx, """
            UPDATE instance_actions SET finished_at=$f, result=$r, message=COALESCE($m, message)
            WHERE seq = (SELECT MAX(seq) FROM instance_actions WHERE instance_id=$i AND finished_at IS NULL)
            """);
        cmd.Parameters.AddWithValue("$i", id.ToString());
        cmd.Parameters.AddWithValue("$f", finish.At.ToString("O"));
        cmd.Parameters.AddWithValue("$r", finish.Result);
        cmd.Parameters.AddWithValue("$m", (object?)finish.Message ?? DBNull.Value);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task<CasOutcome> CasInstanceAsync(SqliteConnection c, SqliteTransaction tx, Instance i, CancellationToken ct)
    {
        await using var cmd = Cmd(c, tx, """
            UPDATE instances SET name=$name,flavor_id=$flavor,image_id=$image,host_id=$host,vm_state=$vm,task=$task,power_state=$power,
              cpu_milli=$cpu,mem_mib=$mem,disk_gib=$disk,fault=$fault,reboot_seq=$reboot,updated_at=$updated,task_requested_at=$taskat,
              user_data=$ud,key_name=$key,zone=$zone,forwards=$fwd,group_id=$group,traits=$traits,batch_id=$batch,batch_all_or_nothing=$aon,storage_pool=$pool,ha=$ha,ha_priority=$hap,max_vcpus=$maxc,max_mem_mib=$maxm,pending_resize=$pending,version=version+1
            WHERE id=$id AND version=$version
            """);
        BindInstance(cmd, i);
        cmd.Parameters.AddWithValue("$version", i.Version);
        if (await cmd.ExecuteNonQueryAsync(ct) == 1)
        {
            return CasOutcome.Ok;
        }
        return await ExistsAsync(c, tx, "instances", i.Id.ToString(), ct) ? CasOutcome.Conflict : CasOutcome.NotFound;
    }

    public Task<CasOutcome> ClaimAsync(Instance updated, HostId host, long expectedHostGeneration, ResourceVector res, GroupClaim? group, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (group is not null)
        {
            await using var g = Cmd(c, tx, "UPDATE server_groups SET generation=generation+1 WHERE id=$g AND generation=$gen");
            g.Parameters.AddWithValue("$g", group.GroupId.ToString("D"));
            g.Parameters.AddWithValue("$gen", group.ExpectedGeneration);
            if (await g.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict; // another member was placed since the decision: re-plan
            }
        }
        if (await ClaimOnHostAsync(c, tx, host, expectedHostGeneration, res, cancellationToken) is { } refused)
        {
            await tx.RollbackAsync(cancellationToken);
            return refused;
        }
        await using (var a = Cmd(c, tx, "INSERT INTO allocations(instance_id,host_id,cpu_milli,mem_mib,disk_gib) VALUES ($i,$h,$c,$m,$d)"))
        {
            a.Parameters.AddWithValue("$i", updated.Id.ToString());
            a.Parameters.AddWithValue("$h", host.ToString());
            a.Parameters.AddWithValue("$c", res.MilliVcpus);
            a.Parameters.AddWithValue("$m", res.MemoryMib);
            a.Parameters.AddWithValue("$d", res.DiskGib);
            try
            {
                await a.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (SqliteException e) when (e.SqliteErrorCode == 19)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict; // the instance already holds an allocation
            }
        }
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        await MeterAsync(c, tx, updated, cancellationToken);
        return outcome;
    }, cancellationToken);

    /// <summary>
    /// The one claim statement (placements and migration destinations): adds <paramref name="res"/> to the host's
    /// used resources if its generation is the expected one, it is up, and the ratios leave room. Null on success,
    /// else why not (NotFound, Conflict on a changed generation, NoCapacity). The caller rolls back.
    /// </summary>
    private static async Task<CasOutcome?> ClaimOnHostAsync(SqliteConnection c, SqliteTransaction tx, HostId host, long expectedGeneration, ResourceVector res, CancellationToken ct)
    {
        await using var h = Cmd(c, tx, """
            UPDATE hosts SET used_cpu_milli=used_cpu_milli+$c, used_mem_mib=used_mem_mib+$m, used_disk_gib=used_disk_gib+$d, generation=generation+1
            WHERE id=$id AND generation=$g AND state='up'
              AND used_cpu_milli+$c <= (total_cpu_milli-reserved_cpu_milli)*ratio_cpu_permille/1000
              AND used_mem_mib+$m <= (total_mem_mib-reserved_mem_mib)*ratio_ram_permille/1000
              AND used_disk_gib+$d <= (total_disk_gib-reserved_disk_gib)*ratio_disk_permille/1000
            """);
        h.Parameters.AddWithValue("$id", host.ToString());
        h.Parameters.AddWithValue("$g", expectedGeneration);
        h.Parameters.AddWithValue("$c", res.MilliVcpus);
        h.Parameters.AddWithValue("$m", res.MemoryMib);
        h.Parameters.AddWithValue("$d", res.DiskGib);
        if (await h.ExecuteNonQueryAsync(ct) == 1)
        {
            return null;
        }
        await using var g = Cmd(c, tx, "SELECT generation FROM hosts WHERE id=$id");
        g.Parameters.AddWithValue("$id", host.ToString());
        var gen = await g.ExecuteScalarAsync(ct);
        return gen is null ? CasOutcome.NotFound : (long)gen != expectedGeneration ? CasOutcome.Conflict : CasOutcome.NoCapacity;
    }

    public Task<CasOutcome> ReleaseAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        await FinishInTxAsync(c, tx, updated.Id, finish, cancellationToken);
        await using (var sel = Cmd(c, tx, "SELECT host_id,cpu_milli,mem_mib,disk_gib FROM allocations WHERE instance_id=$i"))
        {
            sel.Parameters.AddWithValue("$i", updated.Id.ToString());
            string? host = null;
            long cpu = 0, mem = 0, disk = 0;
            await using (var r = await sel.ExecuteReaderAsync(cancellationToken))
            {
                if (await r.ReadAsync(cancellationToken))
                {
                    host = r.GetString(0);
                    cpu = r.GetInt64(1);
                    mem = r.GetInt64(2);
                    disk = r.GetInt64(3);
                }
            }
            if (host is not null)
            {
                await using var h = Cmd(c, tx, "UPDATE hosts SET used_cpu_milli=used_cpu_milli-$c, used_mem_mib=used_mem_mib-$m, used_disk_gib=used_disk_gib-$d, generation=generation+1 WHERE id=$h");
                h.Parameters.AddWithValue("$h", host);
                h.Parameters.AddWithValue("$c", cpu);
                h.Parameters.AddWithValue("$m", mem);
                h.Parameters.AddWithValue("$d", disk);
                await h.ExecuteNonQueryAsync(cancellationToken);
                await using var del = Cmd(c, tx, "DELETE FROM allocations WHERE instance_id=$i");
                del.Parameters.AddWithValue("$i", updated.Id.ToString());
                await del.ExecuteNonQueryAsync(cancellationToken);
            }
        }
        if (action is not null)
        {
            await InsertActionAsync(c, tx, action, cancellationToken);
        }
        await MeterAsync(c, tx, updated, cancellationToken);
        return CasOutcome.Ok;
    }, cancellationToken);

    public Task<IReadOnlyList<Allocation>> ListAllocationsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT instance_id,host_id,cpu_milli,mem_mib,disk_gib FROM allocations ORDER BY instance_id", null,
            r => new Allocation(new InstanceId(Guid.Parse(r.GetString(0))), new HostId(Guid.Parse(r.GetString(1))), new ResourceVector(r.GetInt64(2), r.GetInt64(3), r.GetInt64(4))),
            cancellationToken);

    // ---------- placement decisions ----------

    public Task RecordPlacementAsync(InstanceId id, string traceJson, DateTimeOffset at, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR REPLACE INTO placement_decisions(instance_id,decided_at,trace) VALUES ($i,$at,$t)");
        cmd.Parameters.AddWithValue("$i", id.ToString());
        cmd.Parameters.AddWithValue("$at", at.ToString("O"));
        cmd.Parameters.AddWithValue("$t", traceJson);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<(string TraceJson, DateTimeOffset At)?> GetPlacementAsync(InstanceId id, CancellationToken cancellationToken) => ReadAsync<(string, DateTimeOffset)?>(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT trace, decided_at FROM placement_decisions WHERE instance_id=$i";
        cmd.Parameters.AddWithValue("$i", id.ToString());
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        return await r.ReadAsync(cancellationToken) ? (r.GetString(0), Date(r.GetString(1))) : null;
    }, cancellationToken);

    // ---------- server groups ----------

    private static ServerGroup ReadGroup(SqliteDataReader r) =>
        new(Guid.Parse(r.GetString(0)), r.GetString(1), r.GetString(2), r.GetInt32(3), r.GetInt64(4), Date(r.GetString(5)), Guid.Parse(r.GetString(6)));

    public Task<bool> CreateGroupAsync(ServerGroup g, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR IGNORE INTO server_groups(id,name,policy,max_per_host,generation,created_at,project_id) VALUES ($id,$n,$p,$m,$g,$at,$proj)");
        cmd.Parameters.AddWithValue("$proj", (g.ProjectId ?? Stratus.Core.Identity.Project.AdminId).ToString("D"));
        cmd.Parameters.AddWithValue("$id", g.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$n", g.Name);
        cmd.Parameters.AddWithValue("$p", g.Policy);
        cmd.Parameters.AddWithValue("$m", g.MaxPerHost);
        cmd.Parameters.AddWithValue("$g", g.Generation);
        cmd.Parameters.AddWithValue("$at", g.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<ServerGroup?> FindGroupAsync(string nameOrId, CancellationToken cancellationToken) =>
        QueryOneAsync("SELECT id,name,policy,max_per_host,generation,created_at,project_id FROM server_groups WHERE name=$k OR id=$k", nameOrId, ReadGroup, cancellationToken);

    public Task<IReadOnlyList<ServerGroup>> ListGroupsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT id,name,policy,max_per_host,generation,created_at,project_id FROM server_groups ORDER BY name", null, ReadGroup, cancellationToken);

    public Task<DeleteOutcome> DeleteGroupAsync(Guid id, CancellationToken cancellationToken) =>
        DeleteUnlessUsedAsync("server_groups", "group_id", id.ToString("D"), cancellationToken);

    public Task<IReadOnlyDictionary<HostId, int>> GroupMembersPerHostAsync(Guid groupId, CancellationToken cancellationToken) => ReadAsync<IReadOnlyDictionary<HostId, int>>(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT host_id, COUNT(*) FROM instances WHERE group_id=$g AND host_id IS NOT NULL AND vm_state <> 'deleted' GROUP BY host_id";
        cmd.Parameters.AddWithValue("$g", groupId.ToString("D"));
        var d = new Dictionary<HostId, int>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await r.ReadAsync(cancellationToken))
        {
            d[new HostId(Guid.Parse(r.GetString(0)))] = r.GetInt32(1);
        }
        return d;
    }, cancellationToken);

    // ---------- host traits and aggregates ----------

    public Task<bool> SetHostTraitsAsync(HostId id, IReadOnlyList<string> traits, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE hosts SET traits=$t, generation=generation+1 WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString());
        cmd.Parameters.AddWithValue("$t", traits.Count == 0 ? DBNull.Value : JsonSerializer.Serialize(traits.Distinct().Order(StringComparer.Ordinal)));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<bool> CreateAggregateAsync(Aggregate a, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR IGNORE INTO aggregates(id,name,zone,metadata,created_at) VALUES ($id,$n,$z,$m,$at)");
        cmd.Parameters.AddWithValue("$id", a.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$n", a.Name);
        cmd.Parameters.AddWithValue("$z", (object?)a.Zone ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$m", JsonSerializer.Serialize(a.Metadata));
        cmd.Parameters.AddWithValue("$at", a.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public async Task<Aggregate?> FindAggregateAsync(string nameOrId, CancellationToken cancellationToken) =>
        (await ListAggregatesAsync(cancellationToken)).FirstOrDefault(a => a.Name == nameOrId || a.Id.ToString("D") == nameOrId);

    public Task<IReadOnlyList<Aggregate>> ListAggregatesAsync(CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<Aggregate>>(async c =>
    {
        var members = new Dictionary<string, List<HostId>>();
        await using (var m = c.CreateCommand())
        {
            m.CommandText = "SELECT aggregate_id, host_id FROM aggregate_hosts ORDER BY host_id";
            await using var r = await m.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken))
            {
                (members.TryGetValue(r.GetString(0), out var l) ? l : members[r.GetString(0)] = []).Add(new HostId(Guid.Parse(r.GetString(1))));
            }
        }
        var list = new List<Aggregate>();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT id,name,zone,metadata,created_at FROM aggregates ORDER BY name";
        await using var a = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await a.ReadAsync(cancellationToken))
        {
            list.Add(new Aggregate(Guid.Parse(a.GetString(0)), a.GetString(1), a.IsDBNull(2) ? null : a.GetString(2),
                JsonSerializer.Deserialize<Dictionary<string, string>>(a.GetString(3)) ?? [], members.GetValueOrDefault(a.GetString(0)) ?? [], Date(a.GetString(4))));
        }
        return list;
    }, cancellationToken);

    public Task<bool> UpdateAggregateAsync(Guid id, string? zone, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE aggregates SET zone=$z, metadata=$m, version=version+1 WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString("D"));
        cmd.Parameters.AddWithValue("$z", (object?)zone ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$m", JsonSerializer.Serialize(metadata));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task SetAggregateHostAsync(Guid id, HostId host, bool member, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, member
            ? "INSERT OR IGNORE INTO aggregate_hosts(aggregate_id,host_id) VALUES ($a,$h)"
            : "DELETE FROM aggregate_hosts WHERE aggregate_id=$a AND host_id=$h");
        cmd.Parameters.AddWithValue("$a", id.ToString("D"));
        cmd.Parameters.AddWithValue("$h", host.ToString());
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<bool> DeleteAggregateAsync(Guid id, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using (var h = Cmd(c, tx, "DELETE FROM aggregate_hosts WHERE aggregate_id=$a"))
        {
            h.Parameters.AddWithValue("$a", id.ToString("D"));
            await h.ExecuteNonQueryAsync(cancellationToken);
        }
        await using var cmd = Cmd(c, tx, "DELETE FROM aggregates WHERE id=$a");
        cmd.Parameters.AddWithValue("$a", id.ToString("D"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    // ---------- keypairs ----------

    private static Keypair ReadKeypair(SqliteDataReader r) =>
        new(Guid.Parse(r.GetString(0)), r.GetString(1), r.GetString(2), r.GetString(3), Date(r.GetString(4)), Guid.Parse(r.GetString(5)));

    public Task<bool> CreateKeypairAsync(Keypair k, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT OR IGNORE INTO keypairs(id,name,public_key,fingerprint,created_at,project_id) VALUES ($id,$n,$k,$f,$at,$proj)");
        cmd.Parameters.AddWithValue("$proj", (k.ProjectId ?? Stratus.Core.Identity.Project.AdminId).ToString("D"));
        cmd.Parameters.AddWithValue("$id", k.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$n", k.Name);
        cmd.Parameters.AddWithValue("$k", k.PublicKey);
        cmd.Parameters.AddWithValue("$f", k.Fingerprint);
        cmd.Parameters.AddWithValue("$at", k.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<Keypair?> FindKeypairAsync(string name, CancellationToken cancellationToken) =>
        QueryOneAsync("SELECT id,name,public_key,fingerprint,created_at,project_id FROM keypairs WHERE name=$k OR id=$k", name, ReadKeypair, cancellationToken);

    public Task<IReadOnlyList<Keypair>> ListKeypairsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT id,name,public_key,fingerprint,created_at,project_id FROM keypairs ORDER BY name", null, ReadKeypair, cancellationToken);

    public Task<bool> DeleteKeypairAsync(Guid id, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "DELETE FROM keypairs WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString("D"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    // ---------- agents ----------

    public Task SetAgentTokenAsync(string hostName, string tokenSha256, DateTimeOffset now, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "INSERT INTO agent_tokens(host_name,token_sha256,created_at) VALUES ($n,$t,$at) ON CONFLICT(host_name) DO UPDATE SET token_sha256=$t, created_at=$at");
        cmd.Parameters.AddWithValue("$n", hostName);
        cmd.Parameters.AddWithValue("$t", tokenSha256);
        cmd.Parameters.AddWithValue("$at", now.ToString("O"));
        await cmd.ExecuteNonQueryAsync(cancellationToken);
        return true;
    }, cancellationToken);

    public Task<string?> GetAgentTokenAsync(string hostName, CancellationToken cancellationToken) =>
        QueryOneAsync("SELECT token_sha256 FROM agent_tokens WHERE host_name=$k", hostName, r => r.GetString(0), cancellationToken);

    // ---------- high availability ----------

    public Task<long> GetAdmissionGenerationAsync(CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT generation FROM ha_admission WHERE id=1";
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken))!;
    }, cancellationToken);

    public Task<IReadOnlyList<ReservedServer>> ListReservedServersAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT id,cpu_milli,mem_mib,disk_gib,ha FROM instances WHERE vm_state <> 'deleted' AND (host_id IS NOT NULL OR task = 'scheduling') ORDER BY id", null,
            r => new ReservedServer(new InstanceId(Guid.Parse(r.GetString(0))), new ResourceVector(r.GetInt64(1), r.GetInt64(2), r.GetInt64(3)), r.GetInt64(4) != 0),
            cancellationToken);

    /// <summary>Compare-and-swaps the HA admission generation (true with none given). On false the caller's transaction was rolled back.</summary>
    private static async Task<bool> AdmissionCasAsync(SqliteConnection c, SqliteTransaction tx, long? expected, CancellationToken ct)
    {
        if (expected is not { } g)
        {
            return true;
        }
        await using var cmd = Cmd(c, tx, "UPDATE ha_admission SET generation=generation+1 WHERE id=1 AND generation=$g");
        cmd.Parameters.AddWithValue("$g", g);
        if (await cmd.ExecuteNonQueryAsync(ct) == 1)
        {
            return true;
        }
        await tx.RollbackAsync(ct);
        return false;
    }

    public Task<CasOutcome> DeclareHostFailedAsync(HostId id, long expectedEpoch, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE hosts SET state='failed', epoch=epoch+1, generation=generation+1 WHERE id=$id AND epoch=$e");
        cmd.Parameters.AddWithValue("$id", id.ToString());
        cmd.Parameters.AddWithValue("$e", expectedEpoch);
        if (await cmd.ExecuteNonQueryAsync(cancellationToken) == 1)
        {
            return CasOutcome.Ok;
        }
        return await ExistsAsync(c, tx, "hosts", id.ToString(), cancellationToken) ? CasOutcome.Conflict : CasOutcome.NotFound;
    }, cancellationToken);

    public Task SaveIncidentAsync(Incident incident, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, """
            INSERT INTO incidents(id,host_id,state,detected_at,closed_at,timeline) VALUES ($id,$h,$s,$d,$cl,$t)
            ON CONFLICT(id) DO UPDATE SET state=$s, closed_at=$cl, timeline=$t
            """);
        cmd.Parameters.AddWithValue("$id", incident.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$h", incident.HostId.ToString());
        cmd.Parameters.AddWithValue("$s", incident.State);
        cmd.Parameters.AddWithValue("$d", incident.DetectedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$cl", incident.ClosedAt is { } cl ? cl.ToString("O") : DBNull.Value);
        cmd.Parameters.AddWithValue("$t", JsonSerializer.Serialize(incident.Timeline));
        await cmd.ExecuteNonQueryAsync(cancellationToken);
        return true;
    }, cancellationToken);

    public Task<IReadOnlyList<Incident>> ListIncidentsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT id,host_id,state,detected_at,closed_at,timeline FROM incidents ORDER BY detected_at DESC", null, r => new Incident(
            Guid.Parse(r.GetString(0)), new HostId(Guid.Parse(r.GetString(1))), r.GetString(2), Date(r.GetString(3)),
            r.IsDBNull(4) ? null : Date(r.GetString(4)), JsonSerializer.Deserialize<List<IncidentEvent>>(r.GetString(5)) ?? []), cancellationToken);

    // ---------- migrations ----------

    public Task<CasOutcome> BeginMigrationAsync(Instance updated, MigrationRecord m, long expectedDestinationGeneration, InstanceAction action, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (await ClaimOnHostAsync(c, tx, m.Destination, expectedDestinationGeneration, m.Resources, cancellationToken) is { } refused)
        {
            await tx.RollbackAsync(cancellationToken);
            return refused;
        }
        await using (var ins = Cmd(c, tx, "INSERT INTO migrations(instance_id,source_host_id,dest_host_id,kind,cpu_milli,mem_mib,disk_gib,started_at) VALUES ($i,$s,$d,$k,$c,$m,$g,$at)"))
        {
            ins.Parameters.AddWithValue("$i", m.InstanceId.ToString());
            ins.Parameters.AddWithValue("$s", m.Source.ToString());
            ins.Parameters.AddWithValue("$d", m.Destination.ToString());
            ins.Parameters.AddWithValue("$k", m.Kind);
            ins.Parameters.AddWithValue("$c", m.Resources.MilliVcpus);
            ins.Parameters.AddWithValue("$m", m.Resources.MemoryMib);
            ins.Parameters.AddWithValue("$g", m.Resources.DiskGib);
            ins.Parameters.AddWithValue("$at", m.StartedAt.ToString("O"));
            try
            {
                await ins.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (SqliteException e) when (e.SqliteErrorCode == 19)
            {
                await tx.RollbackAsync(cancellationToken);
                return CasOutcome.Conflict; // already moving
            }
        }
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        await InsertActionAsync(c, tx, action, cancellationToken);
        await MeterAsync(c, tx, updated, cancellationToken);
        return CasOutcome.Ok;
    }, cancellationToken);

    public Task<CasOutcome> FinishMigrationAsync(Instance updated, bool moved, ActionFinish finish, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        MigrationRecord? m = null;
        await using (var sel = Cmd(c, tx, "SELECT instance_id,source_host_id,dest_host_id,kind,cpu_milli,mem_mib,disk_gib,started_at FROM migrations WHERE instance_id=$i"))
        {
            sel.Parameters.AddWithValue("$i", updated.Id.ToString());
            await using var r = await sel.ExecuteReaderAsync(cancellationToken);
            if (await r.ReadAsync(cancellationToken))
            {
                m = ReadMigration(r);
            }
        }
        if (m is null)
        {
            await tx.RollbackAsync(cancellationToken);
            return CasOutcome.NotFound;
        }
        var outcome = await CasInstanceAsync(c, tx, updated, cancellationToken);
        if (outcome != CasOutcome.Ok)
        {
            await tx.RollbackAsync(cancellationToken);
            return outcome;
        }
        // The host that gives its share back: the source when the server moved, else the destination.
        var giveBack = moved ? m.Source : m.Destination;
        await using (var h = Cmd(c, tx, "UPDATE hosts SET used_cpu_milli=used_cpu_milli-$c, used_mem_mib=used_mem_mib-$m, used_disk_gib=used_disk_gib-$d, generation=generation+1 WHERE id=$h"))
        {
            h.Parameters.AddWithValue("$h", giveBack.ToString());
            h.Parameters.AddWithValue("$c", m.Resources.MilliVcpus);
            h.Parameters.AddWithValue("$m", m.Resources.MemoryMib);
            h.Parameters.AddWithValue("$d", m.Resources.DiskGib);
            await h.ExecuteNonQueryAsync(cancellationToken);
        }
        if (moved)
        {
            await using var a = Cmd(c, tx, "UPDATE allocations SET host_id=$h WHERE instance_id=$i");
            a.Parameters.AddWithValue("$h", m.Destination.ToString());
            a.Parameters.AddWithValue("$i", m.InstanceId.ToString());
            await a.ExecuteNonQueryAsync(cancellationToken);
            await using var g = Cmd(c, tx, "UPDATE hosts SET generation=generation+1 WHERE id=$h");
            g.Parameters.AddWithValue("$h", m.Destination.ToString());
            await g.ExecuteNonQueryAsync(cancellationToken);
        }
        await using (var del = Cmd(c, tx, "DELETE FROM migrations WHERE instance_id=$i"))
        {
            del.Parameters.AddWithValue("$i", m.InstanceId.ToString());
            await del.ExecuteNonQueryAsync(cancellationToken);
        }
        await FinishInTxAsync(c, tx, updated.Id, finish, cancellationToken);
        await MeterAsync(c, tx, updated, cancellationToken);
        return CasOutcome.Ok;
    }, cancellationToken);

    public Task<IReadOnlyList<MigrationRecord>> ListMigrationsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT instance_id,source_host_id,dest_host_id,kind,cpu_milli,mem_mib,disk_gib,started_at FROM migrations ORDER BY started_at", null, ReadMigration, cancellationToken);

    private static MigrationRecord ReadMigration(SqliteDataReader r) => new(
        new InstanceId(Guid.Parse(r.GetString(0))), new HostId(Guid.Parse(r.GetString(1))), new HostId(Guid.Parse(r.GetString(2))), r.GetString(3),
        new ResourceVector(r.GetInt64(4), r.GetInt64(5), r.GetInt64(6)), Date(r.GetString(7)));

    // ---------- actions ----------

    private static async Task InsertActionAsync(SqliteConnection c, SqliteTransaction tx, InstanceAction a, CancellationToken ct)
    {
        await using var cmd = Cmd(c, tx, "INSERT INTO instance_actions(instance_id,action,requested_by,started_at,finished_at,result,message) VALUES ($i,$a,$by,$s,$f,$r,$m)");
        cmd.Parameters.AddWithValue("$i", a.InstanceId.ToString());
        cmd.Parameters.AddWithValue("$a", a.Action);
        cmd.Parameters.AddWithValue("$by", a.RequestedBy);
        cmd.Parameters.AddWithValue("$s", a.StartedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$f", a.FinishedAt is { } f ? f.ToString("O") : DBNull.Value);
        cmd.Parameters.AddWithValue("$r", a.Result);
        cmd.Parameters.AddWithValue("$m", (object?)a.Message ?? DBNull.Value);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public Task<IReadOnlyList<InstanceAction>> ListActionsAsync(InstanceId id, CancellationToken cancellationToken) =>
        QueryAsync("SELECT seq,instance_id,action,requested_by,started_at,finished_at,result,message FROM instance_actions WHERE instance_id=$k ORDER BY seq", id.ToString(),
            r => new InstanceAction(r.GetInt64(0), new InstanceId(Guid.Parse(r.GetString(1))), r.GetString(2), r.GetString(3), Date(r.GetString(4)),
                r.IsDBNull(5) ? null : Date(r.GetString(5)), r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7)),
            cancellationToken);

    public Task FinishActionAsync(InstanceId id, string result, string? message, DateTimeOffset at, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await FinishInTxAsync(c, tx, id, new ActionFinish(result, message, at), cancellationToken);
        return 0;
    }, cancellationToken);

    // ---------- dump ----------

    public Task<string> DumpAsync(CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        var sb = new StringBuilder();
        var tables = new List<string>();
        await using (var t = c.CreateCommand())
        {
            // Metric time series change with time (agents report every few seconds), not with requests; the audit log records every request, refused ones too.
            t.CommandText = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'metric_%' AND name <> 'audit_log' ORDER BY name";
            await using var r = await t.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken))
            {
                tables.Add(r.GetString(0));
            }
        }
        foreach (var table in tables)
        {
            sb.Append("## ").AppendLine(table);
            await using var q = c.CreateCommand();
            q.CommandText = $"SELECT * FROM \"{table}\" ORDER BY 1";
            await using var r = await q.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken))
            {
                for (var i = 0; i < r.FieldCount; i++)
                {
                    if (r.GetName(i) == "last_heartbeat")
                    {
                        continue; // liveness, written by heartbeats every second, not by requests
                    }
                    sb.Append(i == 0 ? "" : "|").Append(r.IsDBNull(i) ? "∅" : Convert.ToString(r.GetValue(i), CultureInfo.InvariantCulture));
                }
                sb.AppendLine();
            }
        }
        return sb.ToString();
    }, cancellationToken);

    // ---------- helpers ----------

    private static SqliteCommand Cmd(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd;
    }

    private static async Task Exec(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        await using var cmd = Cmd(c, tx, sql);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<bool> ExistsAsync(SqliteConnection c, SqliteTransaction tx, string table, string id, CancellationToken ct)
    {
        await using var cmd = Cmd(c, tx, $"SELECT COUNT(*) FROM {table} WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id);
        return (long)(await cmd.ExecuteScalarAsync(ct))! > 0;
    }

    private Task<T?> QueryOneAsync<T>(string sql, string key, Func<SqliteDataReader, T> read, CancellationToken ct) where T : class => ReadAsync(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$k", key);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? read(r) : null;
    }, ct);

    private Task<IReadOnlyList<T>> QueryAsync<T>(string sql, string? key, Func<SqliteDataReader, T> read, CancellationToken ct) => ReadAsync<IReadOnlyList<T>>(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        if (key is not null)
        {
            cmd.Parameters.AddWithValue("$k", key);
        }
        var list = new List<T>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            list.Add(read(r));
        }
        return list;
    }, ct);

    private static DateTimeOffset Date(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    public async ValueTask DisposeAsync()
    {
        if (_writer is not null)
        {
            await _writer.DisposeAsync();
        }
        _writeLock.Dispose();
        SqliteConnection.ClearAllPools();
    }
}
