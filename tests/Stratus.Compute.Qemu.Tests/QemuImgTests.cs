using System.Diagnostics;
using Stratus.Compute;

namespace Stratus.Compute.Qemu.Tests;

public sealed class QemuImgTests : IDisposable
{
    private readonly string _dir = TestEnvironment.NewDataDirectory();
    private readonly QemuImg _img = new();

    public void Dispose() => TestEnvironment.DeleteDirectory(_dir);

    private async Task<string> QcowAsync(string name, long size = 64 * 1024 * 1024)
    {
        var path = Path.Combine(_dir, name);
        await _img.CreateBlankAsync(path, "qcow2", size, CancellationToken.None);
        return path;
    }

    [Fact]
    public async Task Info_RawFileNamedQcow2_DetectsRawFromContent()
    {
        TestEnvironment.RequireQemu();
        var path = Path.Combine(_dir, "disk.qcow2");
        await File.WriteAllBytesAsync(path, new byte[2 * 1024 * 1024]);
        var info = await _img.InfoAsync(path, mayBeInUse: false, CancellationToken.None);
        Assert.Equal("raw", info.Format);
        Assert.Equal(2 * 1024 * 1024, info.VirtualSizeBytes);
        Assert.Null(info.BackingFile);
    }

    [Fact]
    public async Task CreateOverlay_OverBase_NamesBaseAsBackingFile()
    {
        TestEnvironment.RequireQemu();
        var baseImage = await QcowAsync("base.qcow2");
        var overlay = Path.Combine(_dir, "vm.qcow2");
        await _img.CreateOverlayAsync(overlay, baseImage, "qcow2", 128L * 1024 * 1024, CancellationToken.None);
        var info = await _img.InfoAsync(overlay, mayBeInUse: true, CancellationToken.None);
        Assert.Equal("qcow2", info.Format);
        Assert.Equal(baseImage, info.BackingFile);
        Assert.Equal(128L * 1024 * 1024, info.VirtualSizeBytes);
        Assert.True((await _img.CheckAsync(overlay, "qcow2", CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task InfoAndCheck_TruncatedQcow2_AreRefused()
    {
        TestEnvironment.RequireQemu();
        var path = await QcowAsync("full.qcow2");
        // Write data so the image has clusters, then cut it short.
        var psi = new ProcessStartInfo("qemu-io") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in new[] { "-f", "qcow2", "-c", "write -P 0x5a 0 4M", path })
        {
            psi.ArgumentList.Add(a);
        }

        using (var p = Process.Start(psi)!)
        {
            await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.Equal(0, p.ExitCode);
        }

        await using (var f = new FileStream(path, FileMode.Open))
        {
            f.SetLength(f.Length / 3);
        }

        var check = await _img.CheckAsync(path, "qcow2", CancellationToken.None);
        Assert.False(check.Ok);
        Assert.NotNull(check.Detail);
    }

    [Fact]
    public async Task Info_NotAnImageAtAll_ThrowsImageInvalid()
    {
        TestEnvironment.RequireQemu();
        var missing = Path.Combine(_dir, "missing.img");
        var e = await Assert.ThrowsAsync<ComputeException>(() => _img.InfoAsync(missing, false, CancellationToken.None));
        Assert.Equal("image_invalid", e.Code);
    }

    [Fact]
    public async Task InspectForImport_QcowWithBackingFile_IsRefused()
    {
        TestEnvironment.RequireQemu();
        var baseImage = await QcowAsync("base.qcow2");
        var overlay = Path.Combine(_dir, "upload.qcow2");
        await _img.CreateOverlayAsync(overlay, baseImage, "qcow2", 64L * 1024 * 1024, CancellationToken.None);
        var e = await Assert.ThrowsAsync<ComputeException>(() => _img.InspectForImportAsync(overlay, CancellationToken.None));
        Assert.Equal("image_has_backing_file", e.Code);
    }

    [Fact]
    public async Task InspectForImport_GoodQcowAndRawNamedQcow_AcceptedWithTrueFormat()
    {
        TestEnvironment.RequireQemu();
        var qcow = await QcowAsync("good.img");
        Assert.Equal("qcow2", (await _img.InspectForImportAsync(qcow, CancellationToken.None)).Format);
        var raw = Path.Combine(_dir, "raw.qcow2");
        await File.WriteAllBytesAsync(raw, new byte[1024 * 1024]);
        Assert.Equal("raw", (await _img.InspectForImportAsync(raw, CancellationToken.None)).Format);
    }

    [Fact]
    public async Task InspectForImport_TruncatedQcow2_IsRefused()
    {
        TestEnvironment.RequireQemu();
        var path = await QcowAsync("cut.qcow2");
        await using (var f = new FileStream(path, FileMode.Open))
        {
            f.SetLength(100);
        }

        var e = await Assert.ThrowsAsync<ComputeException>(() => _img.InspectForImportAsync(path, CancellationToken.None));
        Assert.Equal("image_invalid", e.Code);
    }

    [Fact]
    public void ParseInfo_CorruptFlag_IsRead()
    {
        const string json = """
            {"virtual-size": 1073741824, "filename": "x.qcow2", "format": "qcow2", "actual-size": 200704,
             "backing-filename": "/b/base.img",
             "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "corrupt": true}}}
            """;
        var info = QemuImg.ParseInfo(json);
        Assert.Equal("qcow2", info.Format);
        Assert.Equal(1073741824, info.VirtualSizeBytes);
        Assert.Equal("/b/base.img", info.BackingFile);
        Assert.True(info.Corrupt);
    }

    [Fact]
    public async Task CreateWithBacking_RelativeName_KeptAsGiven_AndBitmapsListedAndRemoved()
    {
        TestEnvironment.RequireQemu();
        Directory.CreateDirectory(Path.Combine(_dir, "a"));
        Directory.CreateDirectory(Path.Combine(_dir, "b"));
        var parent = Path.Combine(_dir, "a", "disk.qcow2");
        await _img.CreateWithBackingAsync(parent, null, 64L * 1024 * 1024, CancellationToken.None);
        var child = Path.Combine(_dir, "b", "disk.qcow2");
        await _img.CreateWithBackingAsync(child, "../a/disk.qcow2", 64L * 1024 * 1024, CancellationToken.None);
        Assert.Equal("../a/disk.qcow2", (await _img.InfoAsync(child, mayBeInUse: false, CancellationToken.None)).BackingFile); // resolves wherever a/ and b/ are copied together

        using (var add = Process.Start(new ProcessStartInfo("qemu-img", ["bitmap", "--add", child, "stratus-backup-x"]))!)
        {
            await add.WaitForExitAsync();
            Assert.Equal(0, add.ExitCode);
        }

        Assert.Equal([("stratus-backup-x", false)], await _img.ListBitmapsAsync(child, CancellationToken.None));
        await _img.RemoveBitmapAsync(child, "stratus-backup-x", CancellationToken.None);
        Assert.Empty(await _img.ListBitmapsAsync(child, CancellationToken.None));
        Assert.Equal([("b1", true)], QemuImg.ParseBitmaps("""{"format-specific":{"type":"qcow2","data":{"bitmaps":[{"flags":["in-use","auto"],"name":"b1","granularity":65536}]}}}"""));
    }
}
