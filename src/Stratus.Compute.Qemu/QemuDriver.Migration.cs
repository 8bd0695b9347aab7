using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Live and cold migration (<see cref="ILiveMigrationDriver"/>). The destination starts QEMU with the same command line
/// (<see cref="BuildArguments"/>) plus <c>-incoming defer</c> and listens with QMP <c>migrate-incoming</c>. A disk on the
/// shared pool is opened in place by both QEMUs (image locking lets the inactive destination in); a disk on a local pool
/// gets an empty overlay of the same size and backing on the destination, exported writable over NBD, and the source
/// mirrors into it (<c>blockdev-mirror</c>, sync=top) before and during the memory migration: QEMU's
/// "NBD + mirror + migrate" storage migration. See docs/qemu-driver.md.
/// </summary>
public sealed partial class QemuDriver
{
    private const string IncomingMarker = "incoming";
    private const string MirrorJob = "stratus-mirror";
    private const string MirrorTargetNode = "stratus-mirror-target";
    private const string ExportName = "root";
    private const int ProgressIntervalMs = 100;

    private readonly ConcurrentDictionary<InstanceId, QemuVm> _incoming = new();

    private void RequireNotIncoming(InstanceId id)
    {
        if (_incoming.ContainsKey(id) || File.Exists(Path.Combine(_vmsRoot, id.ToString(), IncomingMarker)))
        {
            throw new ComputeException("invalid_state", $"VM {id} is being migrated to this host");
        }
    }

    /// <inheritdoc />
    public async Task<IncomingMigration> PrepareIncomingAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        await EnsureLoadedAsync(cancellationToken);
        ValidateSpec(spec);
        var dir = Path.Combine(_vmsRoot, spec.Id.ToString());
        var diskDir = DiskDirectoryFor(spec, dir);
        await _createGate.WaitAsync(cancellationToken);
        QemuVm? vm = null;
        try
        {
            if (_incoming.TryGetValue(spec.Id, out var existing) && existing.Incoming is { } prepared)
            {
                return prepared;
            }

            if (_vms.ContainsKey(spec.Id))
            {
                throw new ComputeException("invalid_state", $"VM {spec.Id} already exists on this host");
            }

            if (Directory.Exists(dir))
            {
                // Left by an earlier prepare that nobody completed or aborted (a driver restart): start afresh.
                await AbortIncomingAsync(spec.Id, cancellationToken);
            }

            var forwards = ResolveForwards(spec.Id, spec.Forwards, [], fallbackToFree: true);
            vm = new QemuVm(spec.Id, dir, spec, forwards, diskDir) { QmpPath = QmpPathFor(spec.Id, dir) };
            CreatePrivateDirectory(dir);
            await File.WriteAllTextAsync(vm.IncomingMarkerPath, "", cancellationToken);
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(spec, Json), cancellationToken);
            if (vm.OnSharedPool)
            {
                if ((spec.ImagePath is not null || spec.DiskGib > 0) && !File.Exists(vm.DiskPath))
                {
                    throw new ComputeException("not_found", $"the shared pool has no disk for VM {spec.Id} ({vm.DiskPath})");
                }

                if (!File.Exists(vm.ConfigDrivePath))
                {
                    await ConfigDrive.BuildAsync(spec, vm.ConfigDrivePath, cancellationToken);
                }
            }
            else
            {
                await PrepareDiskAsync(vm, cancellationToken);
                await ConfigDrive.BuildAsync(spec, vm.ConfigDrivePath, cancellationToken);
            }

            await SaveStateAsync(vm, cancellationToken);
            if (vm.OnSharedPool && Volatile.Read(ref _postCopyProbe) is { } postCopy)
            {
                return await PrepareIncomingPipelinedAsync(vm, forwards, postCopy.Unavailable, cancellationToken);
            }

            await vm.Gate.WaitAsync(cancellationToken);
            try
            {
                await LaunchAsync(vm, cancellationToken, incoming: true);
                var qmp = vm.Qmp!;
                await ReplayHotPlugAsync(vm, qmp, cancellationToken);

                string? diskTarget = null;
                if (!vm.OnSharedPool && File.Exists(vm.DiskPath))
                {
                    diskTarget = await StartDiskExportAsync(qmp, cancellationToken);
                    vm.NbdServing = true;
                }

                string? noPostCopy = null;
                try
                {
                    // Post-copy needs the capability on both sides; without userfaultfd here it stays off, and the answer
                    // says why, so a source asked for post-copy refuses this target before anything moves.
                    await qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-ram", state = true } } }, cancellationToken);
                }
                catch (QmpException e)
                {
                    var identity = await DetectQemuIdentityAsync(cancellationToken);
                    noPostCopy = identity.DropsPrivileges
                        ? $"QEMU runs as {identity.User} here and the kernel refuses it userfaultfd ({e.Message}); QEMU 7.2 needs vm.unprivileged_userfaultfd=1 for that"
                        : $"QEMU has no userfaultfd here ({e.Message})";
                    LogPostCopyUnavailable(_logger, spec.Id.ToString(), noPostCopy);
                }

                Volatile.Write(ref _postCopyProbe, new PostCopyProbe(noPostCopy));

                var uri = await ListenForMigrationAsync(qmp, cancellationToken);
                vm.Incoming = new IncomingMigration(spec.Id, uri, diskTarget, forwards) { PostCopyUnavailable = noPostCopy };
                await File.WriteAllTextAsync(vm.IncomingMarkerPath, JsonSerializer.Serialize(vm.Incoming, Json), cancellationToken);
                _incoming[spec.Id] = vm;
            }
            finally
            {
                vm.Gate.Release();
            }

