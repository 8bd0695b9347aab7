using System.Text;
using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Scheduler.Admission;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// The controller's request handling: validates (every error at once), resolves references (name
/// or id), and records desired state. Nothing here talks to a hypervisor: the reconciler and the
/// agents converge actual state toward what this writes. A refused request writes nothing.
/// </summary>
public sealed class CloudService(IStateStore store, ControllerOptions options, TimeProvider time, ReconcileSignal signal, Billing.BillingService? billing = null, HaAdmission? admission = null)
{
    /// <summary>Largest flavor dimensions accepted: beyond these a request is a mistake, not a server.</summary>
    public const int MaxVcpus = 1024;
    public const long MaxRamMib = 16L * 1024 * 1024;
    public const long MaxDiskGib = 1024L * 1024;

    public IStateStore Store => store;

    // ---------------- flavors ----------------

    public async Task<Outcome<Flavor>> CreateFlavorAsync(CreateFlavorRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        CheckName(r.Name, errors);
        Range(errors, "vcpus", r.Vcpus, 1, MaxVcpus);
        Range(errors, "ram_mib", r.RamMib, 16, MaxRamMib);
        Range(errors, "disk_gib", r.DiskGib, 0, MaxDiskGib);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var f = new Flavor(FlavorId.New(), r.Name!, r.Vcpus!.Value, r.RamMib!.Value, r.DiskGib!.Value, r.IsPublic ?? true, time.GetUtcNow());
        return await store.CreateFlavorAsync(f, ct) ? f : Problem.Conflict("name_in_use", $"a flavor named '{r.Name}' already exists");
    }

    public async Task<Outcome<Flavor>> GetFlavorAsync(string reference, CancellationToken ct) =>
        await ResolveFlavorAsync(reference, ct) is { } f ? f : Problem.NotFound("flavor", reference);

    public async Task<Outcome<bool>> DeleteFlavorAsync(string reference, CancellationToken ct)
    {
        if (await ResolveFlavorAsync(reference, ct) is not { } f)
        {
            return Problem.NotFound("flavor", reference);
        }
        return await store.DeleteFlavorAsync(f.Id, ct) switch
        {
            DeleteOutcome.Deleted => true,
            DeleteOutcome.InUse => Problem.Conflict("flavor_in_use", $"flavor '{f.Name}' is used by servers; delete them first"),
            _ => Problem.NotFound("flavor", reference),
        };
    }

