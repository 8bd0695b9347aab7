using Stratus.Core.Compute;
using Stratus.Core.Ids;
using W = Stratus.Protocol.V1;

namespace Stratus.Protocol;

/// <summary>Converts between the protocol records and their protobuf messages (one place, both directions).</summary>
public static class ProtoMapping
{
    public static W.Hello ToProto(this HostRegistration r)
    {
        var m = new W.Hello
        {
            ProtocolMajor = r.ProtocolMajor,
            ProtocolMinor = ProtocolVersion.Minor,
            Name = r.Name,
            Cores = r.Cores,
            MemoryMib = r.MemoryMib,
            DiskGib = r.DiskGib,
            Accelerator = r.Accelerator,
            Driver = r.Driver,
            CpuModel = r.CpuModel,
            CgroupVersion = r.CgroupVersion,
            AgentPid = r.AgentPid,
        };
        m.CpuFlags.AddRange(r.CpuFlags);
        m.StoragePools.AddRange(r.StoragePools);
        if (r.HypervisorUser is not null)
        {
            m.HypervisorUser = r.HypervisorUser;
        }
        return m;
    }

    public static HostRegistration FromProto(this W.Hello m) =>
        new(m.Name, m.Cores, m.MemoryMib, m.DiskGib, m.Accelerator, m.Driver, m.CpuModel, m.CgroupVersion, m.AgentPid, m.ProtocolMajor)
        {
            CpuFlags = [.. m.CpuFlags],
            StoragePools = m.StoragePools.Count > 0 ? [.. m.StoragePools] : ["local"],
            HypervisorUser = m.HasHypervisorUser ? m.HypervisorUser : null,
        };

    public static W.Forward ToProto(this ForwardSpec f) => new() { HostPort = f.HostPort, GuestPort = f.GuestPort };

    public static ForwardSpec FromProto(this W.Forward f) => new(f.HostPort, f.GuestPort);

    public static W.DesiredVm ToProto(this DesiredVm d)
    {
        var m = new W.DesiredVm
        {
            Id = d.Id.ToString(),
            Name = d.Name,
            Vcpus = d.Vcpus,
            MemoryMib = d.MemoryMib,
            DiskGib = d.DiskGib,
            Power = d.Power.ToString(),
            RebootSeq = d.RebootSeq,
            RebootHard = d.RebootHard,
            StoragePool = d.StoragePool,
            Ha = d.Ha,
            MaxVcpus = d.MaxVcpus,
            MaxMemoryMib = d.MaxMemoryMib,
        };
        if (d.ImageRef is not null)
        {
            m.ImageRef = d.ImageRef;
        }
        if (d.ImageFormat is not null)
        {
            m.ImageFormat = d.ImageFormat;
        }
        if (d.UserData is not null)
        {
            m.UserData = d.UserData;
        }
        m.PublicKeys.AddRange(d.PublicKeys);
        m.Forwards.AddRange(d.Forwards.Select(ToProto));
        m.HotPlugged = d.HotPlugged?.ToProto();
        return m;
    }

    public static W.HotPlugLayout ToProto(this HotPlugLayout l)
    {
        var m = new W.HotPlugLayout { BootVcpus = l.BootVcpus, PluggedVcpus = l.PluggedVcpus, BootMemoryMib = l.BootMemoryMib };
        m.DimmsMib.AddRange(l.DimmsMib);
        return m;
    }

    public static HotPlugLayout? FromProto(this W.HotPlugLayout? m) =>
        m is null ? null : new(m.BootVcpus, m.PluggedVcpus, m.BootMemoryMib, [.. m.DimmsMib]);

    public static DesiredVm FromProto(this W.DesiredVm m) =>
        new(new InstanceId(Guid.Parse(m.Id)), m.Name, m.Vcpus, m.MemoryMib, m.DiskGib,
            m.HasImageRef ? m.ImageRef : null, m.HasImageFormat ? m.ImageFormat : null, m.HasUserData ? m.UserData : null,
            [.. m.PublicKeys], [.. m.Forwards.Select(FromProto)], Enum.Parse<DesiredPower>(m.Power), m.RebootSeq, m.RebootHard,
            string.IsNullOrEmpty(m.StoragePool) ? "local" : m.StoragePool, m.Ha, m.MaxVcpus, m.MaxMemoryMib)
        { HotPlugged = m.HotPlugged.FromProto() };

