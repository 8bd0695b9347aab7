using System.Text.Json;
using Stratus.Scheduler.Consolidation;
using Stratus.Simulator.Engine;
using Stratus.Simulator.Scenarios;
using Stratus.Simulator.Traces;

namespace Stratus.Simulator.Tests.Engine;

public sealed class SimulationTests
{
    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "Data", name);

    [Fact]
    public void PlanetLab_ReadsOrderFileWithSpacesAnd289Samples()
    {
        var day = PlanetLabTrace.LoadDay(Data("planetlab/20110303"), Data("planetlab/cloudsim_listFiles_order_20110303.txt"));
        Assert.Equal(40, day.Count);
        Assert.Equal("planetlab3_cs_st-andrews_ac_uk_upmc_ts", day[0].Name);
        Assert.All(day, t => Assert.Equal(289, t.Samples.Length));
        Assert.All(day, t => Assert.Equal(t.Samples[287], t.Samples[288]));
        Assert.All(day, t => Assert.All(t.Samples, u => Assert.InRange(u, 0, 1)));
    }

    [Fact]
    public void Utilization_BetweenSamples_IsLinear()
    {
        double[] s = [0.2, 0.4, 0.8];
        Assert.Equal(0.4, PlanetLabTrace.UtilizationAt(s, 300, 300), 12);
        Assert.Equal(0.3, PlanetLabTrace.UtilizationAt(s, 150, 300), 12);
        Assert.Equal(0.6, PlanetLabTrace.UtilizationAt(s, 450, 300), 12);
    }

    [Fact]
    public void OneHostOneVm_ConstantLoad_EnergyIsPowerTimesTimeAfterFirstRound()
    {
        // CloudSim accounting: the first round (0.1 s → 300.1 s) starts from utilisation 0 and draws nothing;
        // rounds at 300.1 + 300k up to 86,100.1 s then integrate P(25 %) = 103 W over 85,800 s.
        var trace = Enumerable.Repeat(0.5, 289).ToArray();
        var sim = new DatacenterSimulation([TestCluster.G5], [new SimulatedVm(new VmSpec("v", 2660, 613, 100_000), trace)],
            SimulationMode.CloudSim, 300, 86_400, planner: null, new StaticThresholdDetector(0.7));
        var r = sim.Run("one", "none");
        Assert.Equal(103.0 * 85_800 / 3.6e6, r.EnergyKwh, 6);
        Assert.Equal(0, r.Migrations);
        Assert.Equal(0, r.SlatahPct);
    }

    [Fact]
    public void CloudSimMode_VmWhoseDemandReachesZero_IsRetired()
    {
        var trace = Enumerable.Repeat(0.5, 289).ToArray();
        for (var i = 10; i < 289; i++)
        {
            trace[i] = 0;
        }
        var vms = new[] { new SimulatedVm(new VmSpec("v", 2660, 613, 100_000), trace) };
        var cloudsim = new DatacenterSimulation([TestCluster.G5], vms, SimulationMode.CloudSim, 300, 86_400, null, new StaticThresholdDetector(0.7)).Run("a", "none");
        var realistic = new DatacenterSimulation([TestCluster.G5], vms, SimulationMode.Realistic, 300, 86_400, null, new StaticThresholdDetector(0.7)).Run("b", "none");
        Assert.True(cloudsim.EnergyKwh < 0.1);
        // Realistic mode keeps the VM and the host on, idle, all day.
        Assert.True(realistic.EnergyKwh > 93.7 * 80_000 / 3.6e6);
    }

    [Fact]
    public void TinyScenario_LrMmt_EndToEnd_WritesOutputsAndPlausibleMetrics()
    {
        var outDir = Path.Combine(Path.GetTempPath(), "stratus-sim-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var r = SimulationRunner.Run(Data("tiny-lr-mmt.json"), dataDir: null, outDir, DateTime.Now);
            Assert.Equal(40, r.Vms);
            Assert.Equal(20, r.Hosts);
            Assert.True(r.Migrations > 0);
            Assert.True(r.EnergyKwh > r.ServedFloorKwh);
            Assert.True(r.EnergyKwh < 20 * 135 * 24 / 1000.0);
            Assert.InRange(r.SlatahPct, 0, 100);
            Assert.Equal(r.SlatahPct * r.PdmPct / 100, r.SlavPct, 9);
            Assert.True(r.ElapsedS >= r.EngineS);
            Assert.True(File.Exists(Path.Combine(outDir, "tiny-lr-mmt.csv")));
            Assert.Contains("<svg", File.ReadAllText(Path.Combine(outDir, "tiny-lr-mmt.svg")), StringComparison.Ordinal);
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "tiny-lr-mmt.json")));
            foreach (var key in new[] { "energy_kwh", "migrations", "slav_pct", "slatah_pct", "pdm_pct", "elapsed_s" })
            {
                Assert.True(json.RootElement.TryGetProperty(key, out _), key);
            }
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }
    }

    [Fact]
    public void TinyScenario_Stratus_UsesFewerMigrationsThanLrMmt()
    {
        var lr = SimulationRunner.Run(Data("tiny-lr-mmt.json"), null);
        var stratus = SimulationRunner.Run(Data("tiny-stratus.json"), null);
        Assert.True(stratus.Migrations < lr.Migrations, $"{stratus.Migrations} vs {lr.Migrations}");
    }

    [Fact]
    public void SeededRandomSelection_RunsTwice_SameNumbers()
    {
        var a = SimulationRunner.Run(Data("tiny-thr-rs.json"), null);
        var b = SimulationRunner.Run(Data("tiny-thr-rs.json"), null);
        Assert.Equal(a.EnergyKwh, b.EnergyKwh);
        Assert.Equal(a.Migrations, b.Migrations);
        Assert.Equal(a.SlavPct, b.SlavPct);
        Assert.True(a.Migrations > 0);
    }

    [Fact]
    public async Task Cli_BadArguments_ReturnsTwo()
    {
        var err = new StringWriter();
        Assert.Equal(2, await Cli.SimulateMain.RunAsync([], TextWriter.Null, err));
        Assert.Contains("usage", err.ToString(), StringComparison.Ordinal);
    }
}
