using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>
/// The contract every <see cref="IStateStore"/> implementation must keep. SQLite runs it today;
/// PostgreSQL subclasses the same class later, so the two cannot drift.
/// </summary>
public abstract partial class StateStoreConformanceTests : IAsyncLifetime
{
    protected IStateStore Store { get; private set; } = null!;

    protected static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Creates an empty store (migrations not yet applied).</summary>
    protected abstract Task<IStateStore> CreateStoreAsync();

    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        await Store.MigrateAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await Store.DisposeAsync();

    private static CancellationToken Ct => CancellationToken.None;

    protected async Task<Host> HostAsync(string name = "h1", int cpus = 4, long mem = 8192, long disk = 100)
    {
        return await Store.RegisterHostAsync(new HostRegistrationRecord(name, ResourceVector.Of(cpus, mem, disk), ResourceVector.Zero,
            AllocationRatios.Default, "default", "tcg", "simulated", 42), T0, Ct);
    }

    protected static Instance NewInstance(string name, ResourceVector res, string? key = null) =>
        new(InstanceId.New(), name, FlavorId.New(), ImageId.New(), null, VmState.Building, InstanceTask.Scheduling, PowerState.NoState,
            res, null, key, 0, 1, T0, T0, T0, null, null, null, [new Forward(0, 80)]);

    private static InstanceAction Created(Instance i) => new(0, i.Id, "create", "test", T0, null, "pending", null);

    [Fact]
    public async Task Migrate_Twice_IsIdempotentAndKeepsData()
    {
        var f = new Flavor(FlavorId.New(), "tiny", 1, 256, 1, true, T0);
        Assert.True(await Store.CreateFlavorAsync(f, Ct));
        await Store.MigrateAsync(Ct);
        Assert.Equal(f, await Store.GetFlavorAsync(f.Id, Ct));
    }

