using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Xunit.Abstractions;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Two "hosts" on this machine: two drivers with their own data directories and cgroup parents (as two machines
/// would have) and one shared pool directory. Also one shared-pool guest that the failure tests leave running at host A.</summary>
public sealed class MigrationFixture : IAsyncLifetime
{
    public string DataA { get; } = TestEnvironment.NewDataDirectory();

    public string DataB { get; } = TestEnvironment.NewDataDirectory();

    public string SharedPool { get; } = TestEnvironment.NewDataDirectory();

    public QemuDriver A { get; private set; } = null!;

    public QemuDriver B { get; private set; } = null!;

    /// <summary>Host B's agent restarts: the driver detaches (VMs keep running) and a new one takes over the data directory.</summary>
    public async Task RestartBAsync()
    {
        await B.DisposeAsync();
        B = new QemuDriver(OptionsFor(DataB, "stratus-test-b"));
    }

    /// <summary>A third host whose QEMU runs as root (<see cref="QemuDriverOptions.QemuUser"/> null), created on first use:
    /// the post-copy destination where unprivileged QEMU gets no userfaultfd.</summary>
    public QemuDriver RootDestination()
    {
        lock (_rootGate)
        {
            return _root ??= new QemuDriver(OptionsFor(DataC, "stratus-test-c", o => o.QemuUser = null));
        }
    }

    private readonly Lock _rootGate = new();
    private QemuDriver? _root;

    public string DataC { get; } = TestEnvironment.NewDataDirectory();

    /// <summary>Every VM id a test used, for the final clean-up.</summary>
    public ConcurrentBag<InstanceId> Ids { get; } = [];

    /// <summary>The guest the abort and destination-crash tests try to move (it always stays at A).</summary>
    public InstanceId Survivor { get; } = InstanceId.New();

    public int SurvivorPort { get; private set; }

    public QemuDriverOptions OptionsFor(string dataDir, string cgroupParent, Action<QemuDriverOptions>? configure = null)
    {
        var options = TestEnvironment.Options(dataDir);
        options.SharedPoolDirectory = SharedPool;
        options.CgroupParent = cgroupParent;
        options.GracefulStopTimeout = TimeSpan.FromSeconds(10);
        configure?.Invoke(options);
        return options;
    }

    public async Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        A = new QemuDriver(OptionsFor(DataA, "stratus-test-a"));
        B = new QemuDriver(OptionsFor(DataB, "stratus-test-b"));
        Ids.Add(Survivor);
        var spec = await TestEnvironment.TinySpecAsync(Survivor, null) with { StoragePool = StoragePools.Shared };
        SurvivorPort = (await A.CreateAsync(spec, CancellationToken.None)).Forwards.Single().HostPort;
        await TestEnvironment.WaitForHttpAsync(SurvivorPort, TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        foreach (var id in Ids)
        {
            await B.AbortIncomingAsync(id, CancellationToken.None);
            await A.DestroyAsync(id, CancellationToken.None);
            await B.DestroyAsync(id, CancellationToken.None);
            if (_root is not null)
            {
                await _root.AbortIncomingAsync(id, CancellationToken.None);
                await _root.DestroyAsync(id, CancellationToken.None);
            }

            foreach (var pid in TestEnvironment.QemuPidsOf(id))
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
            }
        }

        await A.DisposeAsync();
        await B.DisposeAsync();
        if (_root is not null)
        {
            await _root.DisposeAsync();
        }

        TestEnvironment.DeleteDirectory(DataA);
        TestEnvironment.DeleteDirectory(DataB);
        TestEnvironment.DeleteDirectory(DataC);
        TestEnvironment.DeleteDirectory(SharedPool);
    }
}

