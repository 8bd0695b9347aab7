using System.Text.Json.Nodes;
using Stratus.Simulator.Scenarios;

namespace Stratus.Simulator.Tests.Scenarios;

public sealed class ScenarioFileTests
{
    private static readonly string[] Days = ["20110303", "20110306", "20110309", "20110322", "20110325"];

    private static string ScenarioDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Stratus.slnx")))
            {
                return Path.Combine(dir.FullName, "bench", "scenarios");
            }
        }
        throw new DirectoryNotFoundException("repository root not found");
    }

    private static JsonObject Load(string name) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(ScenarioDir(), name)))!;

    [Theory]
    [InlineData("stratus")]
    [InlineData("thr-mmt")]
    public void Scenario_DiffersFromLrMmt_OnlyInNameAndPolicy(string variant)
    {
        foreach (var day in Days)
        {
            var lr = Load($"planetlab-{day}-lr-mmt.json");
            var other = Load($"planetlab-{day}-{variant}.json");
            var differing = lr.Select(p => p.Key).Union(other.Select(p => p.Key))
                .Where(k => !JsonNode.DeepEquals(lr[k], other[k]))
                .Order(StringComparer.Ordinal)
                .ToArray();
            Assert.Equal(["name", "policy"], differing);
        }
    }

    [Fact]
    public void RealisticVariant_DiffersFromStratus_OnlyInNameModeAndRealisticSettings()
    {
        foreach (var day in Days)
        {
            var s = Load($"planetlab-{day}-stratus.json");
            var r = Load($"planetlab-{day}-stratus-realistic.json");
            var differing = s.Select(p => p.Key).Union(r.Select(p => p.Key)).Where(k => !JsonNode.DeepEquals(s[k], r[k])).Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(["mode", "name", "realistic"], differing);
        }
    }

    [Fact]
    public void EveryShippedScenario_LoadsAndValidates()
    {
        var files = Directory.GetFiles(ScenarioDir(), "*.json");
        Assert.True(files.Length >= 20);
        foreach (var f in files)
        {
            var s = Scenario.Load(f);
            Assert.Empty(s.Validate());
            Assert.NotNull(PolicyFactory.Create(s.Policy));
        }
    }

    [Fact]
    public void Validate_ReportsEveryProblemAtOnce()
    {
        var errors = new Scenario { IntervalSeconds = 0 }.Validate();
        Assert.True(errors.Count >= 4);
    }
}
