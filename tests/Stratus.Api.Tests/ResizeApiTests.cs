using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Agent;
using Stratus.Client;
using Stratus.Compute.Simulated;
using Stratus.Core.Ids;
using Stratus.Core.Wire;

namespace Stratus.Api.Tests;

/// <summary>
/// Resize end to end over the real gRPC stream, with three remote agents running the simulated driver (4 cores, 4 GiB
/// each): plans and their explanations, live resize (ledger, billing interval, action log, the host's VM), cold resize with
/// confirm and revert (the old flavor exactly), a host without room (move first, or say why not), quota, and bad input
/// that changes nothing. (Real VMs: Stratus.Compute.Qemu.Tests.ResizeTests.)
/// </summary>
public sealed class ResizeApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new() { Hosts = 0, WaitReady = false };
    private readonly Dictionary<string, SimulatedDriver> _drivers = [];
    private readonly List<(AgentRuntime Agent, GrpcControllerClient Client)> _agents = [];

    private StratusClient C => _cloud.Client;

    public async Task InitializeAsync()
    {
        await _cloud.InitializeAsync();
        foreach (var name in new[] { "rz-1", "rz-2", "rz-3" })
        {
            var token = (await C.IssueAgentTokenAsync(name)).Token;
            var dir = Path.Combine(_cloud.DataDir, "agents", name);
            var driver = new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "sim"), DelayScale = 0.02, Cores = 4, MemoryMib = 4096 });
            var client = new GrpcControllerClient(_cloud.AgentUrl, token, NullLogger.Instance);
            var agent = new AgentRuntime(new AgentOptions { HostName = name, StateDirectory = dir, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
                driver, client, NullLogger.Instance);
            client.Bind(agent);
            _drivers[name] = driver;
            _agents.Add((agent, client));
            await agent.StartAsync(CancellationToken.None);
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await C.HealthAsync()).HostsConnected < 3)
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(20);
        }
        await C.CreateFlavorAsync(new CreateFlavorRequest("r1", 1, 512, 10, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("r3", 3, 1024, 20, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("r8", 8, 1024, 20, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("r-half", 1, 256, 10, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("r-thin", 1, 512, 5, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("r-2g", 1, 2048, 10, true));
        await C.CreateFlavorAsync(new CreateFlavorRequest("filler", 1, 3072, 10, true));
    }

    public async Task DisposeAsync()
    {
        foreach (var (agent, client) in _agents)
        {
            await client.DisposeAsync();
            await agent.DisposeAsync();
        }
        foreach (var d in _drivers.Values)
        {
            await d.DisposeAsync();
        }
        await _cloud.DisposeAsync();
    }

    private async Task<ServerDto> ActiveAsync(string name, string flavor = "r1")
    {
        var s = await C.CreateServerAsync(new CreateServerRequest(name, flavor, "tiny", null, null, null, null));
        return await _cloud.WaitAsync(s.Id, "active");
    }

    private SimulatedDriver DriverOf(ServerDto s) => _drivers[s.HostName ?? throw new InvalidOperationException("no host")];

    private async Task<HostDto> HostAsync(string name) => await C.GetHostAsync(name);

    /// <summary>What must not change when a resize is refused.</summary>
    private async Task<string> FingerprintAsync(string id)
    {
        var s = await C.GetServerAsync(id);
        var hosts = string.Join(",", (await C.ListHostsAsync()).Select(h => $"{h.Name}:{h.Used.Vcpus}/{h.Used.RamMib}/{h.Used.DiskGib}"));
        var actions = (await C.ListActionsAsync(id)).Count;
        var usage = (await _cloud.Store.ListServerUsageAsync(new InstanceId(Guid.Parse(id)), CancellationToken.None)).Count;
        return $"{s.FlavorId} {s.Vcpus} {s.RamMib} {s.DiskGib} {s.MaxVcpus} {s.MaxRamMib} {s.VmState} {s.HostName} | {hosts} | actions {actions} | usage {usage}";
    }

    [Fact]
    public async Task Plan_ExplainsLiveColdAndRefusals()
    {
        var s = await ActiveAsync("rs-plan");
        Assert.Equal((4, 2048L), (s.MaxVcpus, s.MaxRamMib)); // 4× the flavor, within the host's 16 vCPUs and 4096 MiB

        var grow = await C.PlanResizeAsync(s.Id, "r3");
        Assert.Equal(("live", true), (grow.Mode, grow.Possible));
        Assert.Contains("vCPUs 1→3 within max 4: hot-add", grow.Steps);
        Assert.Contains("memory 512→1024 MiB within max 2048: DIMM hot-plug", grow.Steps);
        Assert.Contains("disk 10→20 GiB grows online (block_resize; the guest sees the new capacity)", grow.Steps);

        var shrink = await C.PlanResizeAsync(s.Id, "r-half");
        Assert.Equal("live", shrink.Mode);
        Assert.Contains("memory 512→256 MiB through the balloon", shrink.Steps);

        var big = await C.PlanResizeAsync(s.Id, "r8");
        Assert.Equal("cold", big.Mode);
        Assert.Contains(big.Steps, x => x.Contains("vCPUs 1→8 pass the ceiling of 4 set at create", StringComparison.Ordinal));

        var thin = await C.PlanResizeAsync(s.Id, "r-thin");
        Assert.Equal(("none", false, "disk_shrink_refused"), (thin.Mode, thin.Possible, thin.Refusal));
        Assert.Contains("disk shrink (10→5 GiB) is refused", thin.Summary, StringComparison.Ordinal);

        var liveBig = await C.PlanResizeAsync(s.Id, "r8", "live");
        Assert.Equal(("none", "live_impossible"), (liveBig.Mode, liveBig.Refusal));

        // A larger server shrinking vCPUs: always cold.
        var three = await ActiveAsync("rs-plan3", "r3");
        var down = await C.PlanResizeAsync(three.Id, "r1");
        Assert.Equal("none", down.Mode); // r1's disk (10) is below r3's (20): refused before anything else
        await C.CreateFlavorAsync(new CreateFlavorRequest("r1-wide", 1, 1024, 20, true));
        var fewer = await C.PlanResizeAsync(three.Id, "r1-wide");
        Assert.Equal("cold", fewer.Mode);
        Assert.Contains(fewer.Steps, x => x.Contains("vCPU removal (3→1) is always cold", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LiveResize_GrowsOnTheHost_LedgerBillingAndActionLogFollow()
    {
        var s = await ActiveAsync("rs-live");
        var hostBefore = await HostAsync(s.HostName!);
        var r = await C.ResizeServerAsync(s.Id, new ResizeRequest("r3", null));
        Assert.Equal("resized", r.State);
        Assert.True(r.GuestVerified);
        Assert.Equal(3, r.GuestCpus);
        Assert.Equal(("active", 3, 1024L, 20L), (r.Server.VmState, r.Server.Vcpus, r.Server.RamMib, r.Server.DiskGib));
        var after = await C.GetServerAsync(s.Id);
        Assert.Equal((await C.GetFlavorAsync("r3")).Id, after.FlavorId);
        Assert.Equal(s.HostName, after.HostName); // no move, no restart
        Assert.Equal((3, 1024L, 20L), DriverOf(after).SizeOf(new InstanceId(Guid.Parse(s.Id))));
        var hostAfter = await HostAsync(s.HostName!);
        Assert.Equal(hostBefore.Used.Vcpus + 2, hostAfter.Used.Vcpus);
        Assert.Equal(hostBefore.Used.RamMib + 512, hostAfter.Used.RamMib);
        Assert.Equal(hostBefore.Used.DiskGib + 10, hostAfter.Used.DiskGib);
        var action = (await C.ListActionsAsync(s.Id)).Single(a => a.Action == "resize-live");
        Assert.Equal("success", action.Result);
        Assert.Contains("r1 → r3", action.Message, StringComparison.Ordinal);
        // Billing: the usage interval split at the resize; the new one bills r3.
        var usage = await _cloud.Store.ListServerUsageAsync(new InstanceId(Guid.Parse(s.Id)), CancellationToken.None);
        Assert.True(usage.Count >= 2);
        Assert.Equal((512L, false), (usage[^2].Resources.MemoryMib, usage[^2].End is null));
        Assert.Equal((1024L, true), (usage[^1].Resources.MemoryMib, usage[^1].End is null));
        Assert.Equal(usage[^2].End, usage[^1].Start);

        // And back down through the balloon, live.
        await C.CreateFlavorAsync(new CreateFlavorRequest("r3-lean", 3, 512, 20, true));
        var lean = await C.ResizeServerAsync(s.Id, new ResizeRequest("r3-lean", "live"));
        Assert.Equal("resized", lean.State);
        Assert.Contains("memory 1024→512 MiB through the balloon", lean.Plan!.Steps);
        Assert.Equal((3, 512L, 20L), DriverOf(after).SizeOf(new InstanceId(Guid.Parse(s.Id))));
    }

    [Fact]
    public async Task ColdResize_RevertRestoresTheOldFlavorExactly_ConfirmKeepsTheNewOne()
    {
        var s = await ActiveAsync("rs-cold");
        var before = await FingerprintAsync(s.Id);
        var hostBefore = await HostAsync(s.HostName!);
        var r = await C.ResizeServerAsync(s.Id, new ResizeRequest("r8", null)); // above the ceiling: cold
        Assert.Equal("verify_resize", r.State);
        Assert.Equal(("verify_resize", 8), (r.Server.VmState, r.Server.Vcpus));
        Assert.Equal(8, r.Server.MaxVcpus); // the ceiling rises to the new size
        var sized = await C.GetServerAsync(s.Id);
        Assert.Equal("verify_resize", sized.VmState);
        Assert.Equal((await C.GetFlavorAsync("r1")).Id, sized.PreviousFlavorId);
        Assert.Equal((8, 1024L, 20L), DriverOf(sized).SizeOf(new InstanceId(Guid.Parse(s.Id))));
        Assert.Contains(r.Detail, d => d == "stopped");
        Assert.Equal(hostBefore.Used.Vcpus + 7, (await HostAsync(s.HostName!)).Used.Vcpus);

        var e = await Assert.ThrowsAsync<StratusApiException>(() => C.ResizeServerAsync(s.Id, new ResizeRequest("r3", null)));
        Assert.Equal("resize_pending", e.Code);

        var back = await C.RevertResizeAsync(s.Id);
        Assert.Equal("reverted", back.State);
        var reverted = await _cloud.WaitAsync(s.Id, "active");
        Assert.Null(reverted.PreviousFlavorId);
        Assert.Equal((1, 512L, 10L), DriverOf(reverted).SizeOf(new InstanceId(Guid.Parse(s.Id))));
        var hostBack = await HostAsync(s.HostName!);
        Assert.Equal((hostBefore.Used.Vcpus, hostBefore.Used.RamMib, hostBefore.Used.DiskGib), (hostBack.Used.Vcpus, hostBack.Used.RamMib, hostBack.Used.DiskGib));
        var now = await FingerprintAsync(s.Id);
        Assert.Equal(before.Split('|')[0], now.Split('|')[0]); // flavor, size, ceilings, state, host: exactly as before

        var again = await C.ResizeServerAsync(s.Id, new ResizeRequest("r3", "cold"));
        Assert.Equal("verify_resize", again.State);
        var kept = await C.ConfirmResizeAsync(s.Id);
        Assert.Equal("confirmed", kept.State);
        var confirmed = await _cloud.WaitAsync(s.Id, "active");
        Assert.Equal(3, confirmed.Vcpus);
        Assert.Null(confirmed.PreviousFlavorId);
        var none = await Assert.ThrowsAsync<StratusApiException>(() => C.RevertResizeAsync(s.Id));
        Assert.Equal("no_resize_pending", none.Code);
        var actions = (await C.ListActionsAsync(s.Id)).Select(a => $"{a.Action}:{a.Result}").ToList();
        Assert.Equal(["resize-cold:success", "revert-resize:success", "resize-cold:success", "confirm-resize:success"], actions.Where(a => a.Contains("resize", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task HostWithoutRoom_PlanSaysWhy_ThenMovesFirstWhenAnotherHostHasRoom()
    {
        await C.MaintenanceAsync("rz-2");
        await C.MaintenanceAsync("rz-3");
        var s = await ActiveAsync("rs-move");
        await ActiveAsync("rs-filler", "filler");
        Assert.Equal("rz-1", (await C.GetServerAsync(s.Id)).HostName);

        var stuck = await C.PlanResizeAsync(s.Id, "r-2g");
        Assert.Equal(("none", "no_capacity"), (stuck.Mode, stuck.Refusal));
        Assert.Contains("needs 1024 MiB more memory than rz-1 has free", stuck.Summary, StringComparison.Ordinal);
        Assert.Contains("no other host can take it", stuck.Summary, StringComparison.Ordinal);
        var before = await FingerprintAsync(s.Id);
        var refused = await Assert.ThrowsAsync<StratusApiException>(() => C.ResizeServerAsync(s.Id, new ResizeRequest("r-2g", null)));
        Assert.Equal(("no_capacity", 409), (refused.Code, refused.Status));
        Assert.Equal(before, await FingerprintAsync(s.Id));

        await C.EnableHostAsync("rz-3");
        var plan = await C.PlanResizeAsync(s.Id, "r-2g");
        Assert.Equal(("live", "rz-3"), (plan.Mode, plan.MigrateTo));
        Assert.StartsWith("needs 1024 MiB more memory than rz-1 has free: live-migrate to rz-3 first, then resize", plan.Steps[0], StringComparison.Ordinal);
        var r = await C.ResizeServerAsync(s.Id, new ResizeRequest("r-2g", null));
        Assert.Equal("resized", r.State);
        var moved = await C.GetServerAsync(s.Id);
        Assert.Equal(("rz-3", 2048L), (moved.HostName, moved.RamMib));
        Assert.Equal((1, 2048L, 10L), _drivers["rz-3"].SizeOf(new InstanceId(Guid.Parse(s.Id))));
        Assert.Equal(3072, (await HostAsync("rz-1")).Used.RamMib);
        Assert.Equal(2048, (await HostAsync("rz-3")).Used.RamMib);
        var actions = (await C.ListActionsAsync(s.Id)).Select(a => a.Action).ToList();
        Assert.True(actions.IndexOf("live-migrate") >= 0 && actions.IndexOf("live-migrate") < actions.IndexOf("resize-live"), string.Join(",", actions));
    }

    [Fact]
    public async Task Quota_RefusesGrowthBeyondIt_AndNothingChanges()
    {
        await C.CreateProjectAsync(new CreateProjectRequest("p-rs", new QuotasDto(null, 2, null, null, null, null)));
        await C.CreateUserAsync(new CreateUserRequest("rs-user", "secret-rs-user", "p-rs", "member"));
        var token = (await C.LoginAsync(new LoginRequest("rs-user", "secret-rs-user", "p-rs"))).Token;
        using var member = StratusClient.Create(_cloud.Http.BaseAddress!, null, token);
        var s = await member.CreateServerAsync(new CreateServerRequest("rs-q", "r1", "tiny", null, null, null, null));
        await _cloud.WaitAsync(s.Id, "active");
        var before = await FingerprintAsync(s.Id);

        var plan = await member.PlanResizeAsync(s.Id, "r3");
        Assert.Equal(("none", "quota_exceeded"), (plan.Mode, plan.Refusal));
        Assert.Contains("vcpus 1 + 2 > 2", plan.Summary, StringComparison.Ordinal);
        var e = await Assert.ThrowsAsync<StratusApiException>(() => member.ResizeServerAsync(s.Id, new ResizeRequest("r3", null)));
        Assert.Equal(("quota_exceeded", 409), (e.Code, e.Status));
        Assert.Equal(before, await FingerprintAsync(s.Id));
        // Within the quota it goes through.
        await C.CreateFlavorAsync(new CreateFlavorRequest("r2", 2, 512, 10, true));
        Assert.Equal("resized", (await member.ResizeServerAsync(s.Id, new ResizeRequest("r2", null))).State);
    }

    [Fact]
    public async Task BadInput_ClearFourHundreds_AndNothingChanges()
    {
        var s = await ActiveAsync("rs-bad");
        var before = await FingerprintAsync(s.Id);
        async Task Refused(ResizeRequest req, int status, string code, string? text = null)
        {
            var e = await Assert.ThrowsAsync<StratusApiException>(() => C.ResizeServerAsync(s.Id, req));
            Assert.True((status, code) == (e.Status, e.Code), $"{req}: {e.Status} {e.Code} {e.Message}");
            if (text is not null)
            {
                Assert.Contains(text, e.Message, StringComparison.Ordinal);
            }
            Assert.Equal(before, await FingerprintAsync(s.Id));
        }
        await Refused(new ResizeRequest("no-such-flavor", null), 400, "validation_failed", "no flavor named or with id 'no-such-flavor'");
        await Refused(new ResizeRequest(null, null), 400, "validation_failed", "flavor: is required");
        await Refused(new ResizeRequest("r1", null), 400, "validation_failed", "already has flavor 'r1'");
        await Refused(new ResizeRequest("r3", "sideways"), 400, "validation_failed", "mode: must be auto, live or cold");
        await Refused(new ResizeRequest("r8", "live"), 422, "live_impossible", "vCPUs 1→8 pass the ceiling of 4 set at create");
        await Refused(new ResizeRequest("r-thin", null), 422, "disk_shrink_refused", "disk shrink (10→5 GiB) is refused");
        var none = await Assert.ThrowsAsync<StratusApiException>(() => C.ConfirmResizeAsync(s.Id));
        Assert.Equal(("no_resize_pending", 409), (none.Code, none.Status));
        var missing = await Assert.ThrowsAsync<StratusApiException>(() => C.ResizeServerAsync("no-such-server", new ResizeRequest("r3", null)));
        Assert.Equal(404, missing.Status);
        // Ceilings at create: below the flavor or above the largest host are refused.
        var ceiling = await Assert.ThrowsAsync<StratusApiException>(() => C.CreateServerAsync(new CreateServerRequest("rs-ceil", "r3", "tiny", null, null, null, null) { MaxVcpus = 2, MaxRamMib = 1 << 20 }));
        Assert.Contains("max_vcpus", ceiling.Message, StringComparison.Ordinal);
        Assert.Contains("max_ram_mib", ceiling.Message, StringComparison.Ordinal);
        var custom = await C.CreateServerAsync(new CreateServerRequest("rs-ceil", "r1", "tiny", null, null, null, null) { MaxVcpus = 2, MaxRamMib = 1024 });
        Assert.Equal((2, 1024L), (custom.MaxVcpus, custom.MaxRamMib));
    }
}
