using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using Stratus.Core.Backups;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Validation;
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
}

/// <summary>
/// Snapshots, backups and restores of servers. Each request runs synchronously while the caller waits, one at a time per
/// server; its progress is visible in the snapshot/backup row's status and its outcome in the server's action log.
/// <para>Backups go to <see cref="DataProtectionOptions.BackupDirectory"/>: the agent writes the files and a manifest with
/// each file's SHA-256; the controller records the manifest's own SHA-256. Retention deletes the oldest backups beyond the
/// server's keep count. A restore first verifies every checksum (any mismatch: <c>backup_corrupt</c>, nothing created),
/// then copies the backup into a private image and creates a new server from it.</para>
/// </summary>
public sealed partial class DataProtection(IStateStore store, AgentHub hub, CloudService cloud, DataProtectionOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<InstanceId, SemaphoreSlim> _locks = new();

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex SnapshotName();

    private sealed record RestoreSpec(string? KeyName, string? UserData, IReadOnlyList<ForwardDto> Forwards, string StoragePool);

    public static SnapshotDto ToDto(SnapshotRecord s) => new(s.Name, s.WithMemory, s.Status, s.VmStateBytes, s.CreatedAt);

    public static BackupDto ToDto(BackupRecord b) => new(b.Id.ToString("D"), b.InstanceId.ToString(), b.InstanceName, b.Kind, b.ParentId?.ToString("D"),
        b.Status, b.SizeBytes, b.ManifestSha256, b.Error, b.CreatedAt, b.FinishedAt);

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

    // ---------------- backups ----------------

    public async Task<Outcome<BackupDto>> BackupAsync(string reference, CreateBackupRequest r, string requestedBy, CancellationToken ct)
    {
        if (r.Keep is { } k and (< 1 or > 1000))
        {
            return Problem.Validation([new FieldError("keep", "out_of_range", "must be between 1 and 1000")]);
        }
        var (inst, session, problem) = await TargetAsync(reference, ct);
        if (problem is not null)
        {
            return problem;
        }
        return await LockedAsync<Outcome<BackupDto>>(inst!.Id, async () =>
        {
            var started = time.GetUtcNow();
            var previous = (await store.ListBackupsAsync(inst.Id, ct)).LastOrDefault(b => b.Status == "available");
            var id = Guid.NewGuid();
            var dir = Path.Combine(options.BackupDirectory, inst.Id.ToString(), id.ToString("D"));
            var spec = new RestoreSpec(inst.KeyName, inst.UserData, [.. (inst.Forwards ?? []).Select(f => new ForwardDto(0, f.GuestPort))], inst.StoragePool);
            var record = new BackupRecord(id, inst.Id, inst.Name, inst.FlavorId, inst.ImageId, "full", null, "creating", dir, 0, null,
                JsonSerializer.Serialize(spec, WireJson.Options), null, started, null);
            await store.UpsertBackupAsync(record, ct);
            try
            {
                var result = await session!.BackupAsync(inst.Id, dir, previous?.Directory, ct);
                var manifestSum = await BackupFiles.Sha256Async(Path.Combine(dir, BackupFiles.ManifestName), ct);
                record = record with
                {
                    Kind = result.Kind,
                    ParentId = result.Kind == "incremental" ? previous?.Id : null,
                    Status = "available",
                    SizeBytes = result.SizeBytes,
                    ManifestSha256 = manifestSum,
                    FinishedAt = time.GetUtcNow(),
                };
                await store.UpsertBackupAsync(record, ct);
            }
            catch (Exception e) when (e is AgentRequestException or IOException)
            {
                var (code, message) = e is AgentRequestException a ? (a.Code, a.Message) : ("backup_failed", e.Message);
                await store.UpsertBackupAsync(record with { Status = "error", Error = $"{code}: {message}", FinishedAt = time.GetUtcNow() }, CancellationToken.None);
                await LogAsync(inst.Id, "backup", requestedBy, started, "error", $"backup {id}: {code}: {message}", CancellationToken.None);
                return e is AgentRequestException ae ? FromAgent(ae) : new Problem(code, 502, "The backup failed", message);
            }
            if (r.Keep is { } keepNow)
            {
                await store.SetBackupPolicyAsync(inst.Id, keepNow, ct);
            }
            var pruned = await ApplyRetentionAsync(inst.Id, ct);
            await LogAsync(inst.Id, "backup", requestedBy, started, "success",
                $"{record.Kind} backup {id} ({record.SizeBytes} bytes){(pruned > 0 ? $"; retention removed {pruned} older" : "")}", ct);
            return ToDto(record);
        }, ct);
    }

    /// <summary>Deletes the oldest available backups of a server beyond its keep count (never one a kept incremental builds on).</summary>
    private async Task<int> ApplyRetentionAsync(InstanceId id, CancellationToken ct)
    {
        var keep = await store.GetBackupPolicyAsync(id, ct) ?? options.DefaultKeep;
        var all = await store.ListBackupsAsync(id, ct);
        var available = all.Where(b => b.Status == "available").ToList();
        var kept = available.Skip(Math.Max(0, available.Count - keep)).ToList();
        var needed = new HashSet<Guid>(kept.Select(b => b.Id));
        foreach (var b in kept)
        {
            for (var p = b.ParentId; p is { } pid && needed.Add(pid); p = all.FirstOrDefault(x => x.Id == pid)?.ParentId)
            {
            }
        }
        var removed = 0;
        foreach (var b in available.Where(b => !needed.Contains(b.Id)))
        {
            try
            {
                if (Directory.Exists(b.Directory))
                {
                    Directory.Delete(b.Directory, recursive: true);
                }
            }
            catch (IOException)
            {
                continue;
            }
            await store.DeleteBackupAsync(b.Id, ct);
            removed++;
        }
        return removed;
    }

    public async Task<IReadOnlyList<BackupDto>> ListBackupsAsync(CancellationToken ct) =>
        [.. (await store.ListBackupsAsync(null, ct)).Select(ToDto)];

    /// <summary>Verifies a backup: every file's checksum against the manifest and the manifest's against the store.</summary>
    public async Task<IReadOnlyList<string>> VerifyAsync(BackupRecord b, CancellationToken ct)
    {
        var manifestPath = Path.Combine(b.Directory, BackupFiles.ManifestName);
        if (!File.Exists(manifestPath))
        {
            return [$"{BackupFiles.ManifestName} is missing"];
        }
        var problems = new List<string>();
        if (b.ManifestSha256 is { } expected && await BackupFiles.Sha256Async(manifestPath, ct) is var actual && !string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"{BackupFiles.ManifestName} has SHA-256 {actual}, recorded {expected}");
        }
        problems.AddRange(await BackupFiles.VerifyAsync(b.Directory, ct));
        return problems;
    }

    public async Task<Outcome<Instance>> RestoreAsync(string backupReference, RestoreBackupRequest r, string requestedBy, CancellationToken ct, Stratus.Core.Identity.Principal? caller = null)
    {
        if (!Guid.TryParse(backupReference, out var bid) || await store.GetBackupAsync(bid, ct) is not { } backup)
        {
            return Problem.NotFound("backup", backupReference);
        }
        if (string.IsNullOrEmpty(r.Name))
        {
            return Problem.Validation([new FieldError("name", "required", "is required")]);
        }
        if (NameRules.Check(r.Name) is { } bad)
        {
            return Problem.Validation([new FieldError("name", "invalid", bad)]);
        }
        if (backup.Status != "available")
        {
            return Problem.Conflict("backup_unavailable", $"backup {backup.Id} is {backup.Status}");
        }
        if (await store.FindInstanceAsync(r.Name, caller?.ProjectId ?? Stratus.Core.Identity.Project.AdminId, ct) is { IsLive: true })
        {
            return Problem.Conflict("name_in_use", $"a server named '{r.Name}' already exists");
        }
        var problems = await VerifyAsync(backup, ct);
        if (problems.Count > 0)
        {
            return new Problem("backup_corrupt", 422, "The backup is damaged and was not restored", string.Join("; ", problems));
        }
        var manifest = BackupFiles.ReadManifest(backup.Directory)!;
        if (manifest.Kind != "full")
        {
            return Problem.Conflict("backup_unsupported", "restoring incremental backups is not implemented");
        }
        var spec = JsonSerializer.Deserialize<RestoreSpec>(backup.SpecJson, WireJson.Options)!;
        var imageId = ImageId.New();
        var imageDir = Path.Combine(options.ImageDirectory, "restored-" + imageId.Value.ToString("N"));
        Directory.CreateDirectory(imageDir);
        try
        {
            var kernel = manifest.Files.Any(f => f.Role == "kernel");
            foreach (var f in manifest.Files)
            {
                File.Copy(Path.Combine(backup.Directory, f.Name), Path.Combine(imageDir, f.Role == "sim" ? "disk.qcow2" : f.Name));
            }
            // The copy is what the new server boots from: check it again (a disk that rotted between verify and copy).
            foreach (var f in manifest.Files)
            {
                var copy = Path.Combine(imageDir, f.Role == "sim" ? "disk.qcow2" : f.Name);
                if (!string.Equals(await BackupFiles.Sha256Async(copy, ct), f.Sha256, StringComparison.OrdinalIgnoreCase))
                {
                    throw new IOException($"{f.Name} changed while it was copied");
                }
            }
            var path = kernel ? imageDir : Path.Combine(imageDir, "disk.qcow2");
            var image = new Image(imageId, $"{r.Name}-restored-{imageId.Value.ToString("N")[..8]}", kernel ? "kernel" : "qcow2", ImageStatus.Active,
                new FileInfo(Path.Combine(imageDir, "disk.qcow2")).Length, null, path, false, time.GetUtcNow(), caller?.ProjectId ?? Stratus.Core.Identity.Project.AdminId);
            if (!await store.CreateImageAsync(image, ct))
            {
                throw new IOException("could not register the restored image");
            }
            var request = new CreateServerRequest(r.Name, backup.FlavorId.ToString(), imageId.ToString(), spec.UserData, r.KeyName ?? spec.KeyName, null,
                r.Forwards ?? spec.Forwards) { StoragePool = spec.StoragePool };
            var created = await cloud.CreateServerAsync(request, null, requestedBy, ct, caller);
            if (!created.Ok)
            {
                await store.DeleteImageAsync(imageId, CancellationToken.None);
                Directory.Delete(imageDir, recursive: true);
                return created.Problem!;
            }
            var server = created.Value.Server;
            await LogAsync(server.Id, "restore", requestedBy, time.GetUtcNow(), "success", $"from backup {backup.Id} of server '{backup.InstanceName}'", ct);
            return server;
        }
        catch (IOException e)
        {
            await store.DeleteImageAsync(imageId, CancellationToken.None);
            if (Directory.Exists(imageDir))
            {
                Directory.Delete(imageDir, recursive: true);
            }
            return new Problem("backup_corrupt", 422, "The backup could not be restored", e.Message);
        }
    }
}