/// <summary>Live and cold migration between two QEMU drivers on this machine (real guests under TCG).</summary>
public sealed partial class MigrationTests(MigrationFixture hosts, ITestOutputHelper output) : IClassFixture<MigrationFixture>
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"uptime_s=(\d+)")]
    private static partial Regex UptimePattern();

    private static long Uptime(string page) => long.Parse(UptimePattern().Match(page).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>Records every progress report (synchronously, unlike <see cref="Progress{T}"/>).</summary>
    private sealed class ProgressLog : IProgress<MigrationProgress>
    {
        public ConcurrentQueue<MigrationProgress> Reports { get; } = new();

        public TaskCompletionSource Active { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Report(MigrationProgress value)
        {
            Reports.Enqueue(value);
            if (value.Status == "active" && value.TransferredBytes > 0)
            {
                Active.TrySetResult();
            }
        }
    }

    private async Task<(VmSpec Spec, int Port)> BootAsync(QemuDriver driver, string pool, string? userData = null)
    {
        var id = InstanceId.New();
        hosts.Ids.Add(id);
        var spec = await TestEnvironment.TinySpecAsync(id, userData) with { StoragePool = pool };
        var port = (await driver.CreateAsync(spec, CancellationToken.None)).Forwards.Single().HostPort;
        await TestEnvironment.WaitForHttpAsync(port, Boot);
        return (spec, port);
    }

    [Fact]
    public async Task LiveMigrate_SharedPool_GuestKeepsRunningOnDestinationPort()
    {
        var (spec, portA) = await BootAsync(hosts.A, StoragePools.Shared);
        var sourcePid = (await hosts.A.GetStatusAsync(spec.Id, CancellationToken.None))!.Pid!.Value;
        var uptimeBefore = Uptime(await TestEnvironment.WaitForHttpAsync(portA, Boot));
        var sharedDisk = Path.Combine(hosts.SharedPool, spec.Id.ToString(), "disk.qcow2");
        Assert.True(File.Exists(sharedDisk));
        Assert.False(File.Exists(Path.Combine(hosts.DataA, "vms", spec.Id.ToString(), "disk.qcow2")));

        // A backup before the move leaves a persistent dirty bitmap in the shared qcow2 (see the end of the test).
        var backups = TestEnvironment.NewDataDirectory();
        Assert.Equal("full", (await hosts.A.BackupAsync(spec.Id, Path.Combine(backups, "k1"), null, CancellationToken.None)).Kind);

        // Started ready to move: the default migration settings are already in QEMU, so the move itself sends only `migrate`.
        await AssertMigrationPresetAsync(hosts.A, spec.Id);

        var clock = Stopwatch.StartNew();
        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        Assert.Null(incoming.DiskTarget);
        var portB = incoming.Forwards.Single().HostPort;
        Assert.NotEqual(portA, portB);
        // Until it is completed the destination VM is no ordinary VM of host B.
        Assert.Empty(await hosts.B.ListAsync(CancellationToken.None));
        Assert.True(File.Exists(Path.Combine(hosts.DataB, "vms", spec.Id.ToString(), "incoming")));

        var log = new ProgressLog();
        var final = await hosts.A.MigrateOutAsync(spec.Id, incoming, new MigrationOptions(), log, CancellationToken.None);
        var arrived = await hosts.B.CompleteIncomingAsync(spec.Id, CancellationToken.None);
        await hosts.A.CompleteOutgoingAsync(spec.Id, CancellationToken.None);
        var total = clock.Elapsed;

        Assert.Equal("completed", final.Status);
        Assert.True(final.TotalBytes > 0);
        Assert.NotNull(final.DowntimeMs);
        Assert.NotNull(final.TotalTimeMs);
        Assert.NotEmpty(log.Reports);
        Assert.Contains(log.Reports, r => r.TotalBytes > 0);
        Assert.Equal(PowerState.Running, arrived.Power);
        Assert.Equal(portB, arrived.Forwards.Single().HostPort);
        Assert.False(File.Exists(Path.Combine(hosts.DataB, "vms", spec.Id.ToString(), "incoming")));
        Assert.Equal(spec.Id, Assert.Single(await hosts.B.ListAsync(CancellationToken.None), s => s.Id == spec.Id).Id);

        var page = await TestEnvironment.WaitForHttpAsync(portB, TimeSpan.FromSeconds(20));
        Assert.Contains($"id={spec.Id}\n", page, StringComparison.Ordinal);
        Assert.True(Uptime(page) >= uptimeBefore, $"uptime went from {uptimeBefore} to {Uptime(page)}: the guest rebooted");
        // The destination never booted: its console has only what the guest printed after the move.
        Assert.DoesNotContain("STRATUS-GUEST-READY", await hosts.B.ReadConsoleAsync(spec.Id, 1 << 20, CancellationToken.None), StringComparison.Ordinal);

        Assert.Equal([arrived.Pid!.Value], TestEnvironment.QemuPidsOf(spec.Id));
        // As a destination it had post-copy on; arrived, it has the settings its own next move needs.
        await AssertMigrationPresetAsync(hosts.B, spec.Id);
        Assert.False(QemuDriver.ProcessAlive(sourcePid));
        Assert.False(Directory.Exists(Path.Combine(hosts.DataA, "vms", spec.Id.ToString())));
        Assert.Null(await hosts.A.GetStatusAsync(spec.Id, CancellationToken.None));
        Assert.True(File.Exists(sharedDisk), "the shared disk must survive the source's clean-up");
        Assert.False(hosts.A.Cgroups?.Exists(spec.Id.ToString()) ?? false);
        if (hosts.B.Cgroups is { } cgroups)
        {
            // The destination QEMU runs inside its cgroup on B, as any VM.
            Assert.Contains(arrived.Pid!.Value, await cgroups.ReadProcessesAsync(spec.Id.ToString(), CancellationToken.None));
        }
        Assert.Null(await TestEnvironment.TryGetAsync(portA, TimeSpan.FromSeconds(1)));

        // The VM is an ordinary VM of B now: it survives B's restart (adoption, same process) and destroy removes the shared disk.
        await hosts.RestartBAsync();
        var adopted = Assert.Single(await hosts.B.ListAsync(CancellationToken.None), s => s.Id == spec.Id);
        Assert.Equal(arrived.Pid, adopted.Pid);
        Assert.Equal(PowerState.Running, adopted.Power);
        Assert.Equal(portB, adopted.Forwards.Single().HostPort);
        Assert.Equal(PowerState.Paused, (await hosts.B.PauseAsync(spec.Id, CancellationToken.None)).Power);
        Assert.Equal(PowerState.Running, (await hosts.B.ResumeAsync(spec.Id, CancellationToken.None)).Power);
        output.WriteLine($"shared-pool live migration: {final.TotalTimeMs} ms in QEMU, downtime {final.DowntimeMs} ms, prepare→complete {total.TotalMilliseconds:0} ms, {log.Reports.Count} progress reports, {final.TotalBytes >> 20} MiB RAM");

        // The bitmap moved with the shared disk (the source wrote it back when it let go, the destination loaded it):
        // the chain continues on B, and the chain read back equals the disk.
        Assert.Equal(("incremental", "k1"), (await hosts.B.BackupAsync(spec.Id, Path.Combine(backups, "k2"), Path.Combine(backups, "k1"), CancellationToken.None)) is var k2 ? (k2.Kind, k2.Parent) : default);
        await hosts.B.StopAsync(spec.Id, TimeSpan.Zero, CancellationToken.None);
        Assert.Equal("incremental", (await hosts.B.BackupAsync(spec.Id, Path.Combine(backups, "k3"), Path.Combine(backups, "k2"), CancellationToken.None)).Kind);
        var compare = Process.Start(new ProcessStartInfo("qemu-img", ["compare", "-q", Path.Combine(backups, "k3", "disk.qcow2"), sharedDisk]))!;
        await compare.WaitForExitAsync();
        Assert.Equal(0, compare.ExitCode);
        TestEnvironment.DeleteDirectory(backups);
        await hosts.B.DestroyAsync(spec.Id, CancellationToken.None);
        Assert.False(File.Exists(sharedDisk));
    }

    [Fact]
    public async Task LiveMigrate_LocalPool_DiskIsMirroredToDestination()
    {
        // The guest writes a token to its disk, then keeps re-reading it from the disk (page cache dropped) into a page.
        var token = Guid.NewGuid().ToString("N");
        var userData = $"""
            #!/bin/sh
            echo {token} > /data/token
            sync
            while :; do
              sync; echo 3 > /proc/sys/vm/drop_caches
              if t=$(cat /data/token); then echo "$t $(cut -d. -f1 /proc/uptime)" > /www/t.new && mv /www/t.new /www/token.txt; fi
              sleep 1
            done
            """.Replace("\r", "", StringComparison.Ordinal) + "\n";
        var (spec, portA) = await BootAsync(hosts.A, StoragePools.Local, userData);
        var before = await WaitForTokenAsync(portA, token, 0);
        // A backup first: the disk carries a persistent dirty bitmap while it is mirrored away (it does not follow).
        var backups = TestEnvironment.NewDataDirectory();
        await hosts.A.BackupAsync(spec.Id, Path.Combine(backups, "k1"), null, CancellationToken.None);

        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        Assert.NotNull(incoming.DiskTarget);
        var bad = incoming with { DiskTarget = null };
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => hosts.A.MigrateOutAsync(spec.Id, bad, new MigrationOptions(), null, CancellationToken.None))).Code);
        var log = new ProgressLog();
        var final = await hosts.A.MigrateOutAsync(spec.Id, incoming, new MigrationOptions(), log, CancellationToken.None);
        var arrived = await hosts.B.CompleteIncomingAsync(spec.Id, CancellationToken.None);
        await hosts.A.CompleteOutgoingAsync(spec.Id, CancellationToken.None);

        Assert.Equal("completed", final.Status);
        Assert.True(final.DiskTotalBytes > 0, "the mirror reported its size");
        Assert.Equal(final.DiskTotalBytes, final.DiskTransferredBytes);
        Assert.Contains(log.Reports, r => r.Status == "setup" && r.DiskTotalBytes > 0);
        var portB = arrived.Forwards.Single().HostPort;
        // Read back from the destination's own disk file, after the move (uptime stamp later than before it).
        var after = await WaitForTokenAsync(portB, token, before + 1);
        Assert.True(after > before);
        var destinationDisk = Path.Combine(hosts.DataB, "vms", spec.Id.ToString(), "disk.qcow2");
        Assert.True(new FileInfo(destinationDisk).Length > 1 << 20, "the destination's overlay holds the mirrored data");
        Assert.False(Directory.Exists(Path.Combine(hosts.DataA, "vms", spec.Id.ToString())));
        Assert.Single(TestEnvironment.QemuPidsOf(spec.Id));
        output.WriteLine($"local-pool live migration: {final.TotalTimeMs} ms in QEMU, downtime {final.DowntimeMs} ms, disk {final.DiskTotalBytes >> 20} MiB mirrored");
        var next = await hosts.B.BackupAsync(spec.Id, Path.Combine(backups, "k2"), Path.Combine(backups, "k1"), CancellationToken.None);
        Assert.Equal("full", next.Kind);
        Assert.Contains("no change-tracking bitmap", next.FullReason, StringComparison.Ordinal);
        TestEnvironment.DeleteDirectory(backups);
        await hosts.B.DestroyAsync(spec.Id, CancellationToken.None);
    }

    [Fact]
    public async Task LiveMigrate_PostCopy_SwitchesAfterFirstPassAndCompletes()
    {
        // The guest keeps rewriting 16 MiB, so pre-copy cannot finish within a 1 ms downtime at 40 MB/s: after the first
        // pass the driver switches to post-copy (QEMU finishes in pre-copy whenever it can, even when post-copy was asked).
        const string Dirty = """
            #!/bin/sh
            dd if=/dev/urandom of=/run/src bs=1M count=4 2>/dev/null
            echo DIRTY-STARTED
            while :; do for i in 0 4 8 12; do dd if=/run/src of=/run/buf bs=1M seek=$i conv=notrunc 2>/dev/null; done; done
            """;
        // Post-copy needs userfaultfd in the destination's QEMU. QEMU 7.2 running as an unprivileged user gets it only with
        // vm.unprivileged_userfaultfd=1; without that, the destination here is a host whose QEMU runs as root (the source
        // stays unprivileged: it needs no userfaultfd). The refusal is the next test.
        var destination = UnprivilegedUserfaultfd() ? hosts.B : hosts.RootDestination();
        var (spec, _) = await BootAsync(hosts.A, StoragePools.Shared, Dirty.Replace("\r", "", StringComparison.Ordinal) + "\n");
        await TestEnvironment.WaitForConsoleAsync(hosts.A, spec.Id, "DIRTY-STARTED", Boot);
        var incoming = await destination.PrepareIncomingAsync(spec, CancellationToken.None);
        Assert.Null(incoming.PostCopyUnavailable);
        var log = new ProgressLog();
        var options = new MigrationOptions(MaxDowntime: TimeSpan.FromMilliseconds(1), PostCopy: true, BandwidthBytesPerSecond: 40_000_000);
        var final = await hosts.A.MigrateOutAsync(spec.Id, incoming, options, log, CancellationToken.None);
        var arrived = await destination.CompleteIncomingAsync(spec.Id, CancellationToken.None);
        await hosts.A.CompleteOutgoingAsync(spec.Id, CancellationToken.None);

        Assert.Equal("completed", final.Status);
        Assert.Contains(log.Reports, r => r.Status == "postcopy-active");
        Assert.Contains($"id={spec.Id}\n", await TestEnvironment.WaitForHttpAsync(arrived.Forwards.Single().HostPort, TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
        Assert.Single(TestEnvironment.QemuPidsOf(spec.Id));
        output.WriteLine($"post-copy migration: {final.TotalTimeMs} ms, downtime {final.DowntimeMs} ms, statuses {string.Join(",", log.Reports.Select(r => r.Status).Distinct())}");
        await destination.DestroyAsync(spec.Id, CancellationToken.None);
    }

    private static bool UnprivilegedUserfaultfd() => File.ReadAllText("/proc/sys/vm/unprivileged_userfaultfd").Trim() == "1";

    [Fact]
    public async Task LiveMigrate_PostCopyToUnprivilegedDestination_RefusedWithoutUserfaultfd()
    {
        // Host B's QEMU runs as stratus-qemu; with vm.unprivileged_userfaultfd=0 (the kernel's default) it has no userfaultfd.
        var id = hosts.Survivor;
        var spec = await TestEnvironment.TinySpecAsync(id, null) with { StoragePool = StoragePools.Shared };
        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        if (UnprivilegedUserfaultfd())
        {
            Assert.Null(incoming.PostCopyUnavailable);
            await hosts.B.AbortIncomingAsync(id, CancellationToken.None);
            return;
        }

        Assert.Contains("vm.unprivileged_userfaultfd=1", incoming.PostCopyUnavailable, StringComparison.Ordinal);

        var e = await Assert.ThrowsAsync<ComputeException>(() => hosts.A.MigrateOutAsync(id, incoming, new MigrationOptions(PostCopy: true), null, CancellationToken.None));

        Assert.Equal("migration_failed", e.Code);
        Assert.Contains("cannot receive a post-copy migration", e.Message, StringComparison.Ordinal);
        Assert.Equal(PowerState.Running, (await hosts.A.GetStatusAsync(id, CancellationToken.None))!.Power);
        Assert.Contains($"id={id}", await TestEnvironment.WaitForHttpAsync(hosts.SurvivorPort, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        await hosts.B.AbortIncomingAsync(id, CancellationToken.None);
        Assert.Single(TestEnvironment.QemuPidsOf(id));
    }

    /// <summary>Waits for /token.txt to show <paramref name="token"/> with a guest uptime ≥ <paramref name="minUptime"/>; returns that uptime.</summary>
    private static async Task<long> WaitForTokenAsync(int port, string token, long minUptime)
    {
        var clock = Stopwatch.StartNew();
        string? last = null;
        while (clock.Elapsed < Boot)
        {
            last = await TestEnvironment.TryGetAsync(port, TimeSpan.FromSeconds(2), "/token.txt");
            var parts = last?.Trim().Split(' ');
            if (parts is { Length: 2 } && parts[0] == token && long.Parse(parts[1], CultureInfo.InvariantCulture) >= minUptime)
            {
                return long.Parse(parts[1], CultureInfo.InvariantCulture);
            }

            await Task.Delay(200);
        }

        Assert.Fail($"/token.txt on port {port} never showed {token} with uptime ≥ {minUptime}; last: {last}");
        return 0;
    }

    [Fact]
    public async Task MigrateOut_Cancelled_SourceKeepsServingAndAbortLeavesNothing()
    {
        var id = hosts.Survivor;
        var spec = await TestEnvironment.TinySpecAsync(id, null) with { StoragePool = StoragePools.Shared };
        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.B.WaitIncomingStartedAsync(id); // a pipelined destination answers before its QEMU runs
        var sourcePid = await SourcePidAsync();
        var destinationPid = Assert.Single(TestEnvironment.QemuPidsOf(id), p => p != sourcePid);
        var log = new ProgressLog();
        using var cts = new CancellationTokenSource();
        // 2 MB/s: 128 MiB cannot finish before the cancel.
        var migration = hosts.A.MigrateOutAsync(id, incoming, new MigrationOptions(BandwidthBytesPerSecond: 2_000_000), log, cts.Token);
        await log.Active.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => migration);

        Assert.Equal(PowerState.Running, (await hosts.A.GetStatusAsync(id, CancellationToken.None))!.Power);
        Assert.Contains($"id={id}", await TestEnvironment.WaitForHttpAsync(hosts.SurvivorPort, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);

        await hosts.B.AbortIncomingAsync(id, CancellationToken.None);
        Assert.False(QemuDriver.ProcessAlive(destinationPid));
        Assert.Equal([sourcePid], TestEnvironment.QemuPidsOf(id));
        Assert.False(Directory.Exists(Path.Combine(hosts.DataB, "vms", id.ToString())));
        Assert.False(hosts.B.Cgroups?.Exists(id.ToString()) ?? false);
        Assert.True(File.Exists(Path.Combine(hosts.SharedPool, id.ToString(), "disk.qcow2")), "abort never deletes the shared disk");
        Assert.Null(await hosts.B.GetStatusAsync(id, CancellationToken.None));
        await hosts.B.AbortIncomingAsync(id, CancellationToken.None); // idempotent
        await hosts.B.AbortIncomingAsync(InstanceId.New(), CancellationToken.None); // nothing there at all

        // And the VM can still be migrated afterwards (nothing was left half-configured at the source).
        Assert.Equal(PowerState.Running, (await hosts.A.GetStatusAsync(id, CancellationToken.None))!.Power);
    }

    [Fact]
    public async Task AbortIncoming_AfterDestinationDriverRestart_RemovesTheWaitingQemu()
    {
        var id = hosts.Survivor;
        var spec = await TestEnvironment.TinySpecAsync(id, null) with { StoragePool = StoragePools.Shared };
        await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.B.WaitIncomingStartedAsync(id); // a pipelined destination answers before its QEMU runs
        var sourcePid = await SourcePidAsync();
        var destinationPid = Assert.Single(TestEnvironment.QemuPidsOf(id), p => p != sourcePid);

        await hosts.RestartBAsync();
        // The waiting destination is not adopted as an ordinary VM...
        Assert.DoesNotContain(await hosts.B.ListAsync(CancellationToken.None), s => s.Id == id);
        Assert.True(QemuDriver.ProcessAlive(destinationPid));
        // ...but the new driver still finds it to abort it.
        await hosts.B.AbortIncomingAsync(id, CancellationToken.None);
        Assert.False(QemuDriver.ProcessAlive(destinationPid));
        Assert.False(Directory.Exists(Path.Combine(hosts.DataB, "vms", id.ToString())));
        Assert.Equal([sourcePid], TestEnvironment.QemuPidsOf(id));
    }

    private async Task<int> SourcePidAsync() => (await hosts.A.GetStatusAsync(hosts.Survivor, CancellationToken.None))!.Pid!.Value;

    [Fact]
    public async Task MigrateOut_DestinationKilled_ThrowsAndSourceKeepsRunning()
    {
        var id = hosts.Survivor;
        var spec = await TestEnvironment.TinySpecAsync(id, null) with { StoragePool = StoragePools.Shared };
        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.B.WaitIncomingStartedAsync(id); // a pipelined destination answers before its QEMU runs
        var sourcePid = await SourcePidAsync();
        var destinationPid = Assert.Single(TestEnvironment.QemuPidsOf(id), p => p != sourcePid);
        var log = new ProgressLog();
        var migration = hosts.A.MigrateOutAsync(id, incoming, new MigrationOptions(BandwidthBytesPerSecond: 4_000_000), log, CancellationToken.None);
        await log.Active.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using (var destination = Process.GetProcessById(destinationPid))
        {
            destination.Kill();
        }

        var e = await Assert.ThrowsAsync<ComputeException>(() => migration);
        Assert.Equal("migration_failed", e.Code);
        output.WriteLine($"destination killed: {e.Message}");
        Assert.Equal(PowerState.Running, (await hosts.A.GetStatusAsync(id, CancellationToken.None))!.Power);
        Assert.Contains($"id={id}", await TestEnvironment.WaitForHttpAsync(hosts.SurvivorPort, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);

        var complete = await Assert.ThrowsAsync<ComputeException>(() => hosts.B.CompleteIncomingAsync(id, CancellationToken.None));
        Assert.Equal("migration_failed", complete.Code);
        await hosts.B.AbortIncomingAsync(id, CancellationToken.None);
        Assert.False(Directory.Exists(Path.Combine(hosts.DataB, "vms", id.ToString())));
        Assert.Equal([sourcePid], TestEnvironment.QemuPidsOf(id));
    }

    [Fact]
    public async Task ColdMigrate_StoppedLocalVm_StartsOnDestinationWithItsData()
    {
        const string UserData = """
            #!/bin/sh
            n=$(( $(cat /data/boots 2>/dev/null || echo 0) + 1 ))
            echo "$n" > /data/boots
            sync
            echo "COLD-MARKER boots=$n"
            """;
        var (spec, _) = await BootAsync(hosts.A, StoragePools.Local, UserData.Replace("\r", "", StringComparison.Ordinal) + "\n");
        await TestEnvironment.WaitForConsoleAsync(hosts.A, spec.Id, "COLD-MARKER boots=1", Boot);
        await hosts.A.StopAsync(spec.Id, TimeSpan.FromSeconds(10), CancellationToken.None);

        var disk = await hosts.A.ExportDiskAsync(spec.Id, CancellationToken.None);
        Assert.NotNull(disk);
        var imported = await hosts.B.ImportStoppedAsync(spec, disk, CancellationToken.None);
        Assert.Equal(PowerState.Shutdown, imported.Power);
        await hosts.A.CompleteOutgoingAsync(spec.Id, CancellationToken.None);
        Assert.False(Directory.Exists(Path.Combine(hosts.DataA, "vms", spec.Id.ToString())));

        var started = await hosts.B.StartAsync(spec.Id, CancellationToken.None);
        Assert.Equal(PowerState.Running, started.Power);
        // The second boot counts on from the first: /data came along.
        await TestEnvironment.WaitForConsoleAsync(hosts.B, spec.Id, "COLD-MARKER boots=2", Boot);
        await TestEnvironment.WaitForHttpAsync(started.Forwards.Single().HostPort, Boot);
        await hosts.B.DestroyAsync(spec.Id, CancellationToken.None);
    }

    [Fact]
    public async Task Migration_BadInput_ClearCodes()
    {
        var id = InstanceId.New();
        var spec = TestEnvironment.BareSpec(id) with { StoragePool = "nfs" };
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => hosts.B.PrepareIncomingAsync(spec, CancellationToken.None))).Code);

        var noPool = TestEnvironment.Options(hosts.DataB + "-nopool");
        await using (var plain = new QemuDriver(noPool))
        {
            var shared = TestEnvironment.BareSpec(id) with { StoragePool = StoragePools.Shared };
            Assert.Equal("shared_pool_unavailable", (await Assert.ThrowsAsync<ComputeException>(() => plain.CreateAsync(shared, CancellationToken.None))).Code);
            Assert.Equal("shared_pool_unavailable", (await Assert.ThrowsAsync<ComputeException>(() => plain.PrepareIncomingAsync(shared, CancellationToken.None))).Code);
        }

        TestEnvironment.DeleteDirectory(hosts.DataB + "-nopool");
        var bogus = new IncomingMigration(hosts.Survivor, "exec:cat", null, []);
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => hosts.A.MigrateOutAsync(hosts.Survivor, bogus, new MigrationOptions(), null, CancellationToken.None))).Code);
        Assert.Equal("not_found", (await Assert.ThrowsAsync<ComputeException>(() => hosts.A.MigrateOutAsync(id, new IncomingMigration(id, "tcp:127.0.0.1:1", null, []), new MigrationOptions(), null, CancellationToken.None))).Code);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => hosts.A.ExportDiskAsync(hosts.Survivor, CancellationToken.None))).Code);
        Assert.Equal("invalid_state", (await Assert.ThrowsAsync<ComputeException>(() => hosts.A.CompleteOutgoingAsync(hosts.Survivor, CancellationToken.None))).Code);
        Assert.Equal(PowerState.Running, (await hosts.A.GetStatusAsync(hosts.Survivor, CancellationToken.None))!.Power);
    }

    [Fact]
    public async Task LiveMigrate_AfterLiveResize_DestinationRecreatesTheHotPluggedDevices()
    {
        var id = InstanceId.New();
        hosts.Ids.Add(id);
        var spec = (await TestEnvironment.TinySpecAsync(id, null, vcpus: 1, memoryMib: 256)) with { StoragePool = StoragePools.Shared, MaxVcpus = 4, MaxMemoryMib = 1024 };
        var portA = (await hosts.A.CreateAsync(spec, CancellationToken.None)).Forwards.Single().HostPort;
        var (_, mem0) = GuestSize(await TestEnvironment.WaitForHttpAsync(portA, Boot));
        Assert.Null((await hosts.A.GetStatusAsync(id, CancellationToken.None))!.HotPlugged); // nothing plugged yet

        // 1 → 3 vCPUs and 256 → 512 MiB live: two vCPU devices and a 256 MiB DIMM in the running QEMU.
        var grown = await hosts.A.ResizeLiveAsync(id, new VmResizeTarget(3, 512, spec.DiskGib, 4, 1024), CancellationToken.None);
        Assert.True(grown.GuestVerified);
        var layout = (await hosts.A.GetStatusAsync(id, CancellationToken.None))!.HotPlugged;
        Assert.Equal(new HotPlugLayout(1, 3, 256, [256]), layout);
        var uptime = Uptime(await TestEnvironment.WaitForHttpAsync(portA, Boot));

        // As the controller sends it: the new size, plus the source's device model to recreate.
        var resized = spec with { Vcpus = 3, MemoryMib = 512, HotPlugged = layout };
        var incoming = await hosts.B.PrepareIncomingAsync(resized, CancellationToken.None);
        var final = await hosts.A.MigrateOutAsync(id, incoming, new MigrationOptions(), null, CancellationToken.None);
        Assert.Equal("completed", final.Status);
        await hosts.B.CompleteIncomingAsync(id, CancellationToken.None);
        await hosts.A.CompleteOutgoingAsync(id, CancellationToken.None);

        var page = await TestEnvironment.WaitForHttpAsync(incoming.Forwards.Single().HostPort, TimeSpan.FromSeconds(20));
        var (cpus, mem) = GuestSize(page);
        Assert.Equal(3, cpus);
        Assert.True(mem - mem0 >= 256 * 1024 * 9 / 10, $"mem_kib {mem0} → {mem}");
        Assert.True(Uptime(page) >= uptime, "the guest rebooted");
        // The arrived VM reports the same model, so it can move on (and back) the same way.
        Assert.Equal(layout, (await hosts.B.GetStatusAsync(id, CancellationToken.None))!.HotPlugged);
        var back = await hosts.A.PrepareIncomingAsync(resized, CancellationToken.None);
        Assert.Equal("completed", (await hosts.B.MigrateOutAsync(id, back, new MigrationOptions(), null, CancellationToken.None)).Status);
        await hosts.A.CompleteIncomingAsync(id, CancellationToken.None);
        await hosts.B.CompleteOutgoingAsync(id, CancellationToken.None);
        Assert.Equal(3, GuestSize(await TestEnvironment.WaitForHttpAsync(back.Forwards.Single().HostPort, TimeSpan.FromSeconds(20))).Cpus);

        // A model that cannot be built is refused before anything starts.
        var bad = spec with { Id = InstanceId.New(), Vcpus = 3, MemoryMib = 512, HotPlugged = new HotPlugLayout(1, 5, 256, [256]) };
        Assert.Equal("invalid_spec", (await Assert.ThrowsAsync<ComputeException>(() => hosts.B.PrepareIncomingAsync(bad, CancellationToken.None))).Code);
        Assert.False(Directory.Exists(Path.Combine(hosts.DataB, "vms", bad.Id.ToString())));
    }

    /// <summary>Once a host knows whether post-copy is possible (its first incoming migration), a shared-pool destination
    /// answers before its QEMU runs: the source starts sending into the agent's listening socket while QEMU starts.</summary>
    [Fact]
    public async Task PipelinedDestination_AnswersBeforeItsQemuRuns_MovesAndAbortsCleanly()
    {
        var (spec, portA) = await BootAsync(hosts.A, StoragePools.Shared);
        var uptime = Uptime(await TestEnvironment.WaitForHttpAsync(portA, Boot));
        // Whatever ran before on B, after this prepare/abort B has probed post-copy.
        await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.B.WaitIncomingStartedAsync(spec.Id);
        await hosts.B.AbortIncomingAsync(spec.Id, CancellationToken.None);

        var incoming = await hosts.B.PrepareIncomingAsync(spec, CancellationToken.None);
        Assert.StartsWith("tcp:", incoming.Uri, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(hosts.DataB, "vms", spec.Id.ToString(), "incoming")));
        var final = await hosts.A.MigrateOutAsync(spec.Id, incoming, new MigrationOptions(), null, CancellationToken.None);
        Assert.True(await hosts.B.WaitIncomingStartedAsync(spec.Id), "the destination was prepared sequentially");
        Assert.Equal("completed", final.Status);
        var arrived = await hosts.B.CompleteIncomingAsync(spec.Id, CancellationToken.None);
        await hosts.A.CompleteOutgoingAsync(spec.Id, CancellationToken.None);
        var page = await TestEnvironment.WaitForHttpAsync(incoming.Forwards.Single().HostPort, TimeSpan.FromSeconds(20));
        Assert.True(Uptime(page) >= uptime, "the guest rebooted");
        Assert.Equal([arrived.Pid!.Value], TestEnvironment.QemuPidsOf(spec.Id));

        // Prepared back on A (A has probed too: it was a destination above or now), then aborted before the source ever
        // connected: nothing is left on A, the VM keeps running on B.
        await hosts.A.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.A.AbortIncomingAsync(spec.Id, CancellationToken.None);
        var back = await hosts.A.PrepareIncomingAsync(spec, CancellationToken.None);
        await hosts.A.AbortIncomingAsync(spec.Id, CancellationToken.None);
        Assert.False(Directory.Exists(Path.Combine(hosts.DataA, "vms", spec.Id.ToString())));
        Assert.Equal([arrived.Pid!.Value], TestEnvironment.QemuPidsOf(spec.Id));
        Assert.Null(await hosts.A.GetStatusAsync(spec.Id, CancellationToken.None));
        Assert.Contains($"id={spec.Id}", await TestEnvironment.WaitForHttpAsync(incoming.Forwards.Single().HostPort, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        // Its port is closed again: a source trying it now is refused at once instead of waiting.
        var port = int.Parse(back.Uri[(back.Uri.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(async () => await probe.ConnectAsync(System.Net.IPAddress.Loopback, port));
    }

    private static (int Cpus, long MemKib) GuestSize(string page)
    {
        var m = System.Text.RegularExpressions.Regex.Match(page, @"cpus=(\d+)\nmem_kib=(\d+)");
        Assert.True(m.Success, page);
        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    private static async Task AssertMigrationPresetAsync(QemuDriver driver, InstanceId id)
    {
        var parameters = await driver.ExecuteQmpForTestsAsync(id, "query-migrate-parameters", CancellationToken.None);
        Assert.Equal(1L << 40, parameters.GetProperty("max-bandwidth").GetInt64());
        Assert.Equal(300, parameters.GetProperty("downtime-limit").GetInt64());
        var capabilities = (await driver.ExecuteQmpForTestsAsync(id, "query-migrate-capabilities", CancellationToken.None)).EnumerateArray()
            .ToDictionary(c => c.GetProperty("capability").GetString()!, c => c.GetProperty("state").GetBoolean());
        Assert.True(capabilities["events"]);
        Assert.False(capabilities["postcopy-ram"]);
        Assert.False(capabilities["auto-converge"]);
    }
}
