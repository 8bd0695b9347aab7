using System.Globalization;

namespace Stratus.Scheduler.Plugins;

/// <summary>Formats resource amounts for people (reasons, traces).</summary>
public static class ResourceFormat
{
    /// <summary>Milli-vCPUs as vCPUs, e.g. "2.5 vCPU".</summary>
    public static string Cpu(long milli) => string.Create(CultureInfo.InvariantCulture, $"{milli / 1000.0:0.###} vCPU");

    /// <summary>MiB as "4 GiB" when whole, else "1536 MiB".</summary>
    public static string Memory(long mib) => mib % 1024 == 0
        ? string.Create(CultureInfo.InvariantCulture, $"{mib / 1024} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{mib} MiB");

    /// <summary>GiB of disk.</summary>
    public static string Disk(long gib) => string.Create(CultureInfo.InvariantCulture, $"{gib} GiB");

    /// <summary>Milli-GPUs as GPUs, e.g. "0.46 GPU".</summary>
    public static string Gpu(long milli) => string.Create(CultureInfo.InvariantCulture, $"{milli / 1000.0:0.###} GPU");

    /// <summary>Plural helper: "1 host", "3 hosts".</summary>
    public static string Hosts(int n) => n == 1 ? "1 host" : string.Create(CultureInfo.InvariantCulture, $"{n} hosts");
}
