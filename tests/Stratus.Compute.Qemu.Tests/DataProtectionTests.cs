using System.Diagnostics;
using Stratus.Compute;
using Stratus.Core.Backups;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Snapshots and backups of real tiny guests: files are written into <c>/data</c> (the VM's disk) over SSH.</summary>
public sealed class DataProtectionTests : IAsyncLifetime
{
    private readonly string _data = TestEnvironment.NewDataDirectory();
    private readonly List<InstanceId> _ids = [];
    private QemuDriver _driver = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        _driver = new QemuDriver(TestEnvironment.Options(_data));
        _key = Path.Combine(_data, "id_ed25519");
        var (code, output) = await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", _key]);
        Assert.True(code == 0, output);
    }

    public async Task DisposeAsync()
    {
        foreach (var id in _ids)
        {
            await _driver.DestroyAsync(id, CancellationToken.None);
        }

        await _driver.DisposeAsync();
        TestEnvironment.DeleteDirectory(_data);
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, (await stdout) + (await stderr));
    }

    private Task<(int Code, string Output)> SshAsync(int port, string command) => RunAsync("ssh",
    [
        "-i", _key, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "BatchMode=yes",
        "root@127.0.0.1", command,
    ]);

    /// <summary>Runs a command in the guest, retrying while SSH is not up yet (bounded).</summary>
    private async Task<string> GuestAsync(int port, string command)
    {
        var sw = Stopwatch.StartNew();
        var last = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            var (code, output) = await SshAsync(port, command);
            if (code == 0)
            {
                return output.Trim();
            }

            last = output;
            await Task.Delay(500);
        }

        Assert.Fail($"ssh '{command}' never succeeded: {last}");
        return "";
    }

    private async Task<(VmSpec Spec, int SshPort)> BootAsync(string? image = null)
    {
        var id = InstanceId.New();
        _ids.Add(id);
        var spec = await TestEnvironment.TinySpecAsync(id, null, forwards: [new PortForward(0, 22)]);
        spec = spec with { PublicKeys = [(await File.ReadAllTextAsync(_key + ".pub")).Trim()] };
        if (image is not null)
        {
            spec = spec with { ImagePath = image, ImageFormat = "qcow2" };
        }

        var status = await _driver.CreateAsync(spec, CancellationToken.None);
        return (spec, status.Forwards.Single().HostPort);
    }

    [Fact]
    public async Task RevertSnapshot_DiskOnlyAndWithMemory_BringsBackEarlierContents()
    {
        var (spec, port) = await BootAsync();
        await GuestAsync(port, "echo one > /data/f; sync");
        // A backup first, so the disk carries a backup bitmap: QEMU refuses to revert a disk with bitmaps unless the driver drops them.
        await _driver.BackupAsync(spec.Id, Path.Combine(_data, "backups", "k1"), null, CancellationToken.None);
        var disk = await _driver.CreateSnapshotAsync(spec.Id, "s1", withMemory: false, CancellationToken.None);
        Assert.False(disk.WithMemory);
        await GuestAsync(port, "echo two > /data/f; sync");

        var pid = (await _driver.GetStatusAsync(spec.Id, CancellationToken.None))!.Pid;
        var reverted = await _driver.RevertSnapshotAsync(spec.Id, "s1", CancellationToken.None);
        Assert.Equal(PowerState.Running, reverted.Power);
        Assert.NotEqual(pid, reverted.Pid); // disk-only revert = power off, roll back, boot
        Assert.Equal(port, reverted.Forwards.Single().HostPort);
        Assert.Equal("one", await GuestAsync(port, "cat /data/f"));

        // With memory: the guest resumes where it was, page cache included (no sync needed), same process.
        await GuestAsync(port, "echo three > /data/f");
        await _driver.BackupAsync(spec.Id, Path.Combine(_data, "backups", "k2"), null, CancellationToken.None);
        var mem = await _driver.CreateSnapshotAsync(spec.Id, "m1", withMemory: true, CancellationToken.None);
        Assert.True(mem.WithMemory && mem.VmStateBytes > 0);
        await GuestAsync(port, "echo four > /data/f; sync");
        pid = (await _driver.GetStatusAsync(spec.Id, CancellationToken.None))!.Pid;
        var back = await _driver.RevertSnapshotAsync(spec.Id, "m1", CancellationToken.None);
        Assert.Equal(pid, back.Pid);
        Assert.Equal(PowerState.Running, back.Power);
        Assert.Equal("three", await GuestAsync(port, "cat /data/f"));
        var next = await _driver.BackupAsync(spec.Id, Path.Combine(_data, "backups", "k3"), Path.Combine(_data, "backups", "k2"), CancellationToken.None);
        Assert.Equal("full", next.Kind);
        Assert.Contains("reverted to snapshot 'm1'", next.FullReason, StringComparison.Ordinal);

        Assert.Equal(["s1", "m1"], (await _driver.ListSnapshotsAsync(spec.Id, CancellationToken.None)).Select(s => s.Name));
        var dup = await Assert.ThrowsAsync<ComputeException>(() => _driver.CreateSnapshotAsync(spec.Id, "s1", false, CancellationToken.None));
        Assert.Equal("snapshot_exists", dup.Code);
        var missing = await Assert.ThrowsAsync<ComputeException>(() => _driver.RevertSnapshotAsync(spec.Id, "nope", CancellationToken.None));
        Assert.Equal("snapshot_not_found", missing.Code);
        var bad = await Assert.ThrowsAsync<ComputeException>(() => _driver.CreateSnapshotAsync(spec.Id, "a b", false, CancellationToken.None));
        Assert.Equal("invalid_spec", bad.Code);
        await _driver.DeleteSnapshotAsync(spec.Id, "m1", CancellationToken.None);
        await _driver.DeleteSnapshotAsync(spec.Id, "m1", CancellationToken.None); // idempotent
        Assert.Equal(["s1"], (await _driver.ListSnapshotsAsync(spec.Id, CancellationToken.None)).Select(s => s.Name));
    }

    /// <summary>
    /// One guest through a chain: full (running) → incremental (running) → incremental (stopped: the bitmap survived the
    /// shutdown, the job runs in qemu-storage-daemon) → snapshot revert → full with the reason. Then the incremental and
    /// the full each boot into their own point in time, and a flipped byte in the full is found.
    /// </summary>
    [Fact]
    public async Task Backup_OverlayHeaderRewrittenToAHostFile_BackupHoldsTheRealBase()
    {
        // QEMU (stratus-qemu) holds the overlay open read-write, so one taken over by its guest can rewrite the overlay's
        // header to name any host file as its base; qemu-img runs as root. Here the header is rewritten from outside, as
        // that QEMU would through its descriptor, and the backup must still be the real base (never the host file).
        var dir = Path.Combine(_data, "header");
        Directory.CreateDirectory(dir);
        var image = Path.Combine(dir, "base.qcow2");
        Assert.Equal(0, (await RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"])).Code);
        Assert.Equal(0, (await RunAsync("qemu-io", ["-c", "write -P 0x5a 0 4M", image])).Code);
        var secret = Path.Combine(dir, "host-secret");
        await File.WriteAllTextAsync(secret, string.Concat(Enumerable.Repeat("STRATUS-HOST-SECRET\n", 50_000)));
        var id = InstanceId.New();
        _ids.Add(id);
        var spec = TestEnvironment.BareSpec(id) with { DiskGib = 1, ImagePath = image, ImageFormat = "qcow2" };
        await _driver.CreateAsync(spec, CancellationToken.None);
        await _driver.StopAsync(id, TimeSpan.Zero, CancellationToken.None);
        var overlay = Path.Combine(_data, "vms", id.ToString(), "disk.qcow2");
        var rebase = await RunAsync("qemu-img", ["rebase", "-u", "-b", secret, "-F", "raw", overlay]);
        Assert.True(rebase.Code == 0, rebase.Output);

        await _driver.BackupAsync(id, Path.Combine(_data, "backups", "header"), null, CancellationToken.None);
        await _driver.CreateSnapshotAsync(id, "after", withMemory: false, CancellationToken.None);
        await _driver.RevertSnapshotAsync(id, "after", CancellationToken.None);

        var backup = Path.Combine(_data, "backups", "header", "disk.qcow2");
        var compare = await RunAsync("qemu-img", ["compare", "-U", backup, image]);
        Assert.True(compare.Code == 0, "the backup is not the VM's real base: " + compare.Output);
    }

    [Fact]
    public async Task Backup_FullThenIncrementals_EachRestoresItsPointInTime_RevertRestartsChain_DamagedLinkFound()
    {
        var ct = CancellationToken.None;
        var img = new QemuImg();
        var (spec, port) = await BootAsync();
        await GuestAsync(port, "dd if=/dev/urandom of=/data/big bs=1M count=8 2>/dev/null; echo first > /data/f; sync");
        var root = Path.Combine(_data, "backups");
        string Dir(string name) => Path.Combine(root, name);
        long DiskBytes(BackupManifest m) => m.Files.Single(f => f.Role == "disk").SizeBytes;

        var sw = Stopwatch.StartNew();
        var full = await _driver.BackupAsync(spec.Id, Dir("b1"), null, ct);
        var fullMs = sw.ElapsedMilliseconds;
        Assert.Equal(("full", null, null), (full.Kind, full.Parent, full.FullReason));
        Assert.Equal(["disk", "kernel", "initrd", "cmdline"], full.Files.Select(f => f.Role));
        Assert.Null((await img.InfoAsync(Path.Combine(Dir("b1"), "disk.qcow2"), false, ct)).BackingFile); // standalone: base image flattened in
        Assert.Empty(await _driver.ListSnapshotsAsync(spec.Id, ct)); // no snapshot left in the VM's disk

        await GuestAsync(port, "echo second > /data/f; sync");
        sw.Restart();
        var inc = await _driver.BackupAsync(spec.Id, Dir("b2"), Dir("b1"), ct);
        var incMs = sw.ElapsedMilliseconds;
        Assert.Equal(("incremental", "b1", null), (inc.Kind, inc.Parent, inc.FullReason));
        Assert.Equal(["disk"], inc.Files.Select(f => f.Role)); // kernel, initrd and command line unchanged: inherited from b1
        Assert.Equal("../b1/disk.qcow2", (await img.InfoAsync(Path.Combine(Dir("b2"), "disk.qcow2"), false, ct)).BackingFile);
        Assert.True(DiskBytes(inc) * 8 < DiskBytes(full), $"incremental {DiskBytes(inc)} bytes, full {DiskBytes(full)} bytes");

        // Stopped: the persistent bitmap was written back at shutdown; qemu-storage-daemon runs the job.
        await GuestAsync(port, "echo third > /data/f; sync");
        await _driver.StopAsync(spec.Id, TimeSpan.Zero, ct);
        sw.Restart();
        var offline = await _driver.BackupAsync(spec.Id, Dir("b3"), Dir("b2"), ct);
        Console.WriteLine($"tiny guest, 8 MiB written then one file changed: full {DiskBytes(full)} bytes in {fullMs} ms; incremental {DiskBytes(inc)} bytes "
            + $"in {incMs} ms (running); incremental {DiskBytes(offline)} bytes in {sw.ElapsedMilliseconds} ms (stopped, qemu-storage-daemon)");
        Assert.Equal(("incremental", "b2"), (offline.Kind, offline.Parent));
        var vmDisk = Path.Combine(_data, "vms", spec.Id.ToString(), "disk.qcow2");
        Assert.Equal(0, (await RunAsync("qemu-img", ["compare", "-q", Path.Combine(Dir("b3"), "disk.qcow2"), vmDisk])).Code); // b3 → b2 → b1 reads as the disk

        // A revert rewinds the disk behind the bitmaps' back: they are dropped and the next backup is full, saying why.
        await _driver.CreateSnapshotAsync(spec.Id, "s1", withMemory: false, ct);
        await _driver.RevertSnapshotAsync(spec.Id, "s1", ct);
        var afterRevert = await _driver.BackupAsync(spec.Id, Dir("b4"), Dir("b3"), ct);
        Assert.Equal("full", afterRevert.Kind);
        Assert.Contains("reverted to snapshot 's1'", afterRevert.FullReason, StringComparison.Ordinal);

        // Restores: the incremental (chain b2 → b1) and the full alone, booted side by side.
        await _driver.DestroyAsync(spec.Id, ct);
        var (fromInc, incPort) = await BootAsync(Path.Combine(Dir("b2"), "disk.qcow2"));
        var (fromFull, fullPort) = await BootAsync(Path.Combine(Dir("b1"), "disk.qcow2"));
        Assert.Equal("second", await GuestAsync(incPort, "cat /data/f"));
        Assert.Equal("first", await GuestAsync(fullPort, "cat /data/f"));
        await _driver.DestroyAsync(fromInc.Id, ct);
        await _driver.DestroyAsync(fromFull.Id, ct);

        // One flipped byte in the full backup: the link that b2 and b3 build on no longer verifies, and says which file.
        var path = Path.Combine(Dir("b1"), "disk.qcow2");
        await using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0xFF));
        }

        Assert.Empty(await BackupFiles.VerifyAsync(Dir("b2"), ct));
        var problems = await BackupFiles.VerifyAsync(Dir("b1"), ct);
        Assert.Contains(problems, p => p.Contains("disk.qcow2", StringComparison.Ordinal) && p.Contains("SHA-256", StringComparison.Ordinal));
        Assert.Equal((Dir("b1"), "kernel"), BackupFiles.Effective(Dir("b3"), "kernel") is { } k ? (k.Directory, k.Entry.Role) : default);
    }
}
