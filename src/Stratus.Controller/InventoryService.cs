using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>What operators set on the fleet: host traits and host aggregates (metadata, availability zones).</summary>
public sealed class InventoryService(IStateStore store, TimeProvider time, ReconcileSignal signal)
{
    public async Task<Host?> ResolveHostAsync(string reference, CancellationToken ct) =>
        HostId.TryParse(reference, out var id) ? await store.GetHostAsync(id, ct) : await store.FindHostAsync(reference, ct);

    public async Task<Outcome<Host>> SetTraitsAsync(string hostRef, TraitsRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Traits is null)
        {
            errors.Add(new("traits", "required", "is required (an empty list clears them)"));
        }
        else
        {
            errors.AddRange(r.Traits.Select((t, i) => TraitRules.Check(t) is { } bad ? new FieldError($"traits[{i}]", "invalid", bad) : null).OfType<FieldError>());
            if (r.Traits.Count > 64)
            {
                errors.Add(new("traits", "too_many", "at most 64 traits"));
            }
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (await ResolveHostAsync(hostRef, ct) is not { } h)
        {
            return Problem.NotFound("host", hostRef);
        }
        await store.SetHostTraitsAsync(h.Id, r.Traits!, ct);
        signal.Signal();
        return (await store.GetHostAsync(h.Id, ct))!;
    }

    public async Task<Outcome<Aggregate>> CreateAggregateAsync(AggregateRequest r, CancellationToken ct)
    {
        var errors = Check(r, requireName: true);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var a = new Aggregate(Guid.CreateVersion7(), r.Name!, r.Zone, r.Metadata ?? new Dictionary<string, string>(), [], time.GetUtcNow());
        return await store.CreateAggregateAsync(a, ct) ? a : Problem.Conflict("name_in_use", $"an aggregate named '{r.Name}' already exists");
    }

    public async Task<Outcome<Aggregate>> GetAggregateAsync(string reference, CancellationToken ct) =>
        await store.FindAggregateAsync(reference, ct) is { } a ? a : Problem.NotFound("aggregate", reference);

    /// <summary>Replaces zone and metadata (PATCH semantics per field: a field left out is kept).</summary>
    public async Task<Outcome<Aggregate>> UpdateAggregateAsync(string reference, AggregateRequest r, CancellationToken ct)
    {
        var errors = Check(r, requireName: false);
        if (r.Name is not null)
        {
            errors.Add(new("name", "immutable", "an aggregate's name cannot change"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (await store.FindAggregateAsync(reference, ct) is not { } a)
        {
            return Problem.NotFound("aggregate", reference);
        }
        var zone = r.Zone ?? a.Zone;
        if (zone != a.Zone && await ZoneConflictAsync(a.Hosts, zone, a.Id, ct) is { } conflict)
        {
            return conflict;
        }
        await store.UpdateAggregateAsync(a.Id, zone, r.Metadata ?? a.Metadata, ct);
        signal.Signal();
        return (await store.FindAggregateAsync(a.Id.ToString("D"), ct))!;
    }

    public async Task<Outcome<Aggregate>> SetHostAsync(string reference, string? hostRef, bool member, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(hostRef))
        {
            return Problem.Validation([new FieldError("host", "required", "is required")]);
        }
        if (await store.FindAggregateAsync(reference, ct) is not { } a)
        {
            return Problem.NotFound("aggregate", reference);
        }
        if (await ResolveHostAsync(hostRef, ct) is not { } h)
        {
            return Problem.NotFound("host", hostRef);
        }
        if (member && a.Zone is not null && await ZoneConflictAsync([h.Id], a.Zone, a.Id, ct) is { } conflict)
        {
            return conflict;
        }
        await store.SetAggregateHostAsync(a.Id, h.Id, member, ct);
        signal.Signal();
        return (await store.FindAggregateAsync(a.Id.ToString("D"), ct))!;
    }

    public async Task<Outcome<bool>> DeleteAggregateAsync(string reference, CancellationToken ct)
    {
        if (await store.FindAggregateAsync(reference, ct) is not { } a)
        {
            return Problem.NotFound("aggregate", reference);
        }
        if (a.Hosts.Count > 0)
        {
            return Problem.Conflict("aggregate_not_empty", $"aggregate '{a.Name}' still has {a.Hosts.Count} host(s); remove them first");
        }
        return await store.DeleteAggregateAsync(a.Id, ct) ? true : Problem.NotFound("aggregate", reference);
    }

    /// <summary>A host is in at most one availability zone.</summary>
    private async Task<Problem?> ZoneConflictAsync(IReadOnlyList<HostId> hosts, string? zone, Guid self, CancellationToken ct)
    {
        if (zone is null)
        {
            return null;
        }
        foreach (var other in await store.ListAggregatesAsync(ct))
        {
            if (other.Id != self && other.Zone is not null && other.Zone != zone && other.Hosts.FirstOrDefault(hosts.Contains) is { } h && h != default)
            {
                return Problem.Conflict("zone_conflict", $"host {h} is already in zone '{other.Zone}' (aggregate '{other.Name}'); a host is in one zone only");
            }
        }
        return null;
    }

    private static List<FieldError> Check(AggregateRequest r, bool requireName)
    {
        var errors = new List<FieldError>();
        if (requireName && NameRules.Check(r.Name) is { } bad)
        {
            errors.Add(new("name", r.Name is null ? "required" : "invalid", bad));
        }
        if (r.Zone is not null && NameRules.Check(r.Zone) is { } zoneBad)
        {
            errors.Add(new("zone", "invalid", zoneBad));
        }
        if (r.Metadata is { } md && md.TryGetValue("scheduler_profile", out var profile) && !Scheduler.Profiles.Profiles.TryGet(profile, out _))
        {
            errors.Add(new("metadata.scheduler_profile", "invalid", "must be spread, pack or energy"));
        }
        foreach (var (k, v) in r.Metadata ?? new Dictionary<string, string>())
        {
            if (k.Length is 0 or > 255 || k.Any(char.IsControl) || v is null || v.Length > 255 || v.Any(char.IsControl))
            {
                errors.Add(new($"metadata.{k}", "invalid", "keys and values must be 1–255 printable characters"));
            }
        }
        return errors;
    }
}
