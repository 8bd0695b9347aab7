namespace Stratus.Simulator.Placement;

/// <summary>
/// A placement scale scenario, declared as data. Defaults: the azure workload on 10,000 hosts of
/// 64 vCPUs and 512 GiB with Stratus' default allocation ratios, the spread profile, one placer.
/// </summary>
public sealed record PlacementBenchOptions
{
    /// <summary><c>azure</c> (VM arrivals and departures) or <c>alibaba</c> (pods that all stay placed).</summary>
    public string Workload { get; init; } = "azure";

    /// <summary>Scheduling profile: spread, pack or energy.</summary>
    public string Profile { get; init; } = "spread";

    /// <summary>Hosts in the fleet (azure; 1..1,000,000). The alibaba workload uses the trace's own 1,523 nodes.</summary>
    public int Hosts { get; init; } = 10_000;

    /// <summary>Azure arrivals to replay (the first N of <c>v1.test.txt</c>).</summary>
    public int Arrivals { get; init; } = 100_000;

    /// <summary>The shared data folder; null means <c>../shared/data</c> beside the repository root.</summary>
    public string? DataDir { get; init; }

    /// <summary>Concurrent placers (1, 2, 4…) sharing one in-memory claim ledger.</summary>
    public int Placers { get; init; } = 1;

    /// <summary>When true, every azure tenant batch of two or more VMs is a hard anti-affinity group.</summary>
    public bool AntiAffinity { get; init; }

    /// <summary>Alibaba: count GPUs as a packed dimension (pods asking for GPUs need them free on the node).</summary>
    public bool Gpu { get; init; }

    /// <summary>Overrides the profile's sampling limit (0 = score every feasible host); null keeps the profile's.</summary>
    public int? SampleSize { get; init; }

    /// <summary>Azure host size: vCPUs.</summary>
    public int HostVcpus { get; init; } = 64;

    /// <summary>Azure host size: memory in GiB.</summary>
    public int HostMemoryGib { get; init; } = 512;

    /// <summary>CPU allocation ratio of the azure hosts (Stratus default 4.0).</summary>
    public double CpuAllocationRatio { get; init; } = 4.0;

    /// <summary>Azure: also re-pack the live VMs at the peak from scratch with the pack profile (off by default: it costs a second run).</summary>
    public bool RepackPeak { get; init; }

    /// <summary>
    /// Alibaba: <c>size</c> (default) places the largest pods first; <c>trace</c> places them in the
    /// trace's order (online), which strands a few 120-vCPU pods once the only nodes that can hold
    /// them are partly filled. <c>size</c> orders (by CPU, then memory, then GPU: first-fit-decreasing style, since every pod stays placed
    /// the problem is offline and the order is the benchmark's choice).
    /// </summary>
    public string Order { get; init; } = "size";

    /// <summary>Throws <see cref="ArgumentException"/> listing every invalid option.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (Workload is not ("azure" or "alibaba"))
        {
            errors.Add($"workload must be azure or alibaba, not '{Workload}'");
        }
        if (!Scheduler.Profiles.Profiles.TryGet(Profile, out _))
        {
            errors.Add($"unknown profile '{Profile}'");
        }
        if (Order is not ("trace" or "size"))
        {
            errors.Add($"order must be trace or size, not '{Order}'");
        }
        if (Hosts is < 1 or > 1_000_000)
        {
            errors.Add("hosts must be 1..1,000,000");
        }
        if (Arrivals < 1)
        {
            errors.Add("arrivals must be positive");
        }
        if (Placers is < 1 or > 64)
        {
            errors.Add("placers must be 1..64");
        }
        if (SampleSize is < 0)
        {
            errors.Add("sample size must be ≥ 0");
        }
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors));
        }
    }
}
