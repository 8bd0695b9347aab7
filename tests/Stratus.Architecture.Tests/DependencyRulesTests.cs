using System.Xml.Linq;

namespace Stratus.Architecture.Tests;

/// <summary>
/// Reads every project file under src/ and fails when a project references one DESIGN.md's
/// dependency rules forbid — directly or through another project.
/// </summary>
public sealed class DependencyRulesTests
{
    /// <summary>Direct references each project may have (DESIGN.md, "Dependency rules").</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>
    {
        ["Stratus.Core"] = [],
        ["Stratus.Scheduler"] = ["Stratus.Core"],
        ["Stratus.Compute"] = ["Stratus.Core"],
        ["Stratus.Compute.Qemu"] = ["Stratus.Compute"],
        ["Stratus.Storage"] = ["Stratus.Core"],
        ["Stratus.Protocol"] = ["Stratus.Core"],
        ["Stratus.Controller"] = ["Stratus.Core", "Stratus.Scheduler", "Stratus.Storage", "Stratus.Protocol"],
        ["Stratus.Api"] = ["Stratus.Controller", "Stratus.Agent"],
        ["Stratus.Agent"] = ["Stratus.Compute", "Stratus.Compute.Qemu", "Stratus.Protocol"],
        ["Stratus.Client"] = ["Stratus.Core"],
        ["Stratus.Cli"] = ["Stratus.Client", "Stratus.Simulator", "Stratus.Scheduler"],
        ["Stratus.Simulator"] = ["Stratus.Core", "Stratus.Scheduler"],
    };

    /// <summary>Projects that must never be reached, even transitively.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Forbidden = new Dictionary<string, string[]>
    {
        ["Stratus.Controller"] = ["Stratus.Compute", "Stratus.Compute.Qemu", "Stratus.Agent", "Stratus.Api"],
        ["Stratus.Simulator"] = ["Stratus.Api", "Stratus.Agent", "Stratus.Compute.Qemu", "Stratus.Storage", "Stratus.Controller"],
        ["Stratus.Scheduler"] = ["Stratus.Storage", "Stratus.Compute", "Stratus.Controller", "Stratus.Protocol"],
        ["Stratus.Cli"] = ["Stratus.Controller", "Stratus.Storage", "Stratus.Api", "Stratus.Agent"],
        ["Stratus.Core"] = ["*"],
    };

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("repository root (Stratus.slnx) not found");
    }

    public static Dictionary<string, string[]> ReadGraph(string root) =>
        Directory.GetFiles(Path.Combine(root, "src"), "*.csproj", SearchOption.AllDirectories).ToDictionary(
            p => Path.GetFileNameWithoutExtension(p),
            p => XDocument.Load(p).Descendants("ProjectReference")
                .Select(r => Path.GetFileNameWithoutExtension(r.Attribute("Include")!.Value.Replace('\\', '/')))
                .ToArray());

    /// <summary>Every breach of the rules in <paramref name="graph"/>, as sentences.</summary>
    public static List<string> Breaches(IReadOnlyDictionary<string, string[]> graph)
    {
        var breaches = new List<string>();
        foreach (var (project, refs) in graph)
        {
            if (!Allowed.TryGetValue(project, out var allowed))
            {
                breaches.Add($"{project} has no dependency rule; add one to DESIGN.md and this test");
                continue;
            }
            breaches.AddRange(refs.Where(r => !allowed.Contains(r)).Select(r => $"{project} must not reference {r}"));
            if (Forbidden.TryGetValue(project, out var forbidden))
            {
                var reach = Closure(graph, project);
                breaches.AddRange(forbidden.Contains("*")
                    ? reach.Select(r => $"{project} must reference nothing, reaches {r}")
                    : reach.Where(forbidden.Contains).Select(r => $"{project} must never reach {r}, even transitively"));
            }
        }
        return breaches;
    }

    private static HashSet<string> Closure(IReadOnlyDictionary<string, string[]> graph, string start)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>(graph.GetValueOrDefault(start) ?? []);
        while (stack.Count > 0)
        {
            var p = stack.Pop();
            if (seen.Add(p))
            {
                foreach (var next in graph.GetValueOrDefault(p) ?? [])
                {
                    stack.Push(next);
                }
            }
        }
        return seen;
    }

    [Fact]
    public void ProjectReferences_FollowDesignRules_NoBreach()
    {
        var graph = ReadGraph(RepoRoot());
        Assert.Contains("Stratus.Controller", graph.Keys);
        Assert.True(graph.Count >= 12, $"expected every src project, found {graph.Count}");
        var breaches = Breaches(graph);
        Assert.True(breaches.Count == 0, string.Join(Environment.NewLine, breaches));
    }

    [Fact]
    public void Breaches_ControllerReferencingCompute_Detected()
    {
        var graph = ReadGraph(RepoRoot());
        graph["Stratus.Controller"] = [.. graph["Stratus.Controller"], "Stratus.Compute"];
        var breaches = Breaches(graph);
        Assert.Contains("Stratus.Controller must not reference Stratus.Compute", breaches);
        Assert.Contains("Stratus.Controller must never reach Stratus.Compute, even transitively", breaches);
    }

    [Fact]
    public void Breaches_TransitiveReachOfQemuFromSimulator_Detected()
    {
        var graph = ReadGraph(RepoRoot());
        graph["Stratus.Scheduler"] = [.. graph["Stratus.Scheduler"], "Stratus.Compute.Qemu"];
        var breaches = Breaches(graph);
        Assert.Contains("Stratus.Simulator must never reach Stratus.Compute.Qemu, even transitively", breaches);
    }

    [Fact]
    public void CorePackages_None_CoreHasNoPackageReferences()
    {
        var core = XDocument.Load(Path.Combine(RepoRoot(), "src", "Stratus.Core", "Stratus.Core.csproj"));
        Assert.Empty(core.Descendants("PackageReference"));
        Assert.Empty(core.Descendants("FrameworkReference"));
    }
}