    public static W.ResizeRequest ToProto(this ResizeOrder o) => new()
    {
        Id = o.Id.ToString(),
        Phase = o.Phase.ToString().ToLowerInvariant(),
        Vcpus = o.Vcpus,
        MemoryMib = o.MemoryMib,
        DiskGib = o.DiskGib,
        MaxVcpus = o.MaxVcpus,
        MaxMemoryMib = o.MaxMemoryMib,
    };

    public static ResizeOrder FromProto(this W.ResizeRequest m) =>
        new(new InstanceId(Guid.Parse(m.Id)), Enum.Parse<ResizePhase>(m.Phase, ignoreCase: true), m.Vcpus, m.MemoryMib, m.DiskGib, m.MaxVcpus, m.MaxMemoryMib);

    public static W.ResizeResult ToProto(this ResizeReport r)
    {
        var m = new W.ResizeResult { Live = r.Live, GuestVerified = r.GuestVerified, GuestVisibleMs = r.GuestVisibleMs, Vm = r.Vm.ToProto() };
        if (r.GuestCpus is { } c)
        {
            m.GuestCpus = c;
        }
        if (r.GuestMemoryKib is { } k)
        {
            m.GuestMemoryKib = k;
        }
        m.Detail.AddRange(r.Detail);
        return m;
    }

    public static ResizeReport FromProto(this W.ResizeResult m) =>
        new(m.Live, m.GuestVerified, m.HasGuestCpus ? m.GuestCpus : null, m.HasGuestMemoryKib ? m.GuestMemoryKib : null, m.GuestVisibleMs, [.. m.Detail], m.Vm.FromProto());

    public static W.DesiredHost ToProto(this DesiredHostState s)
    {
        var m = new W.DesiredHost { HostId = s.HostId.ToString(), Epoch = s.Epoch };
        m.Vms.AddRange(s.Vms.Select(ToProto));
        return m;
    }

    public static DesiredHostState FromProto(this W.DesiredHost m) =>
        new(new HostId(Guid.Parse(m.HostId)), m.Epoch, [.. m.Vms.Select(FromProto)]);

    public static W.ActualVm ToProto(this ActualVm a)
    {
        var m = new W.ActualVm { Id = a.Id.ToString(), Power = a.Power.ToString(), RebootSeq = a.RebootSeq, Exists = a.Exists, Fenced = a.Fenced };
        if (a.Pid is { } pid)
        {
            m.Pid = pid;
        }
        if (a.Error is not null)
        {
            m.Error = a.Error;
        }
        m.Forwards.AddRange(a.Forwards.Select(ToProto));
        m.HotPlugged = a.HotPlugged?.ToProto();
        return m;
    }

    public static ActualVm FromProto(this W.ActualVm m) =>
        new(new InstanceId(Guid.Parse(m.Id)), Enum.Parse<PowerState>(m.Power), m.HasPid ? m.Pid : null, [.. m.Forwards.Select(FromProto)],
            m.RebootSeq, m.HasError ? m.Error : null, m.Exists, m.Fenced)
        { HotPlugged = m.HotPlugged.FromProto() };

    public static W.HostReport ToProto(this HostReport r)
    {
        var m = new W.HostReport { HostId = r.HostId.ToString(), Epoch = r.Epoch, Complete = r.Complete };
        m.Vms.AddRange(r.Vms.Select(ToProto));
        return m;
    }

    public static HostReport FromProto(this W.HostReport m) =>
        new(new HostId(Guid.Parse(m.HostId)), m.Epoch, [.. m.Vms.Select(FromProto)], m.Complete);

    public static W.MigrationSettings ToProto(this MigrationSettings s)
    {
        var m = new W.MigrationSettings { AutoConverge = s.AutoConverge, PostCopy = s.PostCopy };
        if (s.MaxDowntimeMs is { } d)
        {
            m.MaxDowntimeMs = d;
        }
        if (s.BandwidthBytesPerSecond is { } b)
        {
            m.BandwidthBytesPerSecond = b;
        }
        return m;
    }

    public static MigrationSettings FromProto(this W.MigrationSettings m) =>
        new(m.HasMaxDowntimeMs ? m.MaxDowntimeMs : null, m.AutoConverge, m.PostCopy, m.HasBandwidthBytesPerSecond ? m.BandwidthBytesPerSecond : null);

    public static W.IncomingMigration ToProto(this IncomingMigrationInfo i)
    {
        var m = new W.IncomingMigration { Id = i.Id.ToString(), Uri = i.Uri };
        if (i.DiskTarget is not null)
        {
            m.DiskTarget = i.DiskTarget;
        }
        if (i.PostCopyUnavailable is not null)
        {
            m.PostCopyUnavailable = i.PostCopyUnavailable;
        }
        m.Forwards.AddRange(i.Forwards.Select(ToProto));
        return m;
    }

