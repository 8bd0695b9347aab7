using System.Text.Json;
using Stratus.Core.Backups;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Protocol;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// Backups: full and incremental, retention, delete, verify, restore.
/// <para><b>Chains.</b> A backup is full (self-contained) or incremental (only what changed since its parent; its disk's
/// backing file is the parent's). Mode "auto" builds on the server's newest available backup unless the chain has reached
/// the policy's full_every; the driver may still write a full backup when it cannot continue the chain (no change-tracking
/// bitmap: migrated, reverted, first backup on a new disk) and says why — recorded as the backup's full_reason.</para>
/// <para><b>Retention</b> keeps the newest <c>keep</c> available backups as restore points. Older ones, and backups deleted
/// on request, that a remaining incremental builds on are marked <c>expired</c> (not restorable, files untouched) and
/// removed together with their last dependant; nothing is merged or rewritten, so a backup's checksums hold for its whole
/// life. Storage is bounded by full_every: once a newer full backup and its incrementals are the restore points, the whole
/// older chain expires and goes.</para>
/// <para><b>Verification</b> of a backup covers its whole chain, oldest link first: each link's manifest against the SHA-256
/// the controller recorded, each file against the manifest, and each incremental's recorded parent against its manifest.
/// A restore refuses any problem (<c>backup_corrupt</c>, naming every bad link) before anything is created.</para>
/// </summary>
public sealed partial class DataProtection
{
    private const string Available = "available";
    private const string Expired = "expired";
    private static readonly string[] Modes = ["auto", "full", "incremental"];

    public static BackupDto ToDto(BackupRecord b, int chainLength = 1) => new(b.Id.ToString("D"), b.InstanceId.ToString(), b.InstanceName, b.Kind,
        b.ParentId?.ToString("D"), b.Status, b.SizeBytes, b.ManifestSha256, b.Error, b.CreatedAt, b.FinishedAt, b.FullReason, b.ExpiredReason,
        b.VerifiedAt is null ? "never" : b.VerifyError is null ? "ok" : "corrupt", b.VerifiedAt, b.VerifyError, chainLength);

    private static int ChainLength(BackupRecord b, IReadOnlyDictionary<Guid, BackupRecord> byId)
    {
        var n = 1;
        for (var p = b.ParentId; p is { } pid && byId.TryGetValue(pid, out var parent) && n <= byId.Count; p = parent.ParentId)
        {
            n++;
        }
        return n;
    }

    private async Task<BackupPolicy> PolicyAsync(InstanceId id, CancellationToken ct) =>
        await store.GetBackupPolicyAsync(id, ct) ?? new BackupPolicy(options.DefaultKeep, options.DefaultFullEvery);

    private static int FullEvery(BackupPolicy p) => p.FullEvery ?? p.Keep;

