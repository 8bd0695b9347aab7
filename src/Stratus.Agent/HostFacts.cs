namespace Stratus.Agent;

/// <summary>Facts about this machine the driver does not report (CPU feature flags).</summary>
public static class HostFacts
{
    /// <summary>The CPU's feature flags from /proc/cpuinfo (first processor), sorted; empty where unreadable.</summary>
    public static IReadOnlyList<string> CpuFlags()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("flags", StringComparison.Ordinal) && line.IndexOf(':', StringComparison.Ordinal) is var colon and > 0)
                {
                    return [.. line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal)];
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return [];
    }
}
