using Stratus.Core.Compute;
using Stratus.Core.Lifecycle;
using Stratus.Core.Resources;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>Domain objects to the API's JSON objects.</summary>
public static class Mapping
{
    public static FlavorDto ToDto(this Flavor f) => new(f.Id.ToString(), f.Name, f.Vcpus, f.RamMib, f.DiskGib, f.IsPublic, f.CreatedAt);

    public static ImageDto ToDto(this Image i) =>
        new(i.Id.ToString(), i.Name, i.DiskFormat, i.Status.ToString().ToLowerInvariant(), i.SizeBytes, i.Checksum, i.IsPublic, i.CreatedAt);

    public static ServerDto ToDto(this Instance i, string? hostName) => new(
        i.Id.ToString(), i.Name, i.PendingResize is not null && i.VmState is VmState.Active or VmState.Stopped ? "verify_resize" : Names.Of(i.VmState), i.Task is { } t ? Names.Of(t) : null, Names.Of(i.PowerState),
        i.HostId?.ToString(), hostName, i.FlavorId.ToString(), i.ImageId.ToString(),
        (int)(i.Resources.MilliVcpus / 1000), i.Resources.MemoryMib, i.Resources.DiskGib, i.Fault, i.KeyName, i.GroupId?.ToString("D"),
        (i.Forwards ?? []).Select(f => new ForwardDto(f.HostPort, f.GuestPort)).ToList(),
        i.CreatedAt, i.UpdatedAt, i.Version)
    {
        StoragePool = i.StoragePool,
        Ha = i.Ha,
        HaPriority = i.HaPriority,
        MaxVcpus = i.VcpuCeiling,
        MaxRamMib = i.MemoryCeilingMib,
        PreviousFlavorId = i.PendingResize?.FlavorId.ToString(),
    };

    public static HaStatusDto ToDto(this Scheduler.Admission.FailoverReport r, bool enforced, HaOptions o, int openIncidents)
    {
        static HaReserveTestDto? Test(Scheduler.Admission.FailoverTest? t) =>
            t is null ? null : new([.. t.WorstFailure], Math.Round(t.Demand, 3), Math.Round(t.Room, 3), t.Ok);
        static HaSlotDto? Slot(ResourceVector? v) => v is { } s ? new HaSlotDto(s.MilliVcpus / 1000.0, s.MemoryMib, s.DiskGib) : null;
        return new(r.Tolerate, enforced, r.Ok, r.Headroom == long.MaxValue ? null : r.Headroom, r.Summary, Slot(r.LargestHa), Slot(r.Slot), r.SlotShape,
            [.. r.Hosts.Select(h => new HaHostSlotsDto(h.Name, h.Whole, Math.Round(h.Fractional, 3)))],
            Test(r.Whole), Test(r.Fractional), o.FenceCommand is not null, o.FenceTimeout.TotalSeconds, openIncidents);
    }

    public static ActionDto ToDto(this InstanceAction a) => new(a.Seq, a.Action, a.RequestedBy, a.StartedAt, a.FinishedAt, a.Result, a.Message);

    public static ServerGroupDto ToDto(this ServerGroup g) => new(g.Id.ToString("D"), g.Name, g.Policy, g.MaxPerHost, g.CreatedAt);

    public static KeypairDto ToDto(this Keypair k) => new(k.Id.ToString("D"), k.Name, k.PublicKey, k.Fingerprint, k.CreatedAt);

    public static ResourcesDto ToDto(this ResourceVector v) => new(v.MilliVcpus / 1000.0, v.MemoryMib, v.DiskGib);

    public static HostDto ToDto(this Host h, int servers, string? zone = null) => new(
        h.Id.ToString(), h.Name, Names.Of(h.State), zone ?? h.Zone, h.Driver, h.Accelerator, h.AgentPid,
        h.Total.ToDto(), h.Reserved.ToDto(), new RatiosDto(h.Ratios.Cpu, h.Ratios.Ram, h.Ratios.Disk),
        h.Capacity.ToDto(), h.Used.ToDto(), servers, h.Generation, h.Epoch, h.LastHeartbeat)
    {
        Traits = h.Traits ?? [],
        HypervisorUser = h.HypervisorUser,
    };

    public static AggregateDto ToDto(this Aggregate a) =>
        new(a.Id.ToString("D"), a.Name, a.Zone, a.Metadata, a.Hosts.Select(h => h.ToString()).ToList(), a.CreatedAt);

    public static StatsPointDto ToDto(this MetricPoint p, MetricKind kind) => new(
        p.At, Math.Round(p.CpuPercent, 2), Math.Round(p.CpuMaxPercent, 2), p.MemoryUsedMib, p.MemoryMaxMib, p.DiskReadBytesPerSecond, p.DiskWriteBytesPerSecond,
        p.NetRxBytesPerSecond, p.NetTxBytesPerSecond, kind == MetricKind.Host ? p.DiskUsedGib : null, p.Samples);

    public static StatsPointDto ToDto(this LatestMetrics l, MetricKind kind) => new(
        l.At, Math.Round(l.Values.CpuPercent, 2), Math.Round(l.Values.CpuPercent, 2), l.Values.MemoryUsedMib, l.Values.MemoryUsedMib,
        l.Values.DiskReadBytesPerSecond, l.Values.DiskWriteBytesPerSecond, l.Values.NetRxBytesPerSecond, l.Values.NetTxBytesPerSecond,
        kind == MetricKind.Host ? l.Values.DiskUsedGib : null, 1);

    /// <summary>A host's availability zone: that of the aggregate it belongs to, else its own (default).</summary>
    public static string ZoneOf(Host h, IEnumerable<Aggregate> aggregates) =>
        aggregates.FirstOrDefault(a => a.Zone is not null && a.Hosts.Contains(h.Id))?.Zone ?? h.Zone;

    public static IncidentDto ToDto(this Incident i, string? hostName) =>
        new(i.Id.ToString("D"), i.HostId.ToString(), hostName, i.State, i.DetectedAt, i.ClosedAt,
            [.. i.Timeline.Select(e => new IncidentEventDto(e.At, e.Kind, e.Message, e.ServerId))]);
}
