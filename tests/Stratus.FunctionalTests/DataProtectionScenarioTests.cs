using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Stratus.FunctionalTests;

/// <summary>
/// Issue 7 item 5 with real processes and a real VM (`./stratus up --driver qemu --hosts 1`): a snapshot revert brings
/// back a file's earlier contents; a file written, backed up (full), changed, backed up again (incremental), the server
/// deleted, the incremental restored into a new server that has the second contents; one flipped byte in the full
/// backup the incremental builds on: the restore is refused (backup_corrupt, naming that link) and nothing is created.
/// </summary>
public sealed class DataProtectionScenarioTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sdp-").FullName;
    private readonly int _port = Cli.FreePort();
    private string Url => $"http://127.0.0.1:{_port}";

    public Task InitializeAsync() => Task.CompletedTask;

    private Task<Cli.Result> S(params string[] args) => Cli.RunInAsync(Url, TimeSpan.FromMinutes(3), _data, args);

    /// <summary>Runs a command in the server over `stratus server ssh`, retrying while the guest (re)boots.</summary>
    private async Task<string> GuestAsync(string server, string command)
    {
        var sw = Stopwatch.StartNew();
        Cli.Result? last = null;
        while (sw.Elapsed < TimeSpan.FromSeconds(120))
        {
            last = await S("server", "ssh", server, "--", "sh", "-c", $"'{command}'");
            if (last.ExitCode == 0)
            {
                return last.Stdout.Trim();
            }
            await Task.Delay(500);
        }
        Assert.Fail($"ssh {server} '{command}' never succeeded: {last?.Stderr}");
        return "";
    }

    [Fact]
    public async Task SnapshotRevert_FullThenIncrementalBackup_RestoreIncremental_DamagedParentRefused_RealVm()
    {
        var timings = new List<string>();
        var sw = Stopwatch.StartNew();
        (await S("up", "--detach", "--driver", "qemu", "--hosts", "1", "--data-dir", _data, "--port", _port.ToString(CultureInfo.InvariantCulture))).Ok();
        (await S("keypair", "create", "k1")).Ok();
        var web = (await S("server", "create", "web", "--flavor", "tiny", "--image", "tiny", "--key", "k1", "--wait", "-o", "json")).Ok().Json();
        var id = web.GetProperty("id").GetString()!;
        await GuestAsync("web", "echo v1 > /data/f; sync");
        timings.Add($"up + boot + first ssh {sw.Elapsed.TotalSeconds:0.0} s");

        // ---- snapshot, change the file, revert: the earlier contents are back.
        sw.Restart();
        var snap = (await S("server", "snapshot", "create", "web", "s1", "-o", "json")).Ok().Json();
        Assert.Equal("available", snap.GetProperty("status").GetString());
        await GuestAsync("web", "echo v2 > /data/f; sync");
        Assert.Equal("v2", await GuestAsync("web", "cat /data/f"));
        (await S("server", "snapshot", "revert", "web", "s1")).Ok();
        Assert.Equal("v1", await GuestAsync("web", "cat /data/f"));
        var snaps = (await S("server", "snapshot", "list", "web", "-o", "json")).Ok().Json().EnumerateArray().ToList();
        Assert.Equal("s1", Assert.Single(snaps).GetProperty("name").GetString());
        timings.Add($"snapshot + revert (reboot) {sw.Elapsed.TotalSeconds:0.0} s");

        // ---- full backup, change the file, incremental backup; delete the server, restore the incremental: second contents.
        sw.Restart();
        await GuestAsync("web", "echo backed-up-5521 > /data/b; sync");
        var full = (await S("server", "backup", "web", "-o", "json")).Ok().Json();
        var fullId = full.GetProperty("id").GetString()!;
        Assert.Equal("available", full.GetProperty("status").GetString());
        Assert.Equal("full", full.GetProperty("kind").GetString());
        Assert.False(string.IsNullOrEmpty(full.GetProperty("manifest_sha256").GetString()));
        await GuestAsync("web", "echo incremental-7730 > /data/b; sync");
        var inc = (await S("server", "backup", "web", "-o", "json")).Ok().Json();
        var incId = inc.GetProperty("id").GetString()!;
        Assert.Equal(("incremental", fullId, "ok"), (inc.GetProperty("kind").GetString(), inc.GetProperty("parent_id").GetString(), inc.GetProperty("verified").GetString()));
        Assert.True(inc.GetProperty("size_bytes").GetInt64() * 4 < full.GetProperty("size_bytes").GetInt64(), $"{inc} vs {full}");
        timings.Add($"full + incremental backup {sw.Elapsed.TotalSeconds:0.0} s");
        sw.Restart();
        (await S("server", "delete", "web")).Ok();
        var actions = (await S("server", "actions", id, "-o", "json")).Ok().Json().EnumerateArray().Select(a => a.GetProperty("action").GetString()).ToList();
        Assert.Contains("snapshot", actions);
        Assert.Contains("revert-snapshot", actions);
        Assert.Contains("backup", actions);

        var restored = (await S("server", "restore", incId, "--name", "web2", "--wait", "-o", "json")).Ok().Json();
        Assert.NotEqual(id, restored.GetProperty("id").GetString());
        Assert.Equal("incremental-7730", await GuestAsync("web2", "cat /data/b"));
        Assert.Equal("v1", await GuestAsync("web2", "cat /data/f"));
        timings.Add($"delete + restore (2 links) + boot {sw.Elapsed.TotalSeconds:0.0} s");

        // ---- one flipped byte in the full backup's disk: the incremental's restore is refused naming that link, nothing created.
        var disk = Path.Combine(_data, "backups", id, fullId, "disk.qcow2");
        Assert.True(File.Exists(disk), disk);
        await using (var f = new FileStream(disk, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 3;
            var b = f.ReadByte();
            f.Position = f.Length / 3;
            f.WriteByte((byte)(b ^ 0x01));
        }
        var imagesBefore = (await S("image", "list", "-o", "json")).Ok().Json().GetArrayLength();
        var refused = await S("server", "restore", incId, "--name", "web3", "-o", "json");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("backup_corrupt", refused.Stderr + refused.Stdout, StringComparison.Ordinal);
        Assert.Contains($"link 1 of 2 (backup {fullId}, full", refused.Stderr + refused.Stdout, StringComparison.Ordinal);
        Assert.Contains("disk.qcow2", refused.Stderr + refused.Stdout, StringComparison.Ordinal);
        var verify = await S("backup", "verify", incId);
        Assert.NotEqual(0, verify.ExitCode);
        Assert.Contains("DAMAGED", verify.Stdout, StringComparison.Ordinal);
        var names = (await S("server", "list", "-o", "json")).Ok().Json().EnumerateArray().Select(s => s.GetProperty("name").GetString()).ToList();
        Assert.DoesNotContain("web3", names);
        Assert.Equal(imagesBefore, (await S("image", "list", "-o", "json")).Ok().Json().GetArrayLength());
        Console.WriteLine("data protection scenario: " + string.Join("; ", timings));
    }

    // The controller's, the agent's and the VMs' logs are kept under .build/test-results/data-protection-logs: a clean-clone
    // run once saw the guest's forwarded ssh port refused for 2 min right after a full backup (stop 14, not reproduced).
    public Task DisposeAsync() => ScenarioKit.TearDownAsync(Url, _data, "data-protection-logs");
}
