using Stratus.Core.Compute;
using Stratus.Core.Resources;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>HA admission control's part of the contract: the admission generation and the servers the reserve counts.</summary>
public abstract partial class StateStoreConformanceTests
{
    [Fact]
    public async Task CreateInstance_AdmissionGenerationMoved_AdmissionChangedAndNothingWritten()
    {
        var g = await Store.GetAdmissionGenerationAsync(Ct);
        var a = NewInstance("adm-a", ResourceVector.Of(1, 256, 1));
        Assert.Equal(CreateStatus.Created, (await Store.CreateInstanceAsync(a, Created(a), g, Ct)).Status);
        Assert.Equal(g + 1, await Store.GetAdmissionGenerationAsync(Ct));
        var b = NewInstance("adm-b", ResourceVector.Of(1, 256, 1));
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CreateStatus.AdmissionChanged, (await Store.CreateInstanceAsync(b, Created(b), g, Ct)).Status);
        Assert.Equal(before, await Store.DumpAsync(Ct));
        Assert.Equal(CreateStatus.Created, (await Store.CreateInstanceAsync(b, Created(b), g + 1, Ct)).Status);
        // Without a generation (admission control off) nothing is compared or bumped.
        var c = NewInstance("adm-c", ResourceVector.Of(1, 256, 1));
        Assert.Equal(CreateStatus.Created, (await Store.CreateInstanceAsync(c, Created(c), Ct)).Status);
        Assert.Equal(g + 2, await Store.GetAdmissionGenerationAsync(Ct));
    }

    [Fact]
    public async Task CreateInstance_NameTakenWithGeneration_GenerationNotBumped()
    {
        var a = NewInstance("adm-dup", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(a, Created(a), Ct);
        var g = await Store.GetAdmissionGenerationAsync(Ct);
        var before = await Store.DumpAsync(Ct);
        var b = NewInstance("adm-dup", ResourceVector.Of(1, 256, 1));
        Assert.Equal(CreateStatus.NameTaken, (await Store.CreateInstanceAsync(b, Created(b), g, Ct)).Status);
        Assert.Equal(before, await Store.DumpAsync(Ct));
    }

    [Fact]
    public async Task CreateInstance_IdempotencyKeyUsed_ExistingEvenWithStaleGeneration()
    {
        var g = await Store.GetAdmissionGenerationAsync(Ct);
        var a = NewInstance("adm-k1", ResourceVector.Of(1, 256, 1), key: "adm-key");
        await Store.CreateInstanceAsync(a, Created(a), g, Ct);
        var again = await Store.CreateInstanceAsync(NewInstance("adm-k2", ResourceVector.Of(1, 256, 1), key: "adm-key"), Created(a), g, Ct);
        Assert.Equal(CreateStatus.Existing, again.Status);
        Assert.Equal(a.Id, again.Instance.Id);
        Assert.Equal(a.Id, (await Store.FindInstanceByIdempotencyKeyAsync("adm-key", Ct))?.Id);
        Assert.Null(await Store.FindInstanceByIdempotencyKeyAsync("other-key", Ct));
    }

    [Fact]
    public async Task CreateInstances_AdmissionGenerationMoved_WholeBatchRefused()
    {
        var g = await Store.GetAdmissionGenerationAsync(Ct);
        var first = NewInstance("adm-first", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(first, Created(first), g, Ct);
        var batch = new[] { NewInstance("adm-b-1", ResourceVector.Of(1, 256, 1)), NewInstance("adm-b-2", ResourceVector.Of(1, 256, 1)) }.Select(i => (i, Created(i))).ToList();
        var before = await Store.DumpAsync(Ct);
        Assert.Equal(CreateStatus.AdmissionChanged, await Store.CreateInstancesAsync(batch, g, Ct));
        Assert.Equal(before, await Store.DumpAsync(Ct));
        Assert.Equal(CreateStatus.Created, await Store.CreateInstancesAsync(batch, g + 1, Ct));
        Assert.Equal(g + 2, await Store.GetAdmissionGenerationAsync(Ct));
    }

    [Fact]
    public async Task UpdateInstance_AdmissionGenerationMoved_ConflictAndUnchanged()
    {
        var i = NewInstance("adm-upd", ResourceVector.Of(1, 256, 1));
        await Store.CreateInstanceAsync(i, Created(i), Ct);
        var g = await Store.GetAdmissionGenerationAsync(Ct);
        Assert.Equal(CasOutcome.Conflict, await Store.UpdateInstanceAsync(i with { Ha = true }, null, null, g - 1, Ct));
        Assert.False((await Store.GetInstanceAsync(i.Id, Ct))!.Ha);
        // A stale row version with a current generation: Conflict, and the generation is not bumped either.
        Assert.Equal(CasOutcome.Conflict, await Store.UpdateInstanceAsync(i with { Ha = true, Version = 7 }, null, null, g, Ct));
        Assert.Equal(g, await Store.GetAdmissionGenerationAsync(Ct));
        Assert.Equal(CasOutcome.Ok, await Store.UpdateInstanceAsync(i with { Ha = true }, null, null, g, Ct));
        Assert.True((await Store.GetInstanceAsync(i.Id, Ct))!.Ha);
        Assert.Equal(g + 1, await Store.GetAdmissionGenerationAsync(Ct));
    }

    [Fact]
    public async Task ListReservedServers_PlacedOrWaiting_CountedOnceWithHaFlag()
    {
        var h = await HostAsync();
        var waiting = NewInstance("rs-wait", ResourceVector.Of(1, 256, 1)) with { Ha = true };
        var placed = NewInstance("rs-placed", ResourceVector.Of(2, 512, 2));
        var failed = NewInstance("rs-failed", ResourceVector.Of(1, 256, 1));
        foreach (var i in new[] { waiting, placed, failed })
        {
            await Store.CreateInstanceAsync(i, Created(i), Ct);
        }
        Assert.Equal(CasOutcome.Ok, await Store.ClaimAsync(placed with { HostId = h.Id, Task = InstanceTask.Spawning }, h.Id, h.Generation, placed.Resources, Ct));
        var stopped = (await Store.GetInstanceAsync(placed.Id, Ct))!;
        Assert.Equal(CasOutcome.Ok, await Store.UpdateInstanceAsync(stopped with { Task = null, VmState = VmState.Stopped }, null, Ct));
        Assert.Equal(CasOutcome.Ok, await Store.UpdateInstanceAsync(failed with { Task = null, VmState = VmState.Error }, null, Ct));
        var listed = await Store.ListReservedServersAsync(Ct);
        Assert.Equal(2, listed.Count);
        Assert.Contains(listed, r => r.Id == waiting.Id && r.Ha && r.Resources == waiting.Resources);
        Assert.Contains(listed, r => r.Id == placed.Id && !r.Ha && r.Resources == placed.Resources);
    }
}
