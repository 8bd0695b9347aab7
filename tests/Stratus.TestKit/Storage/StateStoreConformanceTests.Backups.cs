using Stratus.Core.Ids;
using Stratus.Storage;

namespace Stratus.TestKit.Storage;

/// <summary>Backup rows (chain, verification and expiry fields) and per-server backup policies.</summary>
public abstract partial class StateStoreConformanceTests
{
    [Fact]
    public async Task Backups_ChainFieldsAndPolicy_RoundTrip()
    {
        var server = InstanceId.New();
        var full = new BackupRecord(Guid.NewGuid(), server, "web", FlavorId.New(), ImageId.New(), "full", null, "expired", "/b/1", 9_000_000, "aa", "{}", null,
            T0, T0.AddSeconds(2), FullReason: "the disk was reverted to snapshot 's1'", ExpiredReason: "deleted by request", VerifiedAt: T0.AddMinutes(1),
            VerifyError: "disk.qcow2 is missing");
        var inc = new BackupRecord(Guid.NewGuid(), server, "web", full.FlavorId, full.ImageId, "incremental", full.Id, "available", "/b/2", 700_000, "bb", "{}",
            null, T0.AddHours(1), T0.AddHours(1).AddSeconds(1), VerifiedAt: T0.AddHours(1).AddSeconds(1));
        await Store.UpsertBackupAsync(full, Ct);
        await Store.UpsertBackupAsync(inc, Ct);
        Assert.Equal(full, await Store.GetBackupAsync(full.Id, Ct));
        Assert.Equal([full, inc], await Store.ListBackupsAsync(server, Ct));

        Assert.Null(await Store.GetBackupPolicyAsync(server, Ct));
        await Store.SetBackupPolicyAsync(server, new BackupPolicy(3, null), Ct);
        Assert.Equal(new BackupPolicy(3, null), await Store.GetBackupPolicyAsync(server, Ct));
        await Store.SetBackupPolicyAsync(server, new BackupPolicy(2, 5), Ct);
        Assert.Equal(new BackupPolicy(2, 5), await Store.GetBackupPolicyAsync(server, Ct));
    }
}
