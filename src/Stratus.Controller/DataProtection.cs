using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>Start-up configuration of snapshots and backups.</summary>
public sealed class DataProtectionOptions
{
    /// <summary>The backup store: one directory per server, one per backup inside it. Every agent must reach the same path
    /// (on one machine it does; across machines it must be a shared mount). Default DATA/backups.</summary>
    public required string BackupDirectory { get; init; }

    /// <summary>Where restored disks become private images. Default DATA/images.</summary>
    public required string ImageDirectory { get; init; }

    /// <summary>Backups kept per server when the server has no policy of its own (newest first). Default 7; range 1–1000.</summary>
    public int DefaultKeep { get; init; } = 7;

    /// <summary>Longest backup chain (full backup included) when the server's policy does not say; null = the keep count.
    /// Range 1–1000.</summary>
    public int? DefaultFullEvery { get; init; }
}

/// <summary>
/// Snapshots, backups and restores of servers. Each request runs synchronously while the caller waits, one at a time per
/// server; its progress is visible in the snapshot/backup row's status and its outcome in the server's action log.
/// <para>Backups go to <see cref="DataProtectionOptions.BackupDirectory"/>: the agent writes the files and a manifest with
/// each file's SHA-256; the controller records the manifest's own SHA-256 and checks every file once it is written. The
/// first backup of a server is full, later ones incremental (built on the newest backup) until the chain reaches the
/// policy's full_every. Retention keeps the newest N backups as restore points; an older backup that a kept incremental
/// builds on is only marked expired and deleted with its last dependant (never merged: a backup's files never change
/// after they are written). A restore first verifies every checksum of every link of the chain (any mismatch:
/// <c>backup_corrupt</c> naming the link, nothing created), then copies the chain into a private image and creates a new
/// server from it. DataProtection.Backups.cs.</para>
/// </summary>
public sealed partial class DataProtection(IStateStore store, AgentHub hub, CloudService cloud, DataProtectionOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<InstanceId, SemaphoreSlim> _locks = new();

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex SnapshotName();

    private sealed record RestoreSpec(string? KeyName, string? UserData, IReadOnlyList<ForwardDto> Forwards, string StoragePool);

    public static SnapshotDto ToDto(SnapshotRecord s) => new(s.Name, s.WithMemory, s.Status, s.VmStateBytes, s.CreatedAt);


    private static Problem FromAgent(AgentRequestException e) => e.Code switch
    {
        "snapshot_exists" => Problem.Conflict(e.Code, e.Message),
        "snapshot_not_found" => new Problem(e.Code, 404, "snapshot not found", e.Message),
        "invalid_state" => Problem.Conflict(e.Code, e.Message),
        "invalid_spec" => new Problem(e.Code, 422, "The host refused the request", e.Message),
        "snapshots_unsupported" or "backups_unsupported" or "unsupported_request" => Problem.Conflict(e.Code, e.Message),
        _ => new Problem(e.Code, 502, "The host failed the request", e.Message),
    };

    /// <summary>Resolves a server that can take a data-protection request now, with its agent session.</summary>
    private async Task<(Instance? Server, IAgentSession? Session, Problem? Problem)> TargetAsync(string reference, CancellationToken ct)
    {
        var inst = await cloud.ResolveServerAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return (null, null, Problem.NotFound("server", reference));
        }
        if (inst.Task is { } task)
        {
            return (null, null, Problem.Conflict("task_in_progress", $"server '{inst.Name}' is {Names.Of(task)}; retry once that finishes"));
        }
        if (inst.VmState is not (VmState.Active or VmState.Stopped or VmState.Paused))
        {
            return (null, null, Problem.Conflict("invalid_state", $"server '{inst.Name}' is {Names.Of(inst.VmState)}"));
        }
        if (inst.HostId is not { } host || hub.Session(host) is not { } session)
        {
            return (null, null, Problem.Conflict("host_unreachable", $"the agent of server '{inst.Name}''s host is not connected"));
        }
        return (inst, session, null);
    }

    private async Task<T> LockedAsync<T>(InstanceId id, Func<Task<T>> work, CancellationToken ct)
    {
        var gate = _locks.GetOrAdd(id, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            return await work();
        }
        finally
        {
            gate.Release();
        }
    }

    private Task LogAsync(InstanceId id, string action, string requestedBy, DateTimeOffset started, string result, string? message, CancellationToken ct) =>
        store.RecordActionAsync(new InstanceAction(0, id, action, requestedBy, started, time.GetUtcNow(), result, message), ct);

    // ---------------- snapshots ----------------

    public async Task<Outcome<SnapshotDto>> CreateSnapshotAsync(string reference, CreateSnapshotRequest r, string requestedBy, CancellationToken ct)
    {
        if (r.Name is null || !SnapshotName().IsMatch(r.Name))
        {
            return Problem.Validation([new FieldError("name", r.Name is null ? "required" : "invalid", "1–64 letters, digits, '.', '_' or '-'")]);
        }
        var (inst, session, problem) = await TargetAsync(reference, ct);
        if (problem is not null)
        {
            return problem;
        }
        return await LockedAsync<Outcome<SnapshotDto>>(inst!.Id, async () =>
        {
            if ((await store.ListSnapshotsAsync(inst.Id, ct)).Any(s => s.Name == r.Name))
            {
                return Problem.Conflict("snapshot_exists", $"server '{inst.Name}' already has a snapshot named '{r.Name}'");
            }
            var started = time.GetUtcNow();
            var withMemory = r.WithMemory ?? false;
            await store.UpsertSnapshotAsync(new SnapshotRecord(inst.Id, r.Name, withMemory, "creating", 0, started), ct);
            try
            {
                var s = await session!.CreateSnapshotAsync(inst.Id, r.Name, withMemory, ct);
                var record = new SnapshotRecord(inst.Id, s.Name, s.WithMemory, "available", s.VmStateBytes, s.CreatedAt);
                await store.UpsertSnapshotAsync(record, ct);
                await LogAsync(inst.Id, "snapshot", requestedBy, started, "success", $"snapshot '{r.Name}' ({(withMemory ? "disk and memory" : "disk only")})", ct);
                return ToDto(record);
            }
            catch (AgentRequestException e)
            {
                await store.DeleteSnapshotRecordAsync(inst.Id, r.Name, CancellationToken.None);
                await LogAsync(inst.Id, "snapshot", requestedBy, started, "error", $"snapshot '{r.Name}': {e.Code}: {e.Message}", CancellationToken.None);
                return FromAgent(e);
            }
        }, ct);
    }

    public async Task<Outcome<IReadOnlyList<SnapshotDto>>> ListSnapshotsAsync(string reference, CancellationToken ct)
    {
        var inst = await cloud.ResolveServerAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return Problem.NotFound("server", reference);
        }
        return (await store.ListSnapshotsAsync(inst.Id, ct)).Select(ToDto).ToList();
    }

    public async Task<Outcome<SnapshotDto>> RevertSnapshotAsync(string reference, string name, string requestedBy, CancellationToken ct)
    {
        var (inst, session, problem) = await TargetAsync(reference, ct);
        if (problem is not null)
        {
            return problem;
        }
        return await LockedAsync<Outcome<SnapshotDto>>(inst!.Id, async () =>
        {
            if ((await store.ListSnapshotsAsync(inst.Id, ct)).FirstOrDefault(s => s.Name == name) is not { } snap)
            {
                return Problem.NotFound("snapshot", name);
            }
            var started = time.GetUtcNow();
            await store.UpsertSnapshotAsync(snap with { Status = "reverting" }, ct);
            try
            {
                await session!.RevertSnapshotAsync(inst.Id, name, ct);
                await LogAsync(inst.Id, "revert-snapshot", requestedBy, started, "success", $"reverted to snapshot '{name}'", ct);
                return ToDto(snap);
            }
            catch (AgentRequestException e)
            {
                await LogAsync(inst.Id, "revert-snapshot", requestedBy, started, "error", $"snapshot '{name}': {e.Code}: {e.Message}", CancellationToken.None);
                return FromAgent(e);
            }
            finally
            {
                await store.UpsertSnapshotAsync(snap, CancellationToken.None);
            }
        }, ct);
    }

    public async Task<Outcome<bool>> DeleteSnapshotAsync(string reference, string name, string requestedBy, CancellationToken ct)
    {
        var (inst, session, problem) = await TargetAsync(reference, ct);
        if (problem is not null)
        {
            return problem;
        }
        return await LockedAsync(inst!.Id, async () =>
        {
            if ((await store.ListSnapshotsAsync(inst.Id, ct)).FirstOrDefault(s => s.Name == name) is not { } snap)
            {
                return (Outcome<bool>)Problem.NotFound("snapshot", name);
            }
            var started = time.GetUtcNow();
            await store.UpsertSnapshotAsync(snap with { Status = "deleting" }, ct);
            try
            {
                await session!.DeleteSnapshotAsync(inst.Id, name, ct);
                await store.DeleteSnapshotRecordAsync(inst.Id, name, ct);
                await LogAsync(inst.Id, "delete-snapshot", requestedBy, started, "success", $"deleted snapshot '{name}'", ct);
                return new Outcome<bool>(true, null);
            }
            catch (AgentRequestException e)
            {
                await store.UpsertSnapshotAsync(snap, CancellationToken.None);
                await LogAsync(inst.Id, "delete-snapshot", requestedBy, started, "error", $"snapshot '{name}': {e.Code}: {e.Message}", CancellationToken.None);
                return FromAgent(e);
            }
        }, ct);
    }
}