    private async Task<Flavor?> ResolveFlavorAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var g) ? await store.GetFlavorAsync(new FlavorId(g), ct) : await store.FindFlavorAsync(reference, ct);

    // ---------------- images ----------------

    public static readonly IReadOnlySet<string> DiskFormats = new HashSet<string>(StringComparer.Ordinal) { "qcow2", "raw", "kernel" };

    public async Task<Outcome<Image>> RegisterImageAsync(CreateImageRequest r, CancellationToken ct, Guid? owner = null)
    {
        var errors = new List<FieldError>();
        CheckName(r.Name, errors);
        var format = r.DiskFormat ?? "qcow2";
        if (!DiskFormats.Contains(format))
        {
            errors.Add(new("disk_format", "invalid", $"must be one of {string.Join(", ", DiskFormats.Order(StringComparer.Ordinal))}"));
        }
        long size = 0;
        if (r.Path is not null)
        {
            if (!Path.IsPathFullyQualified(r.Path) || r.Path.Contains('\0', StringComparison.Ordinal))
            {
                errors.Add(new("path", "invalid", "must be an absolute path on the controller"));
            }
            else if (!File.Exists(r.Path) && !Directory.Exists(r.Path))
            {
                errors.Add(new("path", "not_found", $"'{r.Path}' does not exist on the controller"));
            }
            else if (File.Exists(r.Path))
            {
                size = new FileInfo(r.Path).Length;
            }
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var image = new Image(ImageId.New(), r.Name!, format, ImageStatus.Active, size, null, r.Path, r.IsPublic ?? true, time.GetUtcNow(), owner ?? Project.AdminId);
        return await store.CreateImageAsync(image, ct) ? image : Problem.Conflict("name_in_use", $"an image named '{r.Name}' already exists");
    }

    public async Task<Outcome<Image>> GetImageAsync(string reference, CancellationToken ct) =>
        await ResolveImageAsync(reference, ct) is { } i ? i : Problem.NotFound("image", reference);

    public async Task<Outcome<bool>> DeleteImageAsync(string reference, CancellationToken ct)
    {
        if (await ResolveImageAsync(reference, ct) is not { } i)
        {
            return Problem.NotFound("image", reference);
        }
        return await store.DeleteImageAsync(i.Id, ct) switch
        {
            DeleteOutcome.Deleted => true,
            DeleteOutcome.InUse => Problem.Conflict("image_in_use", $"image '{i.Name}' is used by servers; delete them first"),
            _ => Problem.NotFound("image", reference),
        };
    }

    private async Task<Image?> ResolveImageAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var g) ? await store.GetImageAsync(new ImageId(g), ct) : await store.FindImageAsync(reference, ct);

    // ---------------- server groups ----------------

    public async Task<Outcome<ServerGroup>> CreateGroupAsync(CreateGroupRequest r, CancellationToken ct, Guid? owner = null)
    {
        var errors = new List<FieldError>();
        CheckName(r.Name, errors);
        if (r.Policy is null)
        {
            errors.Add(new("policy", "required", $"is required: one of {string.Join(", ", ServerGroup.Policies)}"));
        }
        else if (!ServerGroup.Policies.Contains(r.Policy))
        {
            errors.Add(new("policy", "invalid", $"must be one of {string.Join(", ", ServerGroup.Policies)}"));
        }
        if (r.MaxPerHost is { } m && (m < 1 || m > 1000))
        {
            errors.Add(new("max_per_host", "out_of_range", "must be between 1 and 1000"));
        }
        else if (r.MaxPerHost is not null && r.Policy is not ("anti-affinity" or "soft-anti-affinity"))
        {
            errors.Add(new("max_per_host", "invalid", "is only valid for anti-affinity policies"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var g = new ServerGroup(Guid.CreateVersion7(), r.Name!, r.Policy!, r.MaxPerHost ?? 1, 1, time.GetUtcNow(), owner ?? Project.AdminId);
        return await store.CreateGroupAsync(g, ct) ? g : Problem.Conflict("name_in_use", $"a server group named '{r.Name}' already exists");
    }

    public async Task<Outcome<ServerGroup>> GetGroupAsync(string reference, CancellationToken ct) =>
        await store.FindGroupAsync(reference, ct) is { } g ? g : Problem.NotFound("server group", reference);

    public async Task<Outcome<bool>> DeleteGroupAsync(string reference, CancellationToken ct)
    {
        if (await store.FindGroupAsync(reference, ct) is not { } g)
        {
            return Problem.NotFound("server group", reference);
        }
        return await store.DeleteGroupAsync(g.Id, ct) switch
        {
            DeleteOutcome.Deleted => true,
            DeleteOutcome.InUse => Problem.Conflict("group_in_use", $"server group '{g.Name}' has servers; delete them first"),
            _ => Problem.NotFound("server group", reference),
        };
    }

    // ---------------- keypairs ----------------

    public async Task<Outcome<Keypair>> ImportKeypairAsync(ImportKeypairRequest r, CancellationToken ct, Guid? owner = null)
    {
        var errors = new List<FieldError>();
        CheckName(r.Name, errors);
        var (key, fingerprint, problem) = SshPublicKey.Parse(r.PublicKey);
        if (problem is not null)
        {
            errors.Add(new("public_key", r.PublicKey is null ? "required" : "invalid", problem));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var k = new Keypair(Guid.CreateVersion7(), r.Name!, key!, fingerprint!, time.GetUtcNow(), owner ?? Project.AdminId);
        return await store.CreateKeypairAsync(k, ct) ? k : Problem.Conflict("name_in_use", $"a keypair named '{r.Name}' already exists");
    }

    public async Task<Outcome<Keypair>> GetKeypairAsync(string reference, CancellationToken ct) =>
        await store.FindKeypairAsync(reference, ct) is { } k ? k : Problem.NotFound("keypair", reference);

    public async Task<Outcome<bool>> DeleteKeypairAsync(string reference, CancellationToken ct)
    {
        if (await store.FindKeypairAsync(reference, ct) is not { } k)
        {
            return Problem.NotFound("keypair", reference);
        }
        return await store.DeleteKeypairAsync(k.Id, ct) ? true : Problem.NotFound("keypair", reference);
    }

    // ---------------- servers ----------------

    public async Task<Outcome<(Instance Server, bool Created)>> CreateServerAsync(CreateServerRequest r, string? idempotencyKey, string requestedBy, CancellationToken ct, Principal? caller = null)
    {
        var o = await CreateServersAsync(r, idempotencyKey, requestedBy, ct, caller);
        return o.Ok ? (o.Value.Servers[0], o.Value.Created) : o.Problem!;
    }

    /// <summary>Creates one server, or with <c>count</c> a batch NAME-1…NAME-N in one transaction.</summary>
    /// <remarks>
    /// With a <paramref name="caller"/>, the server belongs to the caller's project, and only what that
    /// project may see can be referenced (public flavors, public or own images, own keypairs and groups):
    /// anything else is "not found", exactly as if it did not exist.
    /// </remarks>
    public async Task<Outcome<(IReadOnlyList<Instance> Servers, bool Created)>> CreateServersAsync(CreateServerRequest r, string? idempotencyKey, string requestedBy, CancellationToken ct, Principal? caller = null)
    {
        var scope = caller?.Scope;
        var owner = caller?.ProjectId ?? Project.AdminId;
        var errors = new List<FieldError>();
        CheckName(r.Name, errors);
        Flavor? flavor = null;
        Image? image = null;
        if (string.IsNullOrEmpty(r.Flavor))
        {
            errors.Add(new("flavor", "required", "is required"));
        }
        else if ((flavor = await ResolveFlavorAsync(r.Flavor, ct)) is null || !FlavorVisible(flavor, scope))
        {
            errors.Add(new("flavor", "not_found", $"no flavor named or with id '{r.Flavor}'"));
        }
        if (string.IsNullOrEmpty(r.Image))
        {
            errors.Add(new("image", "required", "is required"));
        }
        else if ((image = await ResolveImageAsync(r.Image, ct)) is null || !ImageVisible(image, scope))
        {
            errors.Add(new("image", "not_found", $"no image named or with id '{r.Image}'"));
        }
        else if (image.Status != ImageStatus.Active)
        {
            errors.Add(new("image", "not_active", $"image '{image.Name}' is {image.Status.ToString().ToLowerInvariant()}, not active"));
        }
        if (r.UserData is not null && Encoding.UTF8.GetByteCount(r.UserData) > options.MaxUserDataBytes)
        {
            errors.Add(new("user_data", "too_large", $"must be at most {options.MaxUserDataBytes} bytes"));
        }
        if (r.StoragePool is not null and not ("local" or "shared"))
        {
            errors.Add(new("storage_pool", "invalid", "must be local or shared"));
        }
        else if (r.StoragePool == "shared" && !options.HasSharedPool)
        {
            errors.Add(new("storage_pool", "unavailable", "this cloud has no shared storage pool (stratusd --shared-pool)"));
        }
        if (r.Ha == true && (!options.HasSharedPool || r.StoragePool == "local"))
        {
            errors.Add(new("ha", "needs_shared_pool", "HA servers keep their disk on the shared pool (this cloud has none, or storage_pool is local)"));
        }
        if (r.HaPriority is < 0 or > 1000)
        {
            errors.Add(new("ha_priority", "out_of_range", "must be between 0 and 1000"));
        }
        if (r.KeyName is not null && NameRules.Check(r.KeyName) is { } keyProblem)
        {
            errors.Add(new("key_name", "invalid", keyProblem));
        }
        else if (r.KeyName is not null && (await store.FindKeypairAsync(r.KeyName, ct) is not { } kp || !Owns(scope, kp.ProjectId)))
        {
            errors.Add(new("key_name", "not_found", $"no keypair named '{r.KeyName}'"));
        }
        foreach (var (t, i) in (r.Traits ?? []).Select((t, i) => (t, i)))
        {
            if (TraitRules.Check(t?.TrimStart('!')) is { } traitProblem)
            {
                errors.Add(new($"traits[{i}]", "invalid", traitProblem));
            }
        }
        ServerGroup? group = null;
        if (r.Group is not null && ((group = await store.FindGroupAsync(r.Group, ct)) is null || !Owns(scope, group.ProjectId)))
        {
            errors.Add(new("group", "not_found", $"no server group named or with id '{r.Group}'"));
        }
        if (r.Zone is not null && NameRules.Check(r.Zone) is { } zoneProblem)
        {
            errors.Add(new("zone", "invalid", zoneProblem));
        }
        var forwards = new List<Forward>();
        if (r.Forwards is { } fw)
        {
            if (fw.Count > 16)
            {
                errors.Add(new("forwards", "too_many", "at most 16 forwards"));
            }
            for (var i = 0; i < fw.Count && i < 16; i++)
            {
                var f = fw[i];
                if (f is null)
                {
                    errors.Add(new($"forwards[{i}]", "required", "must be an object"));
                    continue;
                }
                if (f.GuestPort is < 1 or > 65535)
                {
                    errors.Add(new($"forwards[{i}].guest_port", "out_of_range", "must be between 1 and 65535"));
                }
                if (f.HostPort != 0 && f.HostPort is < 1024 or > 65535)
                {
                    errors.Add(new($"forwards[{i}].host_port", "out_of_range", "must be 0 (chosen) or between 1024 and 65535"));
                }
                forwards.Add(new Forward(f.HostPort, f.GuestPort));
            }
            foreach (var dup in forwards.Where(f => f.HostPort != 0).GroupBy(f => f.HostPort).Where(g => g.Count() > 1))
            {
                errors.Add(new("forwards", "duplicate", $"host port {dup.Key} is listed more than once"));
            }
        }
        if (r.KeyName is not null && forwards.All(f => f.GuestPort != 22))
        {
            forwards.Add(new Forward(0, 22)); // a server with a key is reachable over SSH through a forward
        }
        var count = r.Count ?? 1;
        if (count is < 1 or > 100)
        {
            errors.Add(new("count", "out_of_range", "must be between 1 and 100"));
        }
        if (r.AllOrNothing is not null && r.Count is null)
        {
            errors.Add(new("all_or_nothing", "invalid", "is only valid with count"));
        }
        if (count > 1 && r.Name is { Length: > NameRules.MaxLength - 4 })
        {
            errors.Add(new("name", "invalid", $"with count, must be at most {NameRules.MaxLength - 4} characters (a suffix -N is added)"));
        }
        if (count > 1 && forwards.Any(f => f.HostPort != 0))
        {
            errors.Add(new("forwards", "invalid", "with count, host ports must be 0 (chosen per server)"));
        }
        if (idempotencyKey is not null && (idempotencyKey.Length is 0 or > 128 || idempotencyKey.Any(char.IsControl)))
        {
            errors.Add(new("Idempotency-Key", "invalid", "must be 1–128 printable characters"));
        }
        var (maxVcpus, maxRamMib) = flavor is null ? (0, 0L) : await CeilingsAsync(r, flavor, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        // A budget that blocks refuses new servers of its project (the admin project until requests carry one).
        if (billing is not null && await billing.AdmitServerAsync(owner, ct) is { } overBudget)
        {
            return overBudget;
        }
        var now = time.GetUtcNow();
        // Idempotency keys are per project: another tenant's key never returns that tenant's server.
        idempotencyKey = idempotencyKey is null ? null : $"{owner:N}/{idempotencyKey}";
        if (count > 1)
        {
            return await CreateBatchAsync(r, count, flavor!, image!, forwards, group, requestedBy, now, owner, maxVcpus, maxRamMib, ct);
        }
        var instance = new Instance(
            InstanceId.New(), r.Name!, flavor!.Id, image!.Id, null, VmState.Building, InstanceTask.Scheduling, PowerState.NoState,
            flavor.Resources, null, idempotencyKey, 0, 1, now, now, now, r.UserData, r.KeyName, r.Zone, forwards, group?.Id, r.Traits is { Count: > 0 } traits ? traits.ToList() : null,
            StoragePool: r.Ha == true ? "shared" : r.StoragePool ?? options.DefaultStoragePool, Ha: r.Ha ?? false, HaPriority: r.HaPriority ?? 0, ProjectId: owner,
            MaxVcpus: maxVcpus, MaxMemoryMib: maxRamMib);
        var action = new InstanceAction(0, instance.Id, "create", requestedBy, now, null, "pending", null);
        var admitted = await AdmittedAsync([new FailoverServer(instance.Resources, instance.Ha)], null, $"server '{instance.Name}' ({FailoverReserve.Describe(instance.Resources)})",
            async generation =>
            {
                var o = await store.CreateInstanceAsync(instance, action, generation, ct);
                return (o, o.Status == CreateStatus.AdmissionChanged);
            }, ct);
        if (!admitted.Ok)
        {
            // A retry of a request that was admitted earlier gets its server, not the refusal.
            return idempotencyKey is not null && await store.FindInstanceByIdempotencyKeyAsync(idempotencyKey, ct) is { } earlier
                ? ([earlier], false)
                : admitted.Problem!;
        }
        var outcome = admitted.Value!;
        switch (outcome.Status)
        {
            case CreateStatus.NameTaken:
                return Problem.Conflict("name_in_use", $"a server named '{r.Name}' already exists");
            case CreateStatus.QuotaExceeded:
                return await QuotaProblemAsync(owner, 1, flavor.Resources, ct);
            case CreateStatus.Existing:
                return ([outcome.Instance], false);
            default:
                signal.Signal();
                return ([outcome.Instance], true);
        }
    }

    /// <summary>How many times the flavor's size a server may grow to live, when the request does not say.</summary>
    public const int DefaultCeilingFactor = 4;

    /// <summary>
    /// The live resize ceilings of a new server: as asked (at least the flavor's size, at most what the largest host can
    /// allocate), else <see cref="DefaultCeilingFactor"/>× the flavor's, capped by the largest host's allocatable vCPUs and
    /// memory (the ceiling is fixed at create so a server's QEMU device model is the same on every host it moves to).
    /// </summary>
    private async Task<(int MaxVcpus, long MaxRamMib)> CeilingsAsync(CreateServerRequest r, Flavor flavor, List<FieldError> errors, CancellationToken ct)
    {
        var hosts = await store.ListHostsAsync(ct);
        var hostCpus = hosts.Count == 0 ? MaxVcpus : (int)Math.Min(MaxVcpus, hosts.Max(h => h.Capacity.MilliVcpus) / 1000);
        var hostRam = hosts.Count == 0 ? MaxRamMib : Math.Min(MaxRamMib, hosts.Max(h => h.Capacity.MemoryMib));
        if (r.MaxVcpus is { } mc && (mc < flavor.Vcpus || mc > Math.Max(hostCpus, flavor.Vcpus)))
        {
            errors.Add(new("max_vcpus", "out_of_range", $"must be between the flavor's {flavor.Vcpus} and the largest host's {Math.Max(hostCpus, flavor.Vcpus)} allocatable vCPUs"));
        }
        if (r.MaxRamMib is { } mr && (mr < flavor.RamMib || mr > Math.Max(hostRam, flavor.RamMib)))
        {
            errors.Add(new("max_ram_mib", "out_of_range", $"must be between the flavor's {flavor.RamMib} and the largest host's {Math.Max(hostRam, flavor.RamMib)} allocatable MiB"));
        }
        var cpus = r.MaxVcpus ?? Math.Max(flavor.Vcpus, (int)Math.Min((long)flavor.Vcpus * DefaultCeilingFactor, hostCpus));
        var ram = r.MaxRamMib ?? Math.Max(flavor.RamMib, Math.Min(flavor.RamMib * DefaultCeilingFactor, hostRam));
        return (cpus, ram);
    }

    /// <summary>A batch: NAME-1…NAME-N created in one transaction (all or none), placed together by the reconciler.</summary>
    private async Task<Outcome<(IReadOnlyList<Instance> Servers, bool Created)>> CreateBatchAsync(CreateServerRequest r, int count, Flavor flavor, Image image,
        List<Forward> forwards, ServerGroup? group, string requestedBy, DateTimeOffset now, Guid owner, int maxVcpus, long maxRamMib, CancellationToken ct)
    {
        var batchId = Guid.CreateVersion7();
        var batch = Enumerable.Range(1, count).Select(i =>
        {
            var inst = new Instance(InstanceId.New(), $"{r.Name}-{i}", flavor.Id, image.Id, null, VmState.Building, InstanceTask.Scheduling, PowerState.NoState,
                flavor.Resources, null, null, 0, 1, now, now, now, r.UserData, r.KeyName, r.Zone, forwards, group?.Id,
                r.Traits is { Count: > 0 } traits ? traits.ToList() : null, batchId, r.AllOrNothing ?? false, r.Ha == true ? "shared" : r.StoragePool ?? options.DefaultStoragePool, r.Ha ?? false, r.HaPriority ?? 0, owner,
                maxVcpus, maxRamMib);
            return (inst, new InstanceAction(0, inst.Id, "create", requestedBy, now, null, "pending", null));
        }).ToList();
        var admitted = await AdmittedAsync([.. batch.Select(b => new FailoverServer(b.inst.Resources, b.inst.Ha))], null,
            $"the batch {r.Name}-1…{r.Name}-{count} ({count} × {FailoverReserve.Describe(flavor.Resources)})",
            async generation =>
            {
                var status = await store.CreateInstancesAsync(batch, generation, ct);
                return (status, status == CreateStatus.AdmissionChanged);
            }, ct);
        if (!admitted.Ok)
        {
            return admitted.Problem!;
        }
        switch (admitted.Value)
        {
            case CreateStatus.NameTaken:
                return Problem.Conflict("name_in_use", $"a server named {r.Name}-1…{r.Name}-{count} already exists; nothing was created");
            case CreateStatus.QuotaExceeded:
                return await QuotaProblemAsync(owner, count, flavor.Resources, ct);
        }
        signal.Signal();
        return (batch.Select(b => b.inst).ToList(), true);
    }

    public async Task<Instance?> ResolveServerAsync(string reference, CancellationToken ct) =>
        Guid.TryParse(reference, out var g) ? await store.GetInstanceAsync(new InstanceId(g), ct) : await store.FindInstanceAsync(reference, ct);

    /// <summary>
    /// A server as a caller may see it: by id only within <paramref name="scope"/> (null: every project);
    /// by name within the scope's project (for cloud admins: their own project first, then any).
    /// </summary>
    public async Task<Instance?> ResolveServerAsync(string reference, Guid? scope, Guid home, CancellationToken ct)
    {
        if (Guid.TryParse(reference, out var g))
        {
            var i = await store.GetInstanceAsync(new InstanceId(g), ct);
            return i is not null && Owns(scope, i.ProjectId) ? i : null;
        }
        return await store.FindInstanceAsync(reference, scope ?? home, ct) ?? (scope is null ? await store.FindInstanceAsync(reference, ct) : null);
    }

    /// <summary>True when an object owned by <paramref name="owner"/> is visible in <paramref name="scope"/> (null: every project).</summary>
    public static bool Owns(Guid? scope, Guid? owner) => scope is null || (owner ?? Project.AdminId) == scope;

    public static bool ImageVisible(Image i, Guid? scope) => i.IsPublic || Owns(scope, i.ProjectId);

    public static bool FlavorVisible(Flavor f, Guid? scope) => f.IsPublic || scope is null;

    /// <summary>Why a create did not fit the project's quota: each resource that would go over, with use and limit.</summary>
    private async Task<Problem> QuotaProblemAsync(Guid project, int count, Core.Resources.ResourceVector each, CancellationToken ct)
    {
        var p = await store.GetProjectAsync(project, ct);
        var q = p?.Quotas ?? Quotas.Default;
        var u = await store.GetProjectUsageAsync(project, ct);
        var over = new List<string>();
        if (u.Instances + count > q.Instances)
        {
            over.Add($"instances {u.Instances} + {count} > {q.Instances}");
        }
        var vcpus = (int)((each.MilliVcpus * count + 999) / 1000);
        if (u.Vcpus + vcpus > q.Vcpus)
        {
            over.Add($"vcpus {u.Vcpus} + {vcpus} > {q.Vcpus}");
        }
        if (u.RamMib + each.MemoryMib * count > q.RamMib)
        {
            over.Add($"ram_mib {u.RamMib} + {each.MemoryMib * count} > {q.RamMib}");
        }
        if (u.DiskGib + each.DiskGib * count > q.DiskGib)
        {
            over.Add($"disk_gib {u.DiskGib} + {each.DiskGib * count} > {q.DiskGib}");
        }
        return new Problem("quota_exceeded", 409, "Quota exceeded",
            $"project '{p?.Name ?? project.ToString("D")}' would exceed its quota: {(over.Count > 0 ? string.Join(", ", over) : "limits reached")}; nothing was created");
    }

    public async Task<Outcome<Instance>> GetServerAsync(string reference, CancellationToken ct) =>
        await ResolveServerAsync(reference, ct) is { } i ? i : Problem.NotFound("server", reference);

    public static readonly IReadOnlyDictionary<string, ServerAction> ActionNames = new Dictionary<string, ServerAction>(StringComparer.Ordinal)
    {
        ["start"] = ServerAction.Start,
        ["stop"] = ServerAction.Stop,
        ["reboot"] = ServerAction.Reboot,
        ["pause"] = ServerAction.Pause,
        ["resume"] = ServerAction.Resume,
    };

    /// <summary>Requests an action; refused with the transition table's reason when illegal now.</summary>
    public async Task<Outcome<Instance>> ActAsync(string reference, ServerActionRequest r, string requestedBy, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        ServerAction action = default;
        if (string.IsNullOrEmpty(r.Action))
        {
            errors.Add(new("action", "required", $"is required: one of {string.Join(", ", ActionNames.Keys)}"));
        }
        else if (!ActionNames.TryGetValue(r.Action, out action))
        {
            errors.Add(new("action", "invalid", $"must be one of {string.Join(", ", ActionNames.Keys)}"));
        }
        if (r.Type is not null && (r.Action != "reboot" || r.Type is not ("soft" or "hard")))
        {
            errors.Add(new("type", "invalid", r.Action == "reboot" ? "must be soft or hard" : "is only valid for reboot"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (action == ServerAction.Reboot && r.Type == "hard")
        {
            action = ServerAction.RebootHard;
        }
        return await TransitionAsync(reference, action, requestedBy, ct);
    }

    public Task<Outcome<Instance>> DeleteServerAsync(string reference, string requestedBy, CancellationToken ct) =>
        TransitionAsync(reference, ServerAction.Delete, requestedBy, ct);

    private async Task<Outcome<Instance>> TransitionAsync(string reference, ServerAction action, string requestedBy, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (await ResolveServerAsync(reference, ct) is not { } server)
            {
                return Problem.NotFound("server", reference);
            }
            var decision = ServerLifecycle.Decide(server.VmState, server.Task, action);
            if (!decision.Allowed)
            {
                return Problem.Conflict(decision.ErrorCode!, decision.Reason!);
            }
            var t = decision.Transition!;
            var now = time.GetUtcNow();
            var next = server with
            {
                Task = t.Task,
                TaskRequestedAt = now,
                UpdatedAt = now,
                RebootSeq = action is ServerAction.Reboot or ServerAction.RebootHard ? server.RebootSeq + 1 : server.RebootSeq,
            };
            var entry = new InstanceAction(0, server.Id, t.Name, requestedBy, now, null, "pending", null);
            CasOutcome result;
            if (action == ServerAction.Delete && server.HostId is null)
            {
                // Never placed (or placement failed): nothing runs anywhere, so it is gone at once.
                next = next with { Task = null, VmState = VmState.Deleted, TaskRequestedAt = null };
                entry = entry with { FinishedAt = now, Result = "success" };
                result = await store.ReleaseAsync(next, entry, ct);
            }
            else
            {
                result = await store.UpdateInstanceAsync(next, entry, ct);
            }
            switch (result)
            {
                case CasOutcome.Ok:
                    signal.Signal(server.HostId);
                    return next with { Version = server.Version + 1 };
                case CasOutcome.NotFound:
                    return Problem.NotFound("server", reference);
                default:
                    continue; // changed under us: decide again on the fresh row
            }
        }
        return Problem.Conflict("concurrent_update", "the server kept changing; retry");
    }

    public async Task<Outcome<IReadOnlyList<InstanceAction>>> ListActionsAsync(string reference, CancellationToken ct)
    {
        if (await ResolveServerAsync(reference, ct) is not { } s)
        {
            return Problem.NotFound("server", reference);
        }
        return Outcome(await store.ListActionsAsync(s.Id, ct));
    }

    private static Outcome<IReadOnlyList<InstanceAction>> Outcome(IReadOnlyList<InstanceAction> list) => new(list, null);

    // ---------------- validation helpers ----------------

    private static void CheckName(string? name, List<FieldError> errors)
    {
        if (name is null)
        {
            errors.Add(new("name", "required", "is required"));
        }
        else if (NameRules.Check(name) is { } problem)
        {
            errors.Add(new("name", "invalid", problem));
        }
    }

    private static void Range(List<FieldError> errors, string field, long? value, long min, long max)
    {
        if (value is null)
        {
            errors.Add(new(field, "required", "is required"));
        }
        else if (value < min || value > max)
        {
            errors.Add(new(field, "out_of_range", $"must be between {min} and {max} (got {value})"));
        }
    }

    /// <summary>
    /// Runs <paramref name="write"/> under HA admission control (when on): decides with <paramref name="added"/> servers and HA
    /// switched on for <paramref name="haOn"/>, refuses with a 409 naming <paramref name="what"/>, or writes with the generation
    /// the decision was made on; a write that found the generation moved (its second value) decides again on fresh state.
    /// With admission control off the write runs once without a generation.
    /// </summary>
    private async Task<Outcome<T>> AdmittedAsync<T>(IReadOnlyList<FailoverServer> added, InstanceId? haOn, string what,
        Func<long?, Task<(T Result, bool Retry)>> write, CancellationToken ct)
    {
        if (admission is not { Enabled: true })
        {
            return (await write(null)).Result;
        }
        using var _ = await admission.EnterAsync(ct);
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var decision = await admission.DecideAsync(added, haOn, ct);
            if (!decision.Admitted)
            {
                return admission.Refusal(what, decision.Report);
            }
            var (result, retry) = await write(decision.Generation);
            if (!retry)
            {
                return result;
            }
        }
        return Problem.Conflict("concurrent_update", "the cloud kept changing while HA admission control checked; retry");
    }

    /// <summary>Changes a server's HA policy (on, off, priority); an HA server must keep its disk on the shared pool.</summary>
    public async Task<Outcome<Instance>> SetHaAsync(string reference, HaRequest r, string requestedBy, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Ha is null && r.HaPriority is null)
        {
            errors.Add(new("ha", "required", "give ha, ha_priority or both"));
        }
        if (r.HaPriority is < 0 or > 1000)
        {
            errors.Add(new("ha_priority", "out_of_range", "must be between 0 and 1000"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var inst = InstanceId.TryParse(reference, out var id) ? await store.GetInstanceAsync(id, ct) : await store.FindInstanceAsync(reference, ct);
            if (inst is null || inst.VmState == VmState.Deleted)
            {
                return Problem.NotFound("server", reference);
            }
            if (r.Ha == true && inst.StoragePool != "shared")
            {
                return Problem.Conflict("needs_shared_pool", $"server '{inst.Name}' keeps its disk on the {inst.StoragePool} pool; HA needs the shared pool");
            }
            var now = time.GetUtcNow();
            var updated = inst with { Ha = r.Ha ?? inst.Ha, HaPriority = r.HaPriority ?? inst.HaPriority, UpdatedAt = now };
            var action = new InstanceAction(0, inst.Id, "set-ha", requestedBy, now, now, "success", $"ha={updated.Ha}, priority={updated.HaPriority}");
            var checkedWrite = updated.Ha && !inst.Ha;
            var written = checkedWrite
                ? await AdmittedAsync([], inst.Id, $"HA for server '{inst.Name}' ({FailoverReserve.Describe(inst.Resources)})",
                    async generation => (await store.UpdateInstanceAsync(updated, action, null, generation, ct), false), ct)
                : (Outcome<CasOutcome>)await store.UpdateInstanceAsync(updated, action, ct);
            if (!written.Ok)
            {
                return written.Problem!;
            }
            if (written.Value == CasOutcome.Ok)
            {
                if (updated.HostId is { } h)
                {
                    signal.Signal(h);
                }
                return updated;
            }
        }
        return Problem.Conflict("conflict", "the server kept changing; try again");
    }
}