            LogIncomingPrepared(_logger, spec.Id.ToString(), vm.Pid ?? 0, vm.Incoming.Uri);
            return vm.Incoming;
        }
        catch
        {
            if (vm is not null && !_incoming.ContainsKey(spec.Id))
            {
                vm.Incoming ??= new IncomingMigration(spec.Id, "", null, []);
                await KillAsync(vm, CancellationToken.None);
                await RemoveEverythingAsync(vm, CancellationToken.None, keepSharedDisk: true);
            }

            ReleasePorts(spec.Id);
            throw;
        }
        finally
        {
            _createGate.Release();
        }
    }

    /// <summary>Whether this host's destination QEMUs can take post-copy (learned from the first incoming migration).</summary>
    private sealed record PostCopyProbe(string? Unavailable);

    private PostCopyProbe? _postCopyProbe;

    /// <summary>
    /// A shared-pool destination that listens before its QEMU runs: the agent binds the migration port itself and answers at
    /// once, so the source starts sending while the destination's QEMU starts (≈ 45 ms, the longest step of a preparation);
    /// the source's first bytes wait in the socket buffer. In the background, holding the VM's gate: start QEMU
    /// (<c>-incoming defer</c>), plug the source's hot-plugged devices, post-copy on where this host allows it, accept the
    /// source's connection and hand it to QEMU (<c>getfd</c> + <c>migrate-incoming fd:</c>). A start that fails leaves QEMU
    /// dead: the source's migration fails on the closed connection, Complete answers <c>migration_failed</c> with the
    /// reason, Abort cleans up. The local pool keeps the sequential path: its NBD export must exist before the mirror starts.
    /// </summary>
    private async Task<IncomingMigration> PrepareIncomingPipelinedAsync(QemuVm vm, IReadOnlyList<PortForward> forwards, string? noPostCopy,
        CancellationToken cancellationToken)
    {
        var address = _options.MigrationListenAddress;
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // A receive buffer large enough for what the source sends while QEMU starts (≈ 45 ms at a few hundred MB/s):
            // set before listen, so the connection inherits it and its window scale allows it. Root may pass rmem_max.
            try
            {
                listener.SetRawSocketOption(SolSocket, SoRcvBufForce, BitConverter.GetBytes(IncomingReceiveBuffer));
            }
            catch (SocketException)
            {
                listener.ReceiveBufferSize = IncomingReceiveBuffer; // capped by net.core.rmem_max
            }

            listener.Bind(new IPEndPoint(address, 0));
            listener.Listen(1);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        var host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        vm.Incoming = new IncomingMigration(vm.Id, $"tcp:{host}:{port.ToString(CultureInfo.InvariantCulture)}", null, forwards) { PostCopyUnavailable = noPostCopy };
        try
        {
            await File.WriteAllTextAsync(vm.IncomingMarkerPath, JsonSerializer.Serialize(vm.Incoming, Json), cancellationToken);
            await vm.Gate.WaitAsync(cancellationToken);
        }
        catch
        {
            listener.Dispose(); // the caller removes the rest
            throw;
        }

        vm.IncomingStart = new CancellationTokenSource();
        vm.IncomingStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _incoming[vm.Id] = vm;
        var start = vm.IncomingStart.Token;
        _ = Task.Run(async () =>
        {
            try
            {
                await LaunchAsync(vm, start, incoming: true);
                var qmp = vm.Qmp!;
                await ReplayHotPlugAsync(vm, qmp, start);
                if (noPostCopy is null)
                {
                    await qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-ram", state = true } } }, start);
                }

                vm.IncomingStarted.TrySetResult();

                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(start);
                timeout.CancelAfter(IncomingAcceptTimeout);
                using var connection = await listener.AcceptAsync(timeout.Token);
                listener.Dispose();
                await qmp.ExecuteWithFdAsync("getfd", new { fdname = "stratus-migration" }, (int)connection.SafeHandle.DangerousGetHandle(), start);
                await qmp.ExecuteAsync("migrate-incoming", new { uri = "fd:stratus-migration" }, start);
                LogIncomingPrepared(_logger, vm.Id.ToString(), vm.Pid ?? 0, vm.Incoming.Uri + " (pipelined)");
            }
            catch (Exception e)
            {
                vm.IncomingStartFailure = e is OperationCanceledException && !start.IsCancellationRequested
                    ? $"the source did not connect within {IncomingAcceptTimeout.TotalSeconds:0} s"
                    : e.Message;
                vm.IncomingStarted.TrySetException(new ComputeException("migration_failed", vm.IncomingStartFailure));
                if (!_disposed)
                {
                    LogIncomingStartFailed(_logger, vm.Id.ToString(), vm.IncomingStartFailure);
                    await KillAsync(vm, CancellationToken.None);
                }

                // Disposed (the agent stops): the QEMU stays, as after a crash; the next driver finds and aborts it.
            }
            finally
            {
                listener.Dispose();
                vm.Gate.Release();
            }
        }, CancellationToken.None);
        return vm.Incoming;
    }

    private static readonly TimeSpan IncomingAcceptTimeout = TimeSpan.FromMinutes(5);

    private const int SolSocket = 1;
    private const int SoRcvBufForce = 33;

    /// <summary>32 MiB: what the source sends while the destination QEMU starts (≈ 16 MiB at 350 MB/s in 45 ms) waits here instead of stalling it.</summary>
    private const int IncomingReceiveBuffer = 32 * 1024 * 1024;

    /// <summary>For tests: waits until a pipelined destination's QEMU runs (at once for a sequentially prepared one).
    /// True when the preparation was pipelined.</summary>
    internal async Task<bool> WaitIncomingStartedAsync(InstanceId id)
    {
        if (!_incoming.TryGetValue(id, out var vm) || vm.IncomingStarted is not { } started)
        {
            return false;
        }

        await started.Task;
        return true;
    }

    /// <summary>A destination whose source had hot-plugged vCPUs/DIMMs plugs the same ones, in the same order, before the
    /// state arrives (<c>device_add</c> is refused once the incoming migration started).</summary>
    private async Task ReplayHotPlugAsync(QemuVm vm, QmpClient qmp, CancellationToken cancellationToken)
    {
        if (vm.Spec.HotPlugged is not { } source)
        {
            return;
        }

        if (source.PluggedVcpus > source.BootVcpus)
        {
            await HotAddVcpusAsync(qmp, source.BootVcpus, source.PluggedVcpus, null, cancellationToken);
        }

        for (var n = 0; n < source.DimmsMib.Count; n++)
        {
            await PlugDimmAsync(qmp, n, source.DimmsMib[n], cancellationToken);
        }

        vm.Live = new LiveSize(source.PluggedVcpus, source.BootMemoryMib, [.. source.DimmsMib], source.BootVcpus);
        await SaveStateAsync(vm, cancellationToken);
    }

    /// <summary>Exports the destination's (empty) root disk writable over NBD for the source's mirror: "host:port:export".</summary>
    private async Task<string> StartDiskExportAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var host = _options.MigrationListenAddress.ToString();
        for (var attempt = 0; ; attempt++)
        {
            var port = FreeTcpPort(_options.MigrationListenAddress);
            try
            {
                await qmp.ExecuteAsync("nbd-server-start", new { addr = new { type = "inet", data = new { host, port = port.ToString(CultureInfo.InvariantCulture) } } }, cancellationToken);
                await qmp.ExecuteAsync("block-export-add", Args(("type", "nbd"), ("id", "stratus-export"), ("node-name", "root-fmt"), ("name", ExportName), ("writable", true)), cancellationToken);
                return $"{(_options.MigrationListenAddress.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]" : host)}:{port}:{ExportName}";
            }
            catch (QmpException) when (attempt < 4)
            {
                // The port was taken between probe and bind: try another.
                try
                {
                    await qmp.ExecuteAsync("nbd-server-stop", null, cancellationToken);
                }
                catch (QmpException)
                {
                }
            }
        }
    }

    private async Task<string> ListenForMigrationAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var address = _options.MigrationListenAddress;
        var host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        for (var attempt = 0; ; attempt++)
        {
            var uri = $"tcp:{host}:{FreeTcpPort(address).ToString(CultureInfo.InvariantCulture)}";
            try
            {
                await qmp.ExecuteAsync("migrate-incoming", new { uri }, cancellationToken);
                return uri;
            }
            catch (QmpException) when (attempt < 4)
            {
            }
        }
    }

    private static int FreeTcpPort(IPAddress address)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static Dictionary<string, object?> Args(params (string Key, object? Value)[] pairs) =>
        pairs.ToDictionary(p => p.Key, p => p.Value);

    /// <inheritdoc />
    public async Task<MigrationProgress> MigrateOutAsync(InstanceId id, IncomingMigration target, MigrationOptions options,
        IProgress<MigrationProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        options ??= new MigrationOptions();
        var errors = new List<string>();
        if (target.Id != id) errors.Add($"the target was prepared for VM {target.Id}, not {id}");
        if (!target.Uri.StartsWith("tcp:", StringComparison.Ordinal)) errors.Add($"migration URI '{target.Uri}' is not tcp:HOST:PORT");
        if (options.MaxDowntime is { } d && (d < TimeSpan.FromMilliseconds(1) || d > TimeSpan.FromMinutes(10))) errors.Add("max downtime must be 1 ms–10 min");
        if (options.BandwidthBytesPerSecond is <= 0) errors.Add("bandwidth must be positive");
        if (options.PostCopy && target.PostCopyUnavailable is { } noPostCopy)
        {
            // Nothing has moved: the VM keeps running here (QEMU's own failure, later, would only say the socket closed).
            throw new ComputeException("migration_failed", $"the destination cannot receive a post-copy migration: {noPostCopy}");
        }

        var vm = await GetVmAsync(id, cancellationToken);
        var mirror = !vm.OnSharedPool && File.Exists(vm.DiskPath);
        (string Host, string Port, string Export)? nbd = null;
        if (mirror)
        {
            // HOST:PORT:EXPORT, split from the right (an IPv6 host has colons of its own).
            var t = target.DiskTarget ?? "";
            var exportAt = t.LastIndexOf(':');
            var portAt = exportAt > 0 ? t.LastIndexOf(':', exportAt - 1) : -1;
            if (portAt <= 0 || exportAt == t.Length - 1 || !int.TryParse(t[(portAt + 1)..exportAt], CultureInfo.InvariantCulture, out _))
            {
                errors.Add($"VM {id} has a local-pool disk: the target needs the destination's disk export as HOST:PORT:EXPORT (got '{target.DiskTarget}')");
            }
            else
            {
                nbd = (t[..portAt].Trim('[', ']'), t[(portAt + 1)..exportAt], t[(exportAt + 1)..]);
            }
        }

        if (errors.Count > 0)
        {
            throw new ComputeException("invalid_spec", string.Join("; ", errors));
        }

        await vm.Gate.WaitAsync(cancellationToken);
        try
        {
            if (!_vms.ContainsKey(id))
            {
                throw new ComputeException("not_found", $"VM {id} does not exist on this host");
            }

            if (vm.Pid is null || vm.Qmp is not { } qmp)
            {
                throw new ComputeException("invalid_state", $"cannot live-migrate VM {id}: it is {vm.Power.ToString().ToLowerInvariant()} (cold-migrate a stopped VM)");
            }

            var runState = (await qmp.ExecuteAsync("query-status", null, cancellationToken)).GetProperty("status").GetString();
            var wasRunning = runState == "running";
            var disk = new MirrorState();
            void OnEvent(QmpEvent e) => disk.Observe(e);
            qmp.EventReceived += OnEvent;
            var clock = Stopwatch.StartNew();
            LogMigrationStarted(_logger, id.ToString(), target.Uri, mirror);
            // The migration thread runs in the VM's cgroup: lift the guest's CPU cap while it runs, so a busy
            // guest does not slow its own migration (host work, not the tenant's CPU).
            vm.MigrationHeadroom = true;
            await WriteCgroupAsync(vm, cancellationToken);
            try
            {
                await EnsureMigrationSetupAsync(vm, qmp, MigrationSetup.For(options), cancellationToken);
                if (nbd is { } n)
                {
                    await MirrorDiskAsync(qmp, n, disk, progress, cancellationToken);
                }

                await qmp.ExecuteAsync("migrate", new { uri = target.Uri }, cancellationToken);
                var final = await WatchMigrationAsync(qmp, options, mirror, disk, progress, cancellationToken);
                if (mirror)
                {
                    // The source is stopped (postmigrate): a soft cancel of the ready mirror copies what is still dirty, then ends.
                    await StopMirrorAsync(qmp, disk, force: false);
                    final = final with { DiskTotalBytes = disk.Length, DiskTransferredBytes = disk.Offset };
                }

                vm.Power = PowerState.Paused;
                LogMigrationCompleted(_logger, id.ToString(), final.TotalTimeMs ?? clock.ElapsedMilliseconds, final.DowntimeMs ?? -1);
                return final;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                var outcome = await RecoverSourceAsync(vm, qmp, wasRunning, mirror, disk);
                if (outcome is { Status: "completed" })
                {
                    // Cancelled too late: the VM already runs at the destination.
                    return outcome;
                }

                LogMigrationCancelled(_logger, id.ToString());
                throw;
            }
            catch (Exception e) when (e is ComputeException or QmpException or IOException or TimeoutException)
            {
                var outcome = await RecoverSourceAsync(vm, qmp, wasRunning, mirror, disk);
                if (outcome is { Status: "completed" } && e is not ComputeException)
                {
                    return outcome;
                }

                var reason = e is ComputeException ce ? ce.Message : $"QEMU: {e.Message}";
                LogMigrationFailed(_logger, id.ToString(), reason);
                throw e is ComputeException { Code: "migration_failed" } ? e : new ComputeException("migration_failed", reason);
            }
            finally
            {
                qmp.EventReceived -= OnEvent;
                vm.MigrationHeadroom = false;
                if (vm.Pid is not null)
                {
                    await WriteCgroupAsync(vm, CancellationToken.None);
                }
            }
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    private const long UnlimitedBandwidth = 1L << 40;

    /// <summary>What an outgoing migration needs set in QEMU before <c>migrate</c>.</summary>
    public sealed record MigrationSetup(bool AutoConverge, bool PostCopy, long DowntimeLimitMs, long MaxBandwidth)
    {
        /// <summary>Downtime limit 300 ms, bandwidth uncapped (QEMU's own default cap is 128 MiB/s), no auto-converge or post-copy.</summary>
        public static MigrationSetup Default { get; } = For(new MigrationOptions());

        public static MigrationSetup For(MigrationOptions options) => new(options.AutoConverge, options.PostCopy,
            (long)(options.MaxDowntime ?? TimeSpan.FromMilliseconds(300)).TotalMilliseconds, options.BandwidthBytesPerSecond ?? UnlimitedBandwidth);
    }

    /// <summary>Sets <paramref name="setup"/> in QEMU unless this process already has it. Done for the default settings when a
    /// VM starts or arrives, so a default migration sends only <c>migrate</c> (two QMP round trips fewer on its critical path,
    /// 1–8 ms measured with a busy guest).</summary>
    private static async Task EnsureMigrationSetupAsync(QemuVm vm, QmpClient qmp, MigrationSetup setup, CancellationToken cancellationToken)
    {
        if (vm.MigrationSetup == setup)
        {
            return;
        }

        vm.MigrationSetup = null; // unknown until both commands went through
        await qmp.ExecuteAsync("migrate-set-capabilities", new
        {
            capabilities = new[]
            {
                new { capability = "auto-converge", state = setup.AutoConverge },
                new { capability = "postcopy-ram", state = setup.PostCopy },
                // MIGRATION events wake the progress loop at each status change (completion seen at once, not at the next poll).
                new { capability = "events", state = true },
            },
        }, cancellationToken);
        await qmp.ExecuteAsync("migrate-set-parameters", Args(("downtime-limit", setup.DowntimeLimitMs), ("max-bandwidth", setup.MaxBandwidth)), cancellationToken);
        vm.MigrationSetup = setup;
    }

    /// <summary>For tests: one QMP command on a VM's own connection (QEMU's QMP socket takes one client, the driver).</summary>
    internal async Task<JsonElement> ExecuteQmpForTestsAsync(InstanceId id, string command, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        return await (vm.Qmp ?? throw new ComputeException("invalid_state", $"VM {id} has no QEMU")).ExecuteAsync(command, null, cancellationToken);
    }

    /// <summary>Makes a VM that just started or arrived ready to migrate out with the default settings. Best effort: a failure
    /// only means the next migration sets them itself.</summary>
    private async Task PrepareForMigrationAsync(QemuVm vm, QmpClient qmp)
    {
        try
        {
            await EnsureMigrationSetupAsync(vm, qmp, MigrationSetup.Default, CancellationToken.None);
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException)
        {
            LogMigrationSetupDeferred(_logger, vm.Id.ToString(), e.Message);
        }
    }

    /// <summary>Disk mirror job as seen through QMP events and <c>query-block-jobs</c>.</summary>
    private sealed class MirrorState
    {
        /// <summary>Released at every QMP MIGRATION event (status change).</summary>
        public SemaphoreSlim MigrationChanged { get; } = new(0);

        public volatile string? Error;
        public volatile bool Ended;
        public long Length;
        public long Offset;

        public void Observe(QmpEvent e)
        {
            if (e.Name == "MIGRATION")
            {
                MigrationChanged.Release();
                return;
            }

            if (e.Name is not ("BLOCK_JOB_COMPLETED" or "BLOCK_JOB_CANCELLED" or "BLOCK_JOB_ERROR")
                || e.Data.ValueKind != JsonValueKind.Object
                || !e.Data.TryGetProperty("device", out var dev) || dev.GetString() != MirrorJob)
            {
                return;
            }

            if (e.Data.TryGetProperty("error", out var err))
            {
                Error = err.GetString();
            }
            else if (e.Name == "BLOCK_JOB_ERROR")
            {
                Error = "disk mirror I/O error (" + (e.Data.TryGetProperty("operation", out var op) ? op.GetString() : "?") + ")";
            }

            if (e.Name != "BLOCK_JOB_ERROR")
            {
                Ended = true;
            }
        }
    }

    /// <summary>Starts the mirror of the root disk into the destination's NBD export and waits until it is in sync ("ready").</summary>
    private static async Task MirrorDiskAsync(QmpClient qmp, (string Host, string Port, string Export) nbd, MirrorState disk,
        IProgress<MigrationProgress>? progress, CancellationToken cancellationToken)
    {
        await qmp.ExecuteAsync("blockdev-add", Args(
            ("driver", "nbd"),
            ("node-name", MirrorTargetNode),
            ("server", new { type = "inet", host = nbd.Host, port = nbd.Port }),
            ("export", nbd.Export)), cancellationToken);
        // sync=top: only what the overlay holds; the destination's overlay has the same backing image.
        await qmp.ExecuteAsync("blockdev-mirror", Args(("job-id", MirrorJob), ("device", "root-fmt"), ("target", MirrorTargetNode), ("sync", "top")), cancellationToken);
        while (true)
        {
            var job = await QueryMirrorAsync(qmp, disk, cancellationToken);
            if (job is null || disk.Ended)
            {
                throw new ComputeException("migration_failed", "disk mirror to the destination failed: " + (disk.Error ?? "the job ended before it was in sync"));
            }

            progress?.Report(new MigrationProgress("setup", 0, 0, 0, 0, 0, null, null, disk.Length, disk.Offset));
            if (job.Value.Ready)
            {
                return;
            }

            await Task.Delay(ProgressIntervalMs, cancellationToken);
        }
    }

    private static async Task<(bool Ready, string Status)?> QueryMirrorAsync(QmpClient qmp, MirrorState disk, CancellationToken cancellationToken)
    {
        foreach (var job in (await qmp.ExecuteAsync("query-block-jobs", null, cancellationToken)).EnumerateArray())
        {
            if (job.GetProperty("device").GetString() != MirrorJob)
            {
                continue;
            }

            disk.Length = job.GetProperty("len").GetInt64();
            disk.Offset = job.GetProperty("offset").GetInt64();
            var status = job.TryGetProperty("status", out var s) ? s.GetString() ?? "" : "";
            return (job.TryGetProperty("ready", out var r) && r.GetBoolean(), status);
        }

        return null;
    }

    /// <summary>Polls <c>query-migrate</c> every 100 ms (and at every MIGRATION event) until QEMU reports completed (returned) or failed/cancelled (thrown).</summary>
    private static async Task<MigrationProgress> WatchMigrationAsync(QmpClient qmp, MigrationOptions options, bool mirror, MirrorState disk,
        IProgress<MigrationProgress>? progress, CancellationToken cancellationToken)
    {
        var postCopyStarted = false;
        var completedSeen = 0;
        while (true)
        {
            var info = await qmp.ExecuteAsync("query-migrate", null, cancellationToken);
            if (mirror && info.TryGetProperty("status", out var st) && st.GetString() != "completed")
            {
                if (await QueryMirrorAsync(qmp, disk, cancellationToken) is null || disk.Ended)
                {
                    throw new ComputeException("migration_failed", "disk mirror to the destination stopped: " + (disk.Error ?? "the job ended"));
                }
            }

            var p = ParseProgress(info) with { DiskTotalBytes = disk.Length, DiskTransferredBytes = disk.Offset };
            if (p.Status == "completed" && p.TotalTimeMs is null or 0 && completedSeen++ < 250)
            {
                // QEMU sets "completed" a moment before it computes total-time and downtime: ask again for the figures.
                await Task.Delay(2, cancellationToken);
                continue;
            }

            progress?.Report(p);
            switch (p.Status)
            {
                case "completed":
                    return p;
                case "failed":
                    throw new ComputeException("migration_failed", p.Error ?? "QEMU reported the migration failed");
                case "cancelled":
                    throw new ComputeException("migration_failed", "the migration was cancelled in QEMU");
            }

            if (options.PostCopy && !postCopyStarted && p.Status == "active" && DirtySyncCount(info) >= 2)
            {
                // One full pre-copy pass is done: switch to post-copy (pages the destination misses are fetched on demand).
                await qmp.ExecuteAsync("migrate-start-postcopy", null, cancellationToken);
                postCopyStarted = true;
            }

            await disk.MigrationChanged.WaitAsync(ProgressIntervalMs, cancellationToken);
        }
    }

    private static long DirtySyncCount(JsonElement info) =>
        info.TryGetProperty("ram", out var ram) && ram.TryGetProperty("dirty-sync-count", out var c) ? c.GetInt64() : 0;

    /// <summary>Maps QEMU's <c>query-migrate</c> answer to <see cref="MigrationProgress"/>.</summary>
    internal static MigrationProgress ParseProgress(JsonElement info)
    {
        static long Get(JsonElement e, string name) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;
        static long? GetOpt(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;
        var status = info.TryGetProperty("status", out var s) ? s.GetString() ?? "none" : "none";
        var ram = info.TryGetProperty("ram", out var r) ? r : default;
        var pageSize = Get(ram, "page-size") is > 0 and var ps ? ps : 4096;
        var dirtyRate = ram.ValueKind == JsonValueKind.Object && ram.TryGetProperty("dirty-pages-rate", out var dr) && dr.ValueKind == JsonValueKind.Number
            ? (long)dr.GetDouble() * pageSize
            : 0;
        return new MigrationProgress(
            status,
            Get(ram, "total"),
            Get(ram, "transferred"),
            Get(ram, "remaining"),
            dirtyRate,
            Get(info, "expected-downtime"),
            GetOpt(info, "downtime"),
            GetOpt(info, "total-time"),
            Error: info.TryGetProperty("error-desc", out var e) ? e.GetString() : null);
    }

    /// <summary>After a failed or cancelled migration: makes sure no migration is in flight, ends the mirror and lets the VM run
    /// again here (QEMU leaves it paused when the failure comes after the switch-over started). Never throws.
    /// Returns the migration's final progress, which is "completed" when the cancel came too late.</summary>
    private async Task<MigrationProgress?> RecoverSourceAsync(QemuVm vm, QmpClient qmp, bool wasRunning, bool mirror, MirrorState disk)
    {
        MigrationProgress? last = null;
        try
        {
            var deadline = Stopwatch.StartNew();
            var cancelSent = false;
            while (deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                last = ParseProgress(await qmp.ExecuteAsync("query-migrate", null, CancellationToken.None));
                if (last.Status is "none" or "completed" or "failed" or "cancelled")
                {
                    break;
                }

                if (!cancelSent)
                {
                    await qmp.ExecuteAsync("migrate_cancel", null, CancellationToken.None);
                    cancelSent = true;
                }

                await Task.Delay(ProgressIntervalMs, CancellationToken.None);
            }

            if (last is { Status: "completed" })
            {
                if (mirror)
                {
                    await StopMirrorAsync(qmp, disk, force: false);
                }

                vm.Power = PowerState.Paused;
                return last;
            }

            if (mirror)
            {
                await StopMirrorAsync(qmp, disk, force: true);
            }

            var state = (await qmp.ExecuteAsync("query-status", null, CancellationToken.None)).GetProperty("status").GetString();
            if (wasRunning && state != "running")
            {
                await qmp.ExecuteAsync("cont", null, CancellationToken.None);
            }

            vm.Power = wasRunning ? PowerState.Running : vm.Power;
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException or ObjectDisposedException)
        {
            LogRecoverFailed(_logger, vm.Id.ToString(), e.Message);
        }

        return last;
    }

    /// <summary>Ends the mirror job (soft: copies what is still dirty; force: at once) and drops its NBD target node. Never throws.</summary>
    private static async Task StopMirrorAsync(QmpClient qmp, MirrorState disk, bool force)
    {
        try
        {
            if (await QueryMirrorAsync(qmp, disk, CancellationToken.None) is not null)
            {
                await qmp.ExecuteAsync("block-job-cancel", new { device = MirrorJob, force }, CancellationToken.None);
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed < TimeSpan.FromSeconds(30) && await QueryMirrorAsync(qmp, disk, CancellationToken.None) is not null)
                {
                    await Task.Delay(20, CancellationToken.None);
                }
            }
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException)
        {
        }

        try
        {
            await qmp.ExecuteAsync("blockdev-del", Args(("node-name", MirrorTargetNode)), CancellationToken.None);
        }
        catch (Exception e) when (e is QmpException or IOException or TimeoutException)
        {
            // Not added (the failure came first) or already gone.
        }
    }

    /// <summary>The incoming VM <paramref name="id"/>: in memory, or found again from its marked directory after a driver restart.</summary>
    private async Task<QemuVm?> FindIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        if (_incoming.TryGetValue(id, out var vm))
        {
            return vm;
        }

        var dir = Path.Combine(_vmsRoot, id.ToString());
        var marker = Path.Combine(dir, IncomingMarker);
        if (!File.Exists(marker) || !File.Exists(Path.Combine(dir, "spec.json")) || !File.Exists(Path.Combine(dir, "state.json")))
        {
            return null;
        }

        var text = await File.ReadAllTextAsync(marker, cancellationToken);
        var incoming = text.Length > 0 ? JsonSerializer.Deserialize<IncomingMigration>(text) : null;
        vm = await AdoptAsync(id, dir, cancellationToken, incoming ?? new IncomingMigration(id, "", null, []));
        return _incoming.GetOrAdd(id, vm);
    }

    /// <inheritdoc />
    public async Task<VmStatus> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var vm = await FindIncomingAsync(id, cancellationToken);
        if (vm is null)
        {
            return _vms.TryGetValue(id, out var done)
                ? await StatusOfAsync(done, cancellationToken)
                : throw new ComputeException("not_found", $"no incoming migration of VM {id} on this host");
        }

        await vm.Gate.WaitAsync(cancellationToken);
        try
        {
            if (vm.Pid is null || vm.Qmp is not { } qmp)
            {
                throw new ComputeException("migration_failed", $"the destination QEMU of VM {id} is gone"
                    + (vm.IncomingStartFailure is { } why ? $" (its start failed: {why})" : ""));
            }

            try
            {
                // The source has returned "completed"; the destination may still be loading the last device state.
                var clock = Stopwatch.StartNew();
                while (true)
                {
                    var status = ParseProgress(await qmp.ExecuteAsync("query-migrate", null, cancellationToken));
                    if (status.Status == "completed")
                    {
                        break;
                    }

                    if (status.Status is "failed" or "cancelled")
                    {
                        throw new ComputeException("migration_failed", $"the incoming migration of VM {id} {status.Status}: {status.Error}");
                    }

                    if (clock.Elapsed > _options.StartTimeout)
                    {
                        throw new ComputeException("invalid_state", $"the incoming migration of VM {id} has not completed (QEMU says {status.Status})");
                    }

                    await Task.Delay(2, cancellationToken);
                }

                if (vm.NbdServing)
                {
                    await qmp.ExecuteAsync("nbd-server-stop", null, cancellationToken);
                    vm.NbdServing = false;
                }

                if ((await qmp.ExecuteAsync("query-status", null, cancellationToken)).GetProperty("status").GetString() != "running")
                {
                    await qmp.ExecuteAsync("cont", null, cancellationToken);
                }

                // As a destination it had post-copy on: set what its own next move needs.
                await PrepareForMigrationAsync(vm, qmp);
            }
            catch (Exception e) when (e is IOException or TimeoutException or QmpException)
            {
                throw new ComputeException("migration_failed", $"the destination QEMU of VM {id} failed: {e.Message}");
            }

            vm.Power = PowerState.Running;
            vm.Incoming = null;
            await SaveStateAsync(vm, cancellationToken);
            File.Delete(vm.IncomingMarkerPath);
            _vms[id] = vm;
            _incoming.TryRemove(id, out _);
            LogIncomingCompleted(_logger, id.ToString(), vm.Pid ?? 0);
            return vm.Status();
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>Also the source's clean-up of a cold migration (a stopped VM). Refuses (<c>invalid_state</c>) while the VM still
    /// runs here: only a QEMU whose migration completed (run state <c>postmigrate</c>) is ended. A missing VM is a no-op.</remarks>
    public async Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        if (!_vms.TryGetValue(id, out var vm))
        {
            return;
        }

        await vm.Gate.WaitAsync(cancellationToken);
        try
        {
            if (!_vms.ContainsKey(id))
            {
                return;
            }

            if (vm.Pid is not null && vm.Qmp is { } qmp)
            {
                var state = (await qmp.ExecuteAsync("query-status", null, cancellationToken)).GetProperty("status").GetString();
                var migration = ParseProgress(await qmp.ExecuteAsync("query-migrate", null, cancellationToken)).Status;
                if (state != "postmigrate" && migration != "completed")
                {
                    throw new ComputeException("invalid_state", $"VM {id} still runs here (QEMU state {state}, migration {migration}); nothing was migrated");
                }
            }

            await KillAsync(vm, cancellationToken);
            await RemoveEverythingAsync(vm, cancellationToken, keepSharedDisk: true);
            _vms.TryRemove(id, out _);
            ReleasePorts(id);
            LogOutgoingCompleted(_logger, id.ToString());
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<InstanceId>> ListIncomingAsync(CancellationToken cancellationToken)
    {
        var ids = new HashSet<InstanceId>(_incoming.Keys);
        if (Directory.Exists(_vmsRoot))
        {
            foreach (var dir in Directory.GetDirectories(_vmsRoot))
            {
                if (InstanceId.TryParse(Path.GetFileName(dir), out var id) && File.Exists(Path.Combine(dir, IncomingMarker)))
                {
                    ids.Add(id);
                }
            }
        }
        return Task.FromResult<IReadOnlyList<InstanceId>>([.. ids]);
    }

    public async Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken)
    {
        QemuVm? vm;
        try
        {
            vm = await FindIncomingAsync(id, cancellationToken);
        }
        catch (Exception e) when (e is IOException or JsonException or TimeoutException or QmpException or ComputeException)
        {
            // Unreadable remains: remove the directory and whatever QEMU still names this instance there.
            LogAdoptFailed(_logger, id.ToString(), e.Message);
            var dir = Path.Combine(_vmsRoot, id.ToString());
            if (File.Exists(Path.Combine(dir, IncomingMarker)))
            {
                Directory.Delete(dir, recursive: true);
            }

            ReleasePorts(id);
            return;
        }

        if (vm is null)
        {
            return;
        }

        if (vm.IncomingStart is { } start)
        {
            await start.CancelAsync(); // a pipelined start still waiting for QEMU or the source's connection
        }

        await vm.Gate.WaitAsync(cancellationToken);
        try
        {
            vm.Incoming ??= new IncomingMigration(id, "", null, []);
            await KillAsync(vm, cancellationToken);
            await RemoveEverythingAsync(vm, cancellationToken, keepSharedDisk: true);
            _incoming.TryRemove(id, out _);
            ReleasePorts(id);
            LogIncomingAborted(_logger, id.ToString());
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        if (vm.Pid is not null)
        {
            throw new ComputeException("invalid_state", $"VM {id} must be stopped for a cold migration (it is {vm.Power.ToString().ToLowerInvariant()})");
        }

        return vm.OnSharedPool || !File.Exists(vm.DiskPath) ? null : vm.DiskPath;
    }

    /// <inheritdoc />
    /// <remarks>The copied qcow2 overlay keeps its backing file path: the base image must be at the same path here
    /// (<c>image_invalid</c> otherwise). Ports are resolved as for <see cref="CreateAsync"/>. Idempotent for an existing VM.</remarks>
    public async Task<VmStatus> ImportStoppedAsync(VmSpec spec, string? sourceDisk, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        await EnsureLoadedAsync(cancellationToken);
        ValidateSpec(spec);
        var dir = Path.Combine(_vmsRoot, spec.Id.ToString());
        var diskDir = DiskDirectoryFor(spec, dir);
        if (sourceDisk is not null && (!Path.IsPathFullyQualified(sourceDisk) || !File.Exists(sourceDisk)))
        {
            throw new ComputeException("not_found", $"source disk {sourceDisk} is not an existing file (absolute path)");
        }

        await _createGate.WaitAsync(cancellationToken);
        QemuVm? vm = null;
        try
        {
            if (_vms.TryGetValue(spec.Id, out var existing))
            {
                return await StatusOfAsync(existing, cancellationToken);
            }

            RequireNotIncoming(spec.Id);
            var forwards = ResolveForwards(spec.Id, spec.Forwards, []);
            vm = new QemuVm(spec.Id, dir, spec, forwards, diskDir) { QmpPath = QmpPathFor(spec.Id, dir) };
            CreatePrivateDirectory(dir);
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(spec, Json), cancellationToken);
            if (vm.OnSharedPool)
            {
                if ((spec.ImagePath is not null || spec.DiskGib > 0) && !File.Exists(vm.DiskPath))
                {
                    throw new ComputeException("not_found", $"the shared pool has no disk for VM {spec.Id} ({vm.DiskPath})");
                }
            }
            else if (sourceDisk is not null)
            {
                var tmp = vm.DiskPath + ".tmp";
                await using (var from = new FileStream(sourceDisk, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
                await using (var to = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
                {
                    await from.CopyToAsync(to, cancellationToken);
                }

                File.Move(tmp, vm.DiskPath, overwrite: true);
                var info = await _qemuImg.InfoAsync(vm.DiskPath, mayBeInUse: false, cancellationToken);
                if (info.BackingFile is { } backing && !File.Exists(backing))
                {
                    throw new ComputeException("image_invalid", $"the copied disk's base image {backing} does not exist on this host");
                }
            }
            else
            {
                await PrepareDiskAsync(vm, cancellationToken);
            }

            if (!File.Exists(vm.ConfigDrivePath))
            {
                await ConfigDrive.BuildAsync(spec, vm.ConfigDrivePath, cancellationToken);
            }

            vm.Power = PowerState.Shutdown;
            await SaveStateAsync(vm, cancellationToken);
            _vms[spec.Id] = vm;
            return vm.Status();
        }
        catch
        {
            if (vm is not null && !_vms.ContainsKey(spec.Id))
            {
                await RemoveEverythingAsync(vm, CancellationToken.None, keepSharedDisk: true);
            }

            ReleasePorts(spec.Id);
            throw;
        }
        finally
        {
            _createGate.Release();
        }
    }

    [LoggerMessage(EventId = 4042, Level = LogLevel.Warning, Message = "VM {InstanceId}: the destination QEMU of a pipelined incoming migration did not start: {Reason}")]
    private static partial void LogIncomingStartFailed(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "VM {InstanceId} incoming migration prepared, QEMU pid {Pid}, listening on {Uri}")]
    private static partial void LogIncomingPrepared(ILogger logger, string instanceId, int pid, string uri);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "VM {InstanceId} migration to {Uri} started (disk mirror: {Mirror})")]
    private static partial void LogMigrationStarted(ILogger logger, string instanceId, string uri, bool mirror);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "VM {InstanceId} migration completed in {TotalMs} ms, downtime {DowntimeMs} ms")]
    private static partial void LogMigrationCompleted(ILogger logger, string instanceId, long totalMs, long downtimeMs);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Warning, Message = "VM {InstanceId} migration failed: {Reason}; the VM keeps running here")]
    private static partial void LogMigrationFailed(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 4041, Level = LogLevel.Debug, Message = "VM {InstanceId}: migration settings not preset ({Reason}); its next migration sets them")]
    private static partial void LogMigrationSetupDeferred(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Information, Message = "VM {InstanceId} migration cancelled; the VM keeps running here")]
    private static partial void LogMigrationCancelled(ILogger logger, string instanceId);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Warning, Message = "VM {InstanceId} could not be fully recovered after a failed migration: {Reason}")]
    private static partial void LogRecoverFailed(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Information, Message = "VM {InstanceId} arrived by migration, QEMU pid {Pid}")]
    private static partial void LogIncomingCompleted(ILogger logger, string instanceId, int pid);

    [LoggerMessage(EventId = 4017, Level = LogLevel.Information, Message = "VM {InstanceId} left by migration; source process and files removed")]
    private static partial void LogOutgoingCompleted(ILogger logger, string instanceId);

    [LoggerMessage(EventId = 4018, Level = LogLevel.Information, Message = "VM {InstanceId} incoming migration aborted; destination removed")]
    private static partial void LogIncomingAborted(ILogger logger, string instanceId);

    [LoggerMessage(EventId = 4019, Level = LogLevel.Debug, Message = "VM {InstanceId}: post-copy unavailable on this destination: {Reason}")]
    private static partial void LogPostCopyUnavailable(ILogger logger, string instanceId, string reason);
}
