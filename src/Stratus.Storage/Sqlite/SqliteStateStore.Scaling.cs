using System.Text.Json;
using Microsoft.Data.Sqlite;
using Stratus.Core.Compute;

namespace Stratus.Storage.Sqlite;

/// <summary>Scaling groups: one row each, spec and state as JSON, compare-and-swap on version.</summary>
public sealed partial class SqliteStateStore
{
    private static readonly JsonSerializerOptions ScalingJson = new(JsonSerializerDefaults.General);

    private const string ScalingColumns = "id,project_id,name,server_group_id,spec,state,version,created_at,updated_at";

    private static ScalingGroup ReadScalingGroup(SqliteDataReader r) => new(
        Guid.Parse(r.GetString(0)), r.GetString(2), Guid.Parse(r.GetString(1)), Guid.Parse(r.GetString(3)),
        JsonSerializer.Deserialize<ScalingGroupSpec>(r.GetString(4), ScalingJson)!, JsonSerializer.Deserialize<ScalingGroupState>(r.GetString(5), ScalingJson)!,
        r.GetInt64(6), Date(r.GetString(7)), Date(r.GetString(8)));

    public Task<bool> CreateScalingGroupAsync(ScalingGroup g, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, $"INSERT OR IGNORE INTO scaling_groups({ScalingColumns}) VALUES ($id,$p,$n,$sg,$spec,$state,$v,$at,$up)");
        cmd.Parameters.AddWithValue("$id", g.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$p", g.ProjectId.ToString("D"));
        cmd.Parameters.AddWithValue("$n", g.Name);
        cmd.Parameters.AddWithValue("$sg", g.ServerGroupId.ToString("D"));
        cmd.Parameters.AddWithValue("$spec", JsonSerializer.Serialize(g.Spec, ScalingJson));
        cmd.Parameters.AddWithValue("$state", JsonSerializer.Serialize(g.State, ScalingJson));
        cmd.Parameters.AddWithValue("$v", g.Version);
        cmd.Parameters.AddWithValue("$at", g.CreatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$up", g.UpdatedAt.ToString("O"));
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);

    public Task<ScalingGroup?> GetScalingGroupAsync(Guid id, CancellationToken cancellationToken) =>
        QueryOneAsync($"SELECT {ScalingColumns} FROM scaling_groups WHERE id=$k", id.ToString("D"), ReadScalingGroup, cancellationToken);

    public Task<ScalingGroup?> FindScalingGroupAsync(string nameOrId, Guid project, CancellationToken cancellationToken) => ReadAsync(async c =>
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {ScalingColumns} FROM scaling_groups WHERE (id=$k OR name=$k) AND project_id=$p";
        cmd.Parameters.AddWithValue("$k", Guid.TryParse(nameOrId, out var g) ? g.ToString("D") : nameOrId);
        cmd.Parameters.AddWithValue("$p", project.ToString("D"));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        return await r.ReadAsync(cancellationToken) ? ReadScalingGroup(r) : null;
    }, cancellationToken);

    public Task<IReadOnlyList<ScalingGroup>> ListScalingGroupsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {ScalingColumns} FROM scaling_groups ORDER BY name", null, ReadScalingGroup, cancellationToken);

    public Task<CasOutcome> UpdateScalingGroupAsync(ScalingGroup g, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "UPDATE scaling_groups SET spec=$spec, state=$state, updated_at=$up, version=version+1 WHERE id=$id AND version=$v");
        cmd.Parameters.AddWithValue("$id", g.Id.ToString("D"));
        cmd.Parameters.AddWithValue("$spec", JsonSerializer.Serialize(g.Spec, ScalingJson));
        cmd.Parameters.AddWithValue("$state", JsonSerializer.Serialize(g.State, ScalingJson));
        cmd.Parameters.AddWithValue("$up", g.UpdatedAt.ToString("O"));
        cmd.Parameters.AddWithValue("$v", g.Version);
        if (await cmd.ExecuteNonQueryAsync(cancellationToken) == 1)
        {
            return CasOutcome.Ok;
        }
        return await ExistsAsync(c, tx, "scaling_groups", g.Id.ToString("D"), cancellationToken) ? CasOutcome.Conflict : CasOutcome.NotFound;
    }, cancellationToken);

    public Task<bool> DeleteScalingGroupAsync(Guid id, long expectedVersion, CancellationToken cancellationToken) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Cmd(c, tx, "DELETE FROM scaling_groups WHERE id=$id AND version=$v");
        cmd.Parameters.AddWithValue("$id", id.ToString("D"));
        cmd.Parameters.AddWithValue("$v", expectedVersion);
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }, cancellationToken);
}