    public static IncomingMigrationInfo FromProto(this W.IncomingMigration m) =>
        new(new InstanceId(Guid.Parse(m.Id)), m.Uri, m.HasDiskTarget ? m.DiskTarget : null, [.. m.Forwards.Select(FromProto)])
        {
            PostCopyUnavailable = m.HasPostCopyUnavailable ? m.PostCopyUnavailable : null,
        };

    public static W.MigrationProgress ToProto(this MigrationStatus s, long requestId)
    {
        var m = new W.MigrationProgress
        {
            RequestId = requestId,
            Status = s.Status,
            TotalBytes = s.TotalBytes,
            TransferredBytes = s.TransferredBytes,
            RemainingBytes = s.RemainingBytes,
            DirtyRateBytesPerSecond = s.DirtyRateBytesPerSecond,
            ExpectedDowntimeMs = s.ExpectedDowntimeMs,
            DiskTotalBytes = s.DiskTotalBytes,
            DiskTransferredBytes = s.DiskTransferredBytes,
        };
        if (s.DowntimeMs is { } d)
        {
            m.DowntimeMs = d;
        }
        if (s.TotalTimeMs is { } t)
        {
            m.TotalTimeMs = t;
        }
        if (s.Error is not null)
        {
            m.Error = s.Error;
        }
        return m;
    }

    public static MigrationStatus FromProto(this W.MigrationProgress m) =>
        new(m.Status, m.TotalBytes, m.TransferredBytes, m.RemainingBytes, m.DirtyRateBytesPerSecond, m.ExpectedDowntimeMs,
            m.HasDowntimeMs ? m.DowntimeMs : null, m.HasTotalTimeMs ? m.TotalTimeMs : null, m.DiskTotalBytes, m.DiskTransferredBytes,
            m.HasError ? m.Error : null);

    public static W.MetricsReport ToProto(this HostMetricsReport r)
    {
        var m = new W.MetricsReport
        {
            HostId = r.HostId.ToString(),
            AtUnixMs = r.At.ToUnixTimeMilliseconds(),
            CpuPercent = r.CpuPercent,
            MemoryUsedMib = r.MemoryUsedMib,
            DiskUsedGib = r.DiskUsedGib,
        };
        m.Vms.AddRange(r.Vms.Select(v => new W.VmMetrics
        {
            Id = v.Id.ToString(),
            CpuPercent = v.CpuPercent,
            MemoryUsedMib = v.MemoryUsedMib,
            DiskReadBps = v.DiskReadBytesPerSecond,
            DiskWriteBps = v.DiskWriteBytesPerSecond,
            NetRxBps = v.NetRxBytesPerSecond,
            NetTxBps = v.NetTxBytesPerSecond,
        }));
        return m;
    }

    public static HostMetricsReport FromProto(this W.MetricsReport m) =>
        new(new HostId(Guid.Parse(m.HostId)), DateTimeOffset.FromUnixTimeMilliseconds(m.AtUnixMs), m.CpuPercent, m.MemoryUsedMib, m.DiskUsedGib,
            [.. m.Vms.Select(v => new VmMetrics(new InstanceId(Guid.Parse(v.Id)), v.CpuPercent, v.MemoryUsedMib, v.DiskReadBps, v.DiskWriteBps, v.NetRxBps, v.NetTxBps))]);

    public static W.Snapshot ToProto(this VmSnapshot s) =>
        new() { Name = s.Name, WithMemory = s.WithMemory, VmStateBytes = s.VmStateBytes, CreatedAtUnixMs = s.CreatedAt.ToUnixTimeMilliseconds() };

    public static VmSnapshot FromProto(this W.Snapshot m) =>
        new(m.Name, m.WithMemory, m.VmStateBytes, DateTimeOffset.FromUnixTimeMilliseconds(m.CreatedAtUnixMs));

    public static W.BackupResult ToProto(this BackupResult b)
    {
        var m = new W.BackupResult { Kind = b.Kind, SizeBytes = b.SizeBytes, VirtualSizeBytes = b.VirtualSizeBytes, Files = b.Files };
        if (b.FullReason is not null)
        {
            m.FullReason = b.FullReason;
        }
        return m;
    }

    public static BackupResult FromProto(this W.BackupResult m) =>
        new(m.Kind, m.SizeBytes, m.VirtualSizeBytes, m.Files, m.HasFullReason ? m.FullReason : null);
}
