using Microsoft.Data.Sqlite;
using Stratus.Core.Compute;
using Stratus.Core.Identity;

namespace Stratus.Storage.Sqlite;

/// <summary>Projects, quotas, users, roles and bearer credentials.</summary>
public sealed partial class SqliteStateStore
{
    private const string ProjectCols = "id,name,q_instances,q_vcpus,q_ram_mib,q_disk_gib,q_snapshots,q_backups,created_at";

    private static Project ReadProject(SqliteDataReader r) => new(
        Guid.Parse(r.GetString(0)), r.GetString(1),
        new Quotas((int)r.GetInt64(2), (int)r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), (int)r.GetInt64(6), (int)r.GetInt64(7)),
        Date(r.GetString(8)));

    /// <summary>
    /// The quota check of a create, inside the create's write transaction: the store has one writer, so
    /// concurrent creates are serialised here and cannot overshoot together.
    /// </summary>
    private static async Task<bool> WithinQuotaAsync(SqliteConnection c, SqliteTransaction tx, IReadOnlyList<Instance> adding, CancellationToken ct)
    {
        foreach (var group in adding.GroupBy(i => i.Project))
        {
            var quotas = Quotas.Default;
            await using (var q = Cmd(c, tx, $"SELECT {ProjectCols} FROM projects WHERE id=$p"))
            {
                q.Parameters.AddWithValue("$p", group.Key.ToString("D"));
                await using var r = await q.ExecuteReaderAsync(ct);
                if (await r.ReadAsync(ct))
                {
                    quotas = ReadProject(r).Quotas;
                }
            }
            var (n, cpu, mem, disk) = await LiveUseAsync(c, tx, group.Key, ct);
            n += group.Count();
            cpu += group.Sum(i => i.Resources.MilliVcpus);
            mem += group.Sum(i => i.Resources.MemoryMib);
            disk += group.Sum(i => i.Resources.DiskGib);
            if (n > quotas.Instances || cpu > (long)quotas.Vcpus * 1000 || mem > quotas.RamMib || disk > quotas.DiskGib)
            {
                await tx.RollbackAsync(ct);
                return false;
            }
        }
        return true;
    }

    /// <summary>The quota check of a resize, inside its write transaction: only the dimensions that grow are checked, so a
    /// project already over a lowered quota may still shrink.</summary>
    private static async Task<bool> WithinQuotaDeltaAsync(SqliteConnection c, SqliteTransaction tx, Guid project, Stratus.Core.Resources.ResourceVector delta, CancellationToken ct)
    {
        var quotas = Quotas.Default;
        await using (var q = Cmd(c, tx, $"SELECT {ProjectCols} FROM projects WHERE id=$p"))
        {
            q.Parameters.AddWithValue("$p", project.ToString("D"));
            await using var r = await q.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct))
            {
                quotas = ReadProject(r).Quotas;
            }
        }
        var (_, cpu, mem, disk) = await LiveUseAsync(c, tx, project, ct);
        return (delta.MilliVcpus <= 0 || cpu + delta.MilliVcpus <= (long)quotas.Vcpus * 1000)
            && (delta.MemoryMib <= 0 || mem + delta.MemoryMib <= quotas.RamMib)
            && (delta.DiskGib <= 0 || disk + delta.DiskGib <= quotas.DiskGib);
    }

    private static async Task<(long N, long Cpu, long Mem, long Disk)> LiveUseAsync(SqliteConnection c, SqliteTransaction? tx, Guid project, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT COUNT(*), COALESCE(SUM(cpu_milli),0), COALESCE(SUM(mem_mib),0), COALESCE(SUM(disk_gib),0) FROM instances WHERE project_id=$p AND vm_state <> 'deleted'";
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    public Task<bool> CreateProjectAsync(Project p, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, $"INSERT OR IGNORE INTO projects({ProjectCols}) VALUES ($id,$n,$qi,$qc,$qr,$qd,$qs,$qb,$at)");
        cmd.Parameters.AddWithValue("$id", p.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$n", p.Name);
        BindQuotas(cmd, p.Quotas);
        cmd.Parameters.AddWithValue("$at", p.CreatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    private static void BindQuotas(SqliteCommand cmd, Quotas q)
    {
        cmd.Parameters.AddWithValue("$qi", q.Instances);
        cmd.Parameters.AddWithValue("$qc", q.Vcpus);
        cmd.Parameters.AddWithValue("$qr", q.RamMib);
        cmd.Parameters.AddWithValue("$qd", q.DiskGib);
        cmd.Parameters.AddWithValue("$qs", q.Snapshots);
        cmd.Parameters.AddWithValue("$qb", q.Backups);
    }

    public Task<Project?> GetProjectAsync(Guid id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {ProjectCols} FROM projects WHERE id=$k", id.ToString("D"), ReadProject, cancellationToken);

    public Task<Project?> FindProjectAsync(string nameOrId, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {ProjectCols} FROM projects WHERE name=$k OR id=$k", nameOrId, ReadProject, cancellationToken);

    public Task<IReadOnlyList<Project>> ListProjectsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {ProjectCols} FROM projects ORDER BY name", null, ReadProject, cancellationToken);

    public Task<bool> SetQuotasAsync(Guid project, Quotas quotas, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE projects SET q_instances=$qi,q_vcpus=$qc,q_ram_mib=$qr,q_disk_gib=$qd,q_snapshots=$qs,q_backups=$qb WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", project.ToString("D"));
        BindQuotas(cmd, quotas);
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<ProjectUsage> GetProjectUsageAsync(Guid project, CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        var (n, cpu, mem, disk) = await LiveUseAsync(c, null, project, cancellationToken);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT (SELECT COUNT(*) FROM snapshots s JOIN instances i ON i.id = s.instance_id WHERE i.project_id=$p),
                   (SELECT COUNT(*) FROM backups b JOIN instances i ON i.id = b.instance_id WHERE i.project_id=$p AND b.status <> 'error')
            """;
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        await r.ReadAsync(cancellationToken);
        return new ProjectUsage((int)n, (int)((cpu + 999) / 1000), mem, disk, (int)r.GetInt64(0), (int)r.GetInt64(1));
    }, cancellationToken);

    private static User ReadUser(SqliteDataReader r) =>
        new(Guid.Parse(r.GetString(0)), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), Date(r.GetString(4)), r.GetInt64(3) != 0);

    public Task<bool> CreateUserAsync(User u, RoleAssignment? role, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using (var cmd = Cmd(c, tx, "INSERT OR IGNORE INTO users(id,name,password_hash,disabled,created_at) VALUES ($id,$n,$h,$d,$at)"))
        {
            cmd.Parameters.AddWithValue("$id", u.Id.ToString("D"));
            cmd.Parameters.AddWithValue("$n", u.Name);
            cmd.Parameters.AddWithValue("$h", (object?)u.PasswordHash ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$d", u.Disabled ? 1 : 0);
            cmd.Parameters.AddWithValue("$at", u.CreatedAt.ToString("O"));
            if (await cmd.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                return false;
            }
        }
        if (role is not null)
        {
            await UpsertRoleAsync(c, tx, role.UserId, role.ProjectId, role.Role, cancellationToken);
        }
        return true;
    }, cancellationToken);

    public Task<User?> FindUserAsync(string nameOrId, CancellationToken cancellationToken) =>
        QueryOneAsync("SELECT id,name,password_hash,disabled,created_at FROM users WHERE name=$k OR id=$k", nameOrId, ReadUser, cancellationToken);

    public Task<IReadOnlyList<User>> ListUsersAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT id,name,password_hash,disabled,created_at FROM users ORDER BY name", null, ReadUser, cancellationToken);

    public Task<int> CountUsersAsync(CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM users";
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }, cancellationToken);

    public Task SetPasswordHashAsync(Guid user, string hash, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE users SET password_hash=$h WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", user.ToString("D"));
        cmd.Parameters.AddWithValue("$h", hash);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task SetRoleAsync(Guid user, Guid project, Role? role, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        if (role is { } r)
        {
            await UpsertRoleAsync(c, tx, user, project, r, cancellationToken);
            return 0;
        }
        await using var cmd = Cmd(c, tx, "DELETE FROM role_assignments WHERE user_id=$u AND project_id=$p");
        cmd.Parameters.AddWithValue("$u", user.ToString("D"));
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    private static async Task UpsertRoleAsync(SqliteConnection c, SqliteTransaction tx, Guid user, Guid project, Role role, CancellationToken ct)
    {
        await using var cmd = Cmd(c, tx, "INSERT INTO role_assignments(user_id,project_id,role) VALUES ($u,$p,$r) ON CONFLICT(user_id,project_id) DO UPDATE SET role=$r");
        cmd.Parameters.AddWithValue("$u", user.ToString("D"));
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        cmd.Parameters.AddWithValue("$r", role.ToString().ToLowerInvariant());
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public Task<IReadOnlyList<RoleAssignment>> ListRolesAsync(Guid? user, Guid? project, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<RoleAssignment>>(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT user_id, project_id, role FROM role_assignments WHERE ($u IS NULL OR user_id=$u) AND ($p IS NULL OR project_id=$p) ORDER BY project_id, user_id";
        cmd.Parameters.AddWithValue("$u", user is { } u ? u.ToString("D") : DBNull.Value);
        cmd.Parameters.AddWithValue("$p", project is { } p ? p.ToString("D") : DBNull.Value);
        var list = new List<RoleAssignment>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await r.ReadAsync(cancellationToken))
        {
            list.Add(new RoleAssignment(Guid.Parse(r.GetString(0)), Guid.Parse(r.GetString(1)), Enum.Parse<Role>(r.GetString(2), true)));
        }
        return list;
    }, cancellationToken);

    private const string CredentialCols = "id,sha256,user_id,project_id,kind,name,created_at,expires_at,revoked_at";

    private static Credential ReadCredential(SqliteDataReader r) => new(
        Guid.Parse(r.GetString(0)), r.GetString(1), Guid.Parse(r.GetString(2)), Guid.Parse(r.GetString(3)), r.GetString(4),
        r.IsDBNull(5) ? null : r.GetString(5), Date(r.GetString(6)),
        r.IsDBNull(7) ? null : Date(r.GetString(7)), r.IsDBNull(8) ? null : Date(r.GetString(8)));

    public Task CreateCredentialAsync(Credential k, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, $"INSERT INTO credentials({CredentialCols}) VALUES ($id,$h,$u,$p,$k,$n,$at,$exp,NULL)");
        cmd.Parameters.AddWithValue("$id", k.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$h", k.Sha256);
        cmd.Parameters.AddWithValue("$u", k.UserId.ToString("D"));
        cmd.Parameters.AddWithValue("$p", k.ProjectId.ToString("D"));
        cmd.Parameters.AddWithValue("$k", k.Kind);
        cmd.Parameters.AddWithValue("$n", (object?)k.Name ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$at", k.CreatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$exp", k.ExpiresAt is { } e ? e.ToString("O") : DBNull.Value);
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public Task<Credential?> FindCredentialAsync(string sha256, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {CredentialCols} FROM credentials WHERE sha256=$k", sha256, ReadCredential, cancellationToken);

    public Task<IReadOnlyList<Credential>> ListCredentialsAsync(Guid user, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {CredentialCols} FROM credentials WHERE user_id=$k ORDER BY created_at", user.ToString("D"), ReadCredential, cancellationToken);

    public Task<bool> RevokeCredentialAsync(Guid id, DateTimeOffset at, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE credentials SET revoked_at=COALESCE(revoked_at, $at) WHERE id=$id");
        cmd.Parameters.AddWithValue("$id", id.ToString("D"));
        cmd.Parameters.AddWithValue("$at", at.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);
}