    public async Task<Outcome<BackupDto>> BackupAsync(string reference, CreateBackupRequest r, string requestedBy, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Keep is < 1 or > 1000)
        {
            errors.Add(new FieldError("keep", "out_of_range", "must be between 1 and 1000"));
        }
        if (r.Mode is { } m && !Modes.Contains(m))
        {
            errors.Add(new FieldError("mode", "invalid", "must be auto, full or incremental"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var (inst, session, problem) = await TargetAsync(reference, ct);
        if (problem is not null)
        {
            return problem;
        }
        return await LockedAsync<Outcome<BackupDto>>(inst!.Id, async () =>
        {
            var started = time.GetUtcNow();
            var all = await store.ListBackupsAsync(inst.Id, ct);
            var byId = all.ToDictionary(b => b.Id);
            var policy = await PolicyAsync(inst.Id, ct);
            if (r.Keep is { } keepNow)
            {
                policy = policy with { Keep = keepNow };
            }
            var mode = r.Mode ?? "auto";
            var previous = all.LastOrDefault(b => b.Status == Available);
            BackupRecord? parent = null;
            string? reason = null;
            if (mode != "full")
            {
                if (previous is null)
                {
                    reason = mode == "incremental" ? "the server has no available backup to build on" : null;
                }
                else if (mode == "auto" && ChainLength(previous, byId) is var length && length >= FullEvery(policy))
                {
                    reason = $"the chain has {length} backups (policy: a full backup at least every {FullEvery(policy)})";
                }
                else
                {
                    parent = previous;
                }
            }

            var id = Guid.NewGuid();
            var dir = Path.Combine(options.BackupDirectory, inst.Id.ToString(), id.ToString("D"));
            var spec = new RestoreSpec(inst.KeyName, inst.UserData, [.. (inst.Forwards ?? []).Select(f => new ForwardDto(0, f.GuestPort))], inst.StoragePool);
            var record = new BackupRecord(id, inst.Id, inst.Name, inst.FlavorId, inst.ImageId, BackupKinds.Full, null, "creating", dir, 0, null,
                JsonSerializer.Serialize(spec, WireJson.Options), null, started, null);
            await store.UpsertBackupAsync(record, ct);
            try
            {
                var result = await session!.BackupAsync(inst.Id, dir, parent?.Directory, ct);
                var manifest = BackupFiles.ReadManifest(dir) ?? throw new IOException("the host wrote no readable manifest");
                var incremental = manifest.Kind == BackupKinds.Incremental;
                if (incremental && (parent is null || manifest.Parent != Path.GetFileName(parent.Directory)))
                {
                    throw new IOException($"the host wrote an incremental on '{manifest.Parent}', which is not the parent asked for");
                }
                record = record with
                {
                    Kind = manifest.Kind,
                    ParentId = incremental ? parent!.Id : null,
                    SizeBytes = result.SizeBytes,
                    ManifestSha256 = await BackupFiles.Sha256Async(Path.Combine(dir, BackupFiles.ManifestName), ct),
                    FullReason = incremental ? null : result.FullReason ?? reason,
                };
                // Read back through the controller's own view of the store (a shared mount when there are several hosts).
                var problems = await VerifyAsync(record, ct);
                record = record with { VerifiedAt = time.GetUtcNow(), VerifyError = problems.Count > 0 ? string.Join("; ", problems) : null };
                if (problems.Count > 0)
                {
                    throw new IOException("the controller could not verify what the host wrote: " + record.VerifyError);
                }
                record = record with { Status = Available, FinishedAt = time.GetUtcNow() };
                await store.UpsertBackupAsync(record, ct);
            }
            catch (Exception e) when (e is AgentRequestException or IOException)
            {
                var (code, message) = e is AgentRequestException a ? (a.Code, a.Message) : ("backup_failed", e.Message);
                await store.UpsertBackupAsync(record with { Status = "error", Error = $"{code}: {message}", FinishedAt = time.GetUtcNow() }, CancellationToken.None);
                await LogAsync(inst.Id, "backup", requestedBy, started, "error", $"backup {id}: {code}: {message}", CancellationToken.None);
                return e is AgentRequestException ae ? FromAgent(ae) : new Problem(code, 502, "The backup failed", message);
            }
            if (r.Keep is not null)
            {
                await store.SetBackupPolicyAsync(inst.Id, policy, ct);
            }
            var (expired, removed) = await ApplyRetentionAsync(inst.Id, policy, ct);
            var what = record.Kind == BackupKinds.Incremental
                ? $"incremental backup {id} on {record.ParentId} ({record.SizeBytes} bytes)"
                : $"full backup {id} ({record.SizeBytes} bytes){(record.FullReason is { } fr ? $"; not incremental: {fr}" : "")}";
            var retention = expired + removed > 0 ? $"; retention expired {expired}, removed {removed}" : "";
            await LogAsync(inst.Id, "backup", requestedBy, started, "success", what + retention, ct);
            byId[record.Id] = record;
            return ToDto(record, ChainLength(record, byId));
        }, ct);
    }

    /// <summary>
    /// Marks the oldest available backups beyond the keep count expired, then removes every expired backup nothing builds
    /// on. Returns how many were marked and how many removed.
    /// </summary>
    private async Task<(int Expired, int Removed)> ApplyRetentionAsync(InstanceId id, BackupPolicy policy, CancellationToken ct)
    {
        var points = (await store.ListBackupsAsync(id, ct)).Where(b => b.Status == Available).ToList();
        var expired = 0;
        foreach (var b in points.Take(Math.Max(0, points.Count - policy.Keep)))
        {
            await store.UpsertBackupAsync(b with
            {
                Status = Expired,
                ExpiredReason = $"beyond the keep count ({policy.Keep}) at {time.GetUtcNow():u}; kept while newer incrementals build on it",
            }, ct);
            expired++;
        }
        return (expired, await CollectAsync(id, ct));
    }

    /// <summary>Removes expired backups that no backup builds on, until none is left (an expired chain goes tip first).</summary>
    private async Task<int> CollectAsync(InstanceId id, CancellationToken ct)
    {
        var removed = 0;
        while (true)
        {
            var all = await store.ListBackupsAsync(id, ct);
            var parents = all.Where(b => b.ParentId is not null).Select(b => b.ParentId!.Value).ToHashSet();
            var progress = false;
            foreach (var b in all.Where(b => b.Status == Expired && !parents.Contains(b.Id)))
            {
                if (await RemoveBackupAsync(b, ct))
                {
                    removed++;
                    progress = true;
                }
            }
            if (!progress)
            {
                return removed;
            }
        }
    }

    private async Task<bool> RemoveBackupAsync(BackupRecord b, CancellationToken ct)
    {
        try
        {
            if (Directory.Exists(b.Directory))
            {
                Directory.Delete(b.Directory, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        await store.DeleteBackupAsync(b.Id, ct);
        return true;
    }

    private async Task<BackupRecord?> FindBackupAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var id) ? await store.GetBackupAsync(id, ct) : null;

    /// <summary>Every backup (of one server when <paramref name="serverReference"/> is given), oldest first.</summary>
    public async Task<Outcome<IReadOnlyList<BackupDto>>> ListBackupsAsync(string? serverReference, CancellationToken ct)
    {
        InstanceId? filter = null;
        if (!string.IsNullOrEmpty(serverReference))
        {
            if (await cloud.ResolveServerAsync(serverReference, ct) is not { } inst)
            {
                return Problem.NotFound("server", serverReference);
            }
            filter = inst.Id;
        }
        var all = await store.ListBackupsAsync(filter, ct);
        var byId = all.ToDictionary(b => b.Id);
        return all.Select(b => ToDto(b, ChainLength(b, byId))).ToList();
    }

    public async Task<Outcome<BackupDto>> GetBackupAsync(string reference, CancellationToken ct)
    {
        if (await FindBackupAsync(reference, ct) is not { } b)
        {
            return Problem.NotFound("backup", reference);
        }
        var byId = (await store.ListBackupsAsync(b.InstanceId, ct)).ToDictionary(x => x.Id);
        return ToDto(b, ChainLength(b, byId));
    }

    /// <summary>
    /// Deletes a backup. One that a newer incremental builds on is marked expired instead (not restorable; its files stay
    /// until its last dependant goes) and returned; a removed one returns null. Deleting also removes expired ancestors
    /// that nothing needs any more.
    /// </summary>
    public async Task<Outcome<BackupDto?>> DeleteBackupAsync(string reference, string requestedBy, CancellationToken ct)
    {
        if (await FindBackupAsync(reference, ct) is not { } found)
        {
            return Problem.NotFound("backup", reference);
        }
        return await LockedAsync<Outcome<BackupDto?>>(found.InstanceId, async () =>
        {
            var all = await store.ListBackupsAsync(found.InstanceId, ct);
            if (all.FirstOrDefault(b => b.Id == found.Id) is not { } b)
            {
                return Problem.NotFound("backup", reference);
            }
            if (b.Status == "creating")
            {
                return Problem.Conflict("backup_busy", $"backup {b.Id} is still being written");
            }
            var started = time.GetUtcNow();
            var dependants = all.Where(x => x.ParentId == b.Id).Select(x => x.Id).ToList();
            if (dependants.Count > 0)
            {
                if (b.Status != Expired)
                {
                    b = b with { Status = Expired, ExpiredReason = $"deleted by request at {started:u}; kept while newer incrementals build on it" };
                    await store.UpsertBackupAsync(b, ct);
                }
                await LogAsync(b.InstanceId, "delete-backup", requestedBy, started, "success",
                    $"backup {b.Id} expired; its files stay while backup {string.Join(", ", dependants)} builds on it", ct);
                var byId = all.ToDictionary(x => x.Id);
                return ToDto(b, ChainLength(b, byId));
            }
            if (!await RemoveBackupAsync(b, ct))
            {
                return new Problem("backup_delete_failed", 500, "The backup could not be deleted", $"its directory {b.Directory} could not be removed");
            }
            var freed = await CollectAsync(b.InstanceId, ct);
            await LogAsync(b.InstanceId, "delete-backup", requestedBy, started, "success",
                $"deleted backup {b.Id}{(freed > 0 ? $" and {freed} expired backup(s) only it needed" : "")}", ct);
            return new Outcome<BackupDto?>(null, null);
        }, ct);
    }

    public async Task<Outcome<BackupPolicyDto>> GetBackupPolicyAsync(string reference, CancellationToken ct)
    {
        var inst = await cloud.ResolveServerAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return Problem.NotFound("server", reference);
        }
        return await store.GetBackupPolicyAsync(inst.Id, ct) is { } p
            ? new BackupPolicyDto(p.Keep, p.FullEvery)
            : new BackupPolicyDto(options.DefaultKeep, options.DefaultFullEvery, IsDefault: true);
    }

    /// <summary>Sets a server's policy (null fields keep their current value; full_every 0 = follow keep) and applies its
    /// retention at once.</summary>
    public async Task<Outcome<BackupPolicyDto>> SetBackupPolicyAsync(string reference, BackupPolicyDto r, string requestedBy, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Keep is < 1 or > 1000)
        {
            errors.Add(new FieldError("keep", "out_of_range", "must be between 1 and 1000"));
        }
        if (r.FullEvery is < 0 or > 1000)
        {
            errors.Add(new FieldError("full_every", "out_of_range", "must be between 1 and 1000 (0: follow keep)"));
        }
        if (r.Keep is null && r.FullEvery is null)
        {
            errors.Add(new FieldError("keep", "required", "give keep, full_every or both"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var inst = await cloud.ResolveServerAsync(reference, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return Problem.NotFound("server", reference);
        }
        return await LockedAsync<Outcome<BackupPolicyDto>>(inst.Id, async () =>
        {
            var started = time.GetUtcNow();
            var current = await PolicyAsync(inst.Id, ct);
            var policy = new BackupPolicy(r.Keep ?? current.Keep, r.FullEvery switch { null => current.FullEvery, 0 => null, var n => n });
            await store.SetBackupPolicyAsync(inst.Id, policy, ct);
            var (expired, removed) = await ApplyRetentionAsync(inst.Id, policy, ct);
            await LogAsync(inst.Id, "backup-policy", requestedBy, started, "success",
                $"keep {policy.Keep}, full every {FullEvery(policy)}{(expired + removed > 0 ? $"; retention expired {expired}, removed {removed}" : "")}", ct);
            return new BackupPolicyDto(policy.Keep, policy.FullEvery);
        }, ct);
    }

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

    /// <summary>A backup's chain, oldest link first, and every problem found in it (each naming its link).</summary>
    private sealed record ChainCheck(IReadOnlyList<BackupRecord> Chain, IReadOnlyList<string> Problems, IReadOnlyDictionary<Guid, string?> LinkErrors);

    private async Task<ChainCheck> CheckChainAsync(BackupRecord leaf, CancellationToken ct)
    {
        var chain = new List<BackupRecord>();
        var problems = new List<string>();
        var seen = new HashSet<Guid>();
        for (var current = leaf; ;)
        {
            if (!seen.Add(current.Id))
            {
                problems.Add($"backup {current.Id} appears twice in its own chain");
                break;
            }
            chain.Add(current);
            if (current.Kind != BackupKinds.Incremental)
            {
                break;
            }
            if (current.ParentId is not { } pid || await store.GetBackupAsync(pid, ct) is not { } parent)
            {
                problems.Add($"backup {current.Id} is an incremental whose parent {current.ParentId?.ToString() ?? "(none)"} is missing from the store");
                break;
            }
            current = parent;
        }
        chain.Reverse();
        var linkErrors = new Dictionary<Guid, string?>();
        for (var i = 0; i < chain.Count; i++)
        {
            var b = chain[i];
            var found = (await VerifyAsync(b, ct)).ToList();
            if (BackupFiles.ReadManifest(b.Directory) is { } manifest)
            {
                if (manifest.Kind != b.Kind)
                {
                    found.Add($"the manifest says {manifest.Kind}, the store {b.Kind}");
                }
                if (manifest.InstanceId != b.InstanceId)
                {
                    found.Add($"the manifest is of server {manifest.InstanceId}, the store says {b.InstanceId}");
                }
                if (b.Kind == BackupKinds.Incremental && i > 0 && manifest.Parent != Path.GetFileName(chain[i - 1].Directory))
                {
                    found.Add($"the manifest builds on {manifest.Parent}, the store on {chain[i - 1].Id}");
                }
            }
            if (b.Status is not (Available or Expired))
            {
                found.Add($"it is {b.Status}");
            }
            linkErrors[b.Id] = found.Count > 0 ? string.Join("; ", found) : null;
            if (found.Count > 0)
            {
                problems.Add($"link {i + 1} of {chain.Count} (backup {b.Id}, {b.Kind}, {b.CreatedAt:u}): {linkErrors[b.Id]}");
            }
        }
        return new ChainCheck(chain, problems, linkErrors);
    }

    /// <summary>Checks every link of a backup's chain and records the outcome on each link (verified_at, verify_error).</summary>
    public async Task<Outcome<BackupVerificationDto>> VerifyBackupAsync(string reference, string requestedBy, CancellationToken ct)
    {
        if (await FindBackupAsync(reference, ct) is not { } found)
        {
            return Problem.NotFound("backup", reference);
        }
        return await LockedAsync<Outcome<BackupVerificationDto>>(found.InstanceId, async () =>
        {
            if (await store.GetBackupAsync(found.Id, ct) is not { } b)
            {
                return Problem.NotFound("backup", reference);
            }
            var check = await CheckChainAsync(b, ct);
            var now = time.GetUtcNow();
            foreach (var link in check.Chain)
            {
                await store.UpsertBackupAsync(link with { VerifiedAt = now, VerifyError = check.LinkErrors[link.Id] }, ct);
            }
            return new BackupVerificationDto(b.Id.ToString("D"), check.Problems.Count == 0, [.. check.Chain.Select(x => x.Id.ToString("D"))], check.Problems);
        }, ct);
    }

    public async Task<Outcome<Instance>> RestoreAsync(string backupReference, RestoreBackupRequest r, string requestedBy, CancellationToken ct, Stratus.Core.Identity.Principal? caller = null)
    {
        if (await FindBackupAsync(backupReference, ct) is not { } backup)
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
        // Under the server's lock: retention or a delete must not remove a link while it is verified and copied.
        return await LockedAsync(backup.InstanceId, () => RestoreLockedAsync(backup.Id, r, requestedBy, caller, ct), ct);
    }

    private async Task<Outcome<Instance>> RestoreLockedAsync(Guid backupId, RestoreBackupRequest r, string requestedBy, Stratus.Core.Identity.Principal? caller, CancellationToken ct)
    {
        if (await store.GetBackupAsync(backupId, ct) is not { } backup)
        {
            return Problem.NotFound("backup", backupId.ToString());
        }
        if (backup.Status == Expired)
        {
            return Problem.Conflict("backup_expired", $"backup {backup.Id} is expired ({backup.ExpiredReason}): it is kept only for the incrementals that build on it");
        }
        if (backup.Status != Available)
        {
            return Problem.Conflict("backup_unavailable", $"backup {backup.Id} is {backup.Status}");
        }
        if (await store.FindInstanceAsync(r.Name!, caller?.ProjectId ?? Stratus.Core.Identity.Project.AdminId, ct) is { IsLive: true })
        {
            return Problem.Conflict("name_in_use", $"a server named '{r.Name}' already exists");
        }
        var check = await CheckChainAsync(backup, ct);
        if (check.Problems.Count > 0)
        {
            return new Problem("backup_corrupt", 422, "The backup is damaged and was not restored", string.Join(" | ", check.Problems));
        }
        var spec = JsonSerializer.Deserialize<RestoreSpec>(backup.SpecJson, WireJson.Options)!;
        var imageId = ImageId.New();
        var imageDir = Path.Combine(options.ImageDirectory, "restored-" + imageId.Value.ToString("N"));
        Directory.CreateDirectory(imageDir);
        try
        {
            // Each link keeps its directory name, so an incremental's backing file (../PARENT/disk.qcow2) resolves in the copy.
            var linkDirs = new List<string>();
            long diskBytes = 0;
            var kernel = false;
            foreach (var link in check.Chain)
            {
                var manifest = BackupFiles.ReadManifest(link.Directory) ?? throw new IOException($"the manifest of backup {link.Id} became unreadable");
                var linkDir = Path.Combine(imageDir, Path.GetFileName(link.Directory));
                Directory.CreateDirectory(linkDir);
                foreach (var f in manifest.Files)
                {
                    var copy = Path.Combine(linkDir, f.Role == "sim" ? "disk.qcow2" : f.Name);
                    File.Copy(Path.Combine(link.Directory, f.Name), copy);
                    // The copy is what the new server boots from: check it again (a file that rotted between verify and copy).
                    if (!string.Equals(await BackupFiles.Sha256Async(copy, ct), f.Sha256, StringComparison.OrdinalIgnoreCase))
                    {
                        throw new IOException($"{f.Name} of backup {link.Id} changed while it was copied");
                    }
                    kernel |= f.Role == "kernel";
                    diskBytes += f.Role is "disk" or "sim" ? f.SizeBytes : 0;
                }
                linkDirs.Add(linkDir);
            }
            var leafDir = linkDirs[^1];
            if (kernel)
            {
                // A directly booted VM's bundle wants its kernel files beside the disk; an incremental inherited them.
                foreach (var name in new[] { "vmlinuz", "initrd.img", "cmdline" })
                {
                    if (!File.Exists(Path.Combine(leafDir, name)) && linkDirs.LastOrDefault(d => File.Exists(Path.Combine(d, name))) is { } from)
                    {
                        File.Copy(Path.Combine(from, name), Path.Combine(leafDir, name));
                    }
                }
            }
            var path = kernel ? leafDir : Path.Combine(leafDir, "disk.qcow2");
            var image = new Image(imageId, $"{r.Name!}-restored-{imageId.Value.ToString("N")[..8]}", kernel ? "kernel" : "qcow2", ImageStatus.Active,
                diskBytes, null, path, false, time.GetUtcNow(), caller?.ProjectId ?? Stratus.Core.Identity.Project.AdminId);
            if (!await store.CreateImageAsync(image, ct))
            {
                throw new IOException("could not register the restored image");
            }
            var request = new CreateServerRequest(r.Name!, backup.FlavorId.ToString(), imageId.ToString(), spec.UserData, r.KeyName ?? spec.KeyName, null,
                r.Forwards ?? spec.Forwards)
            { StoragePool = spec.StoragePool };
            var created = await cloud.CreateServerAsync(request, null, requestedBy, ct, caller);
            if (!created.Ok)
            {
                await store.DeleteImageAsync(imageId, CancellationToken.None);
                Directory.Delete(imageDir, recursive: true);
                return created.Problem!;
            }
            var server = created.Value.Server;
            await LogAsync(server.Id, "restore", requestedBy, time.GetUtcNow(), "success",
                $"from {backup.Kind} backup {backup.Id} of server '{backup.InstanceName}' ({check.Chain.Count} link(s) verified)", ct);
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
