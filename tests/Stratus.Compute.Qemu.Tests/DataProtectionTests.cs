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
        var mem = await _driver.CreateSnapshotAsync(spec.Id, "m1", withMemory: true, CancellationToken.None);
        Assert.True(mem.WithMemory && mem.VmStateBytes > 0);
        await GuestAsync(port, "echo four > /data/f; sync");
        pid = (await _driver.GetStatusAsync(spec.Id, CancellationToken.None))!.Pid;
        var back = await _driver.RevertSnapshotAsync(spec.Id, "m1", CancellationToken.None);
        Assert.Equal(pid, back.Pid);
        Assert.Equal(PowerState.Running, back.Power);
        Assert.Equal("three", await GuestAsync(port, "cat /data/f"));

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
    public async Task Backup_RunningVm_RestoresIntoNewVmWithTheFile_CorruptedBackupFailsVerification()
    {
        var (spec, port) = await BootAsync();
        await GuestAsync(port, "echo backed-up-4711 > /data/b; sync");
        var dir = Path.Combine(_data, "backups", "b1");
        var manifest = await _driver.BackupAsync(spec.Id, dir, null, CancellationToken.None);
        Assert.Equal("full", manifest.Kind);
        Assert.Contains(manifest.Files, f => f.Role == "disk" && f.Name == "disk.qcow2");
        Assert.Contains(manifest.Files, f => f.Role == "kernel");
        Assert.Empty(await BackupFiles.VerifyAsync(dir, CancellationToken.None));
        Assert.Empty(await _driver.ListSnapshotsAsync(spec.Id, CancellationToken.None)); // the temporary snapshot is gone
        var info = await new QemuImg().InfoAsync(Path.Combine(dir, "disk.qcow2"), false, CancellationToken.None);
        Assert.Null(info.BackingFile); // self-contained: base image flattened in

        await _driver.DestroyAsync(spec.Id, CancellationToken.None);
        var (restored, restoredPort) = await BootAsync(Path.Combine(dir, "disk.qcow2"));
        Assert.Equal("backed-up-4711", await GuestAsync(restoredPort, "cat /data/b"));

        // One flipped byte in the middle of the disk file: verification names the file.
        var path = Path.Combine(dir, "disk.qcow2");
        await _driver.DestroyAsync(restored.Id, CancellationToken.None);
        await using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0xFF));
        }

        var problems = await BackupFiles.VerifyAsync(dir, CancellationToken.None);
        Assert.Contains(problems, p => p.Contains("disk.qcow2", StringComparison.Ordinal) && p.Contains("SHA-256", StringComparison.Ordinal));
    }
}