    [Fact]
    public async Task CreateFlavor_DuplicateName_RefusedAndNothingWritten()
    {
        Assert.True(await Store.CreateFlavorAsync(new Flavor(FlavorId.New(), "small", 1, 1024, 10, true, T0), Ct));
        var before = await Store.DumpAsync(Ct);
        Assert.False(await Store.CreateFlavorAsync(new Flavor(FlavorId.New(), "small", 2, 2048, 20, true, T0), Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
        Assert.Equal(1024, (await Store.FindFlavorAsync("small", Ct))!.RamMib);
    }

    [Fact]
    public async Task CreateInstance_RoundTrip_AllFieldsKept()
    {
        var i = NewInstance("web", ResourceVector.Of(1, 256, 1)) with { UserData = "#!/bin/sh\necho hi", KeyName = "k", Zone = "z1" };
        var o = await Store.CreateInstanceAsync(i, Created(i), Ct);
        Assert.Equal(CreateStatus.Created, o.Status);
        var read = await Store.GetInstanceAsync(i.Id, Ct);
        Assert.NotNull(read);
        Assert.Equal(i.Name, read.Name);
        Assert.Equal(i.Resources, read.Resources);
        Assert.Equal(i.UserData, read.UserData);
        Assert.Equal(i.Zone, read.Zone);
        Assert.Equal(i.Forwards, read.Forwards);
        Assert.Equal(1, read.Version);
        Assert.Single(await Store.ListActionsAsync(i.Id, Ct));
    }

    [Fact]
    public async Task CreateInstance_SameIdempotencyKey_ReturnsFirstServer()
    {
        var a = NewInstance("a", ResourceVector.Of(1, 256, 1), key: "k-1");
        var b = NewInstance("b", ResourceVector.Of(1, 256, 1), key: "k-1");
        Assert.Equal(CreateStatus.Created, (await Store.CreateInstanceAsync(a, Created(a), Ct)).Status);
        var again = await Store.CreateInstanceAsync(b, Created(b), Ct);
        Assert.Equal(CreateStatus.Existing, again.Status);
        Assert.Equal(a.Id, again.Instance.Id);
        Assert.Single((await Store.ListInstancesAsync(new InstanceQuery(), Ct)).Items);
    }

    [Fact]
    public async Task CreateInstance_LiveNameTaken_RefusedUntilDeleted()
    {
        var a = NewInstance("dup", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(a, Created(a), Ct);
        var b = NewInstance("dup", ResourceVector.Of(1, 256, 1));
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CreateStatus.NameTaken, (await Store.CreateInstanceAsync(b, Created(b), Ct)).Status);
        Assert.Equal(before, await Store.DumpAsync(Ct));
        var stored = (await Store.GetInstanceAsync(a.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.ReleaseAsync(stored with { VmState = VmState.Deleted, Task = null }, null, Ct));
        Assert.Equal(CreateStatus.Created, (await Store.CreateInstanceAsync(b, Created(b), Ct)).Status);
    }

    [Fact]
    public async Task UpdateInstance_StaleVersion_ConflictAndUnchanged()
    {
        var i = NewInstance("cas", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        Assert.Equal(CasOutcome.Ok, await Store.UpdateInstanceAsync(i with { Version = 1, Fault = "first" }, null, Ct));
        Assert.Equal(CasOutcome.Conflict, await Store.UpdateInstanceAsync(i with { Version = 1, Fault = "second" }, null, Ct));
        var read = (await Store.GetInstanceAsync(i.Id, Ct))!;
        Assert.Equal("first", read.Fault);
        Assert.Equal(2, read.Version);
        Assert.Equal(CasOutcome.NotFound, await Store.UpdateInstanceAsync(NewInstance("ghost", ResourceVector.Zero), null, Ct));
    }

    [Fact]
    public async Task Claim_FitsAndCurrentGeneration_LedgerMatchesHost()
    {
        var h = await HostAsync(cpus: 1, mem: 1024);
        var i = NewInstance("c1", ResourceVector.Of(2, 512, 10));
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        var placed = (await Store.GetInstanceAsync(i.Id, Ct))! with { HostId = h.Id, Task = InstanceTask.Spawning };
        Assert.Equal(CasOutcome.Ok, await Store.ClaimAsync(placed, h.Id, h.Generation, i.Resources, Ct));
        var after = (await Store.GetHostAsync(h.Id, Ct))!;
        Assert.Equal(i.Resources, after.Used);
        Assert.Equal(h.Generation + 1, after.Generation);
        var alloc = Assert.Single(await Store.ListAllocationsAsync(Ct));
        Assert.Equal(i.Id, alloc.InstanceId);
        Assert.Equal(h.Id, (await Store.GetInstanceAsync(i.Id, Ct))!.HostId);
    }

    [Fact]
    public async Task Claim_StaleGeneration_ConflictAndNothingWritten()
    {
        var h = await HostAsync();
        var a = NewInstance("a", ResourceVector.Of(1, 256, 1));
        var b = NewInstance("b", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(a, Created(a), Ct);
        await Store.CreateInstanceAsync(b, Created(b), Ct);
        Assert.Equal(CasOutcome.Ok, await Store.ClaimAsync(a with { HostId = h.Id }, h.Id, h.Generation, a.Resources, Ct));
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CasOutcome.Conflict, await Store.ClaimAsync(b with { HostId = h.Id }, h.Id, h.Generation, b.Resources, Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
    }

    [Fact]
    public async Task Claim_BeyondRatios_NoCapacityAndNothingWritten()
    {
        var h = await HostAsync(cpus: 1, mem: 512, disk: 10); // cpu ratio 4 -> 4 vCPUs; ram 1.0 -> 512 MiB
        var big = NewInstance("big", ResourceVector.Of(1, 1024, 1));
        await Store.CreateInstanceAsync(big, Created(big), Ct);
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CasOutcome.NoCapacity, await Store.ClaimAsync(big with { HostId = h.Id }, h.Id, h.Generation, big.Resources, Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
        var cpuHeavy = NewInstance("cpu", ResourceVector.Of(5, 64, 1));
        await Store.CreateInstanceAsync(cpuHeavy, Created(cpuHeavy), Ct);
        Assert.Equal(CasOutcome.NoCapacity, await Store.ClaimAsync(cpuHeavy with { HostId = h.Id }, h.Id, h.Generation, cpuHeavy.Resources, Ct));
    }

    [Fact]
    public async Task Release_AfterClaim_RestoresHostAndRemovesAllocation()
    {
        var h = await HostAsync();
        var i = NewInstance("r", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        await Store.ClaimAsync(i with { HostId = h.Id }, h.Id, h.Generation, i.Resources, Ct);
        var cur = (await Store.GetInstanceAsync(i.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.ReleaseAsync(cur with { VmState = VmState.Deleted, Task = null },
            new InstanceAction(0, i.Id, "delete", "test", T0, T0, "success", null), Ct));
        Assert.Equal(ResourceVector.Zero, (await Store.GetHostAsync(h.Id, Ct))!.Used);
        Assert.Empty(await Store.ListAllocationsAsync(Ct));
        Assert.Equal(2, (await Store.ListActionsAsync(i.Id, Ct)).Count);
        Assert.Empty((await Store.ListInstancesAsync(new InstanceQuery(), Ct)).Items);
        Assert.Single((await Store.ListInstancesAsync(new InstanceQuery(IncludeDeleted: true), Ct)).Items);
    }

    [Fact]
    public async Task Claim_ManyConcurrentPlacers_NeverOverCommits()
    {
        var h = await HostAsync(cpus: 2, mem: 2048, disk: 1000); // room for exactly 8 servers of 1 vCPU (ratio 4), 8×256 MiB
        var instances = Enumerable.Range(0, 40).Select(n => NewInstance($"p{n}", ResourceVector.Of(1, 256, 1))).ToList();
        foreach (var i in instances)
        {
            await Store.CreateInstanceAsync(i, Created(i), Ct);
        }
        var results = await Task.WhenAll(instances.Select(i => Task.Run(async () =>
        {
            for (var attempt = 0; attempt < 100; attempt++)
            {
                var host = (await Store.GetHostAsync(h.Id, Ct))!;
                if (!i.Resources.FitsIn(host.Free))
                {
                    return CasOutcome.NoCapacity;
                }
                var cur = (await Store.GetInstanceAsync(i.Id, Ct))!;
                var o = await Store.ClaimAsync(cur with { HostId = h.Id }, h.Id, host.Generation, i.Resources, Ct);
                if (o != CasOutcome.Conflict)
                {
                    return o;
                }
            }
            return CasOutcome.Conflict;
        })));
        Assert.Equal(8, results.Count(r => r == CasOutcome.Ok));
        var final = (await Store.GetHostAsync(h.Id, Ct))!;
        Assert.True(final.Used.FitsIn(final.Capacity));
        var allocations = await Store.ListAllocationsAsync(Ct);
        Assert.Equal(8, allocations.Count);
        Assert.Equal(final.Used, allocations.Aggregate(ResourceVector.Zero, (s, a) => s + a.Resources));
    }

    [Fact]
    public async Task ListInstances_PagesWithMarker_EveryServerOnceInOrder()
    {
        var ids = new List<InstanceId>();
        for (var n = 0; n < 25; n++)
        {
            var i = NewInstance($"s{n:00}", ResourceVector.Of(1, 256, 1));
            ids.Add(i.Id);
            await Store.CreateInstanceAsync(i, Created(i), Ct);
        }
        var seen = new List<InstanceId>();
        string? marker = null;
        var pages = 0;
        do
        {
            var page = await Store.ListInstancesAsync(new InstanceQuery(Limit: 10, Marker: marker), Ct);
            seen.AddRange(page.Items.Select(i => i.Id));
            marker = page.NextMarker;
            pages++;
        }
        while (marker is not null);
        Assert.Equal(3, pages);
        Assert.Equal(ids.OrderBy(i => i.ToString(), StringComparer.Ordinal), seen);
        var byName = await Store.ListInstancesAsync(new InstanceQuery(Name: "s07"), Ct);
        Assert.Equal("s07", Assert.Single(byName.Items).Name);
        Assert.Empty((await Store.ListInstancesAsync(new InstanceQuery(State: VmState.Active), Ct)).Items);
    }

    [Fact]
    public async Task DeleteFlavor_UsedByLiveServer_InUseAndKept()
    {
        var f = new Flavor(FlavorId.New(), "used", 1, 256, 1, true, T0);
        await Store.CreateFlavorAsync(f, Ct);
        var i = NewInstance("user", f.Resources) with { FlavorId = f.Id };
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        Assert.Equal(DeleteOutcome.InUse, await Store.DeleteFlavorAsync(f.Id, Ct));
        Assert.NotNull(await Store.GetFlavorAsync(f.Id, Ct));
        Assert.Equal(DeleteOutcome.NotFound, await Store.DeleteFlavorAsync(FlavorId.New(), Ct));
    }

    [Fact]
    public async Task RegisterHost_Twice_SameIdAndRefreshedPid()
    {
        var first = await HostAsync("hx");
        var again = await Store.RegisterHostAsync(new HostRegistrationRecord("hx", ResourceVector.Of(8, 8192, 100), ResourceVector.Zero,
            AllocationRatios.Default, "default", "tcg", "simulated", 99), T0.AddMinutes(1), Ct);
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(99, again.AgentPid);
        Assert.Equal(8000, again.Total.MilliVcpus);
        Assert.Single(await Store.ListHostsAsync(Ct));
    }

    [Fact]
    public async Task RegisterHost_HypervisorUser_StoredAndRefreshed()
    {
        var registration = new HostRegistrationRecord("hv", ResourceVector.Of(8, 8192, 100), ResourceVector.Zero,
            AllocationRatios.Default, "default", "tcg", "qemu", 7)
        {
            HypervisorUser = "stratus-qemu",
        };
        var first = await Store.RegisterHostAsync(registration, T0, Ct);
        Assert.Equal("stratus-qemu", first.HypervisorUser);
        Assert.Equal("stratus-qemu", (await Store.GetHostAsync(first.Id, Ct))!.HypervisorUser);

        var again = await Store.RegisterHostAsync(registration with { HypervisorUser = "root (fallback: setpriv failed)" }, T0.AddMinutes(1), Ct);

        Assert.Equal(first.Id, again.Id);
        Assert.Equal("root (fallback: setpriv failed)", (await Store.FindHostAsync("hv", Ct))!.HypervisorUser);
        Assert.Null((await HostAsync("no-report")).HypervisorUser);
    }

    [Fact]
    public async Task FinishAction_NewestOpenEntry_Finished()
    {
        var i = NewInstance("log", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        await Store.FinishActionAsync(i.Id, "success", null, T0.AddSeconds(3), Ct);
        var a = Assert.Single(await Store.ListActionsAsync(i.Id, Ct));
        Assert.Equal("success", a.Result);
        Assert.Equal(T0.AddSeconds(3), a.FinishedAt);
    }
}
