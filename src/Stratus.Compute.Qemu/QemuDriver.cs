using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Stratus.Compute.Qemu.Cgroups;
using Stratus.Compute.Qemu.Launch;
using Stratus.Compute.Qemu.Qmp;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Runs each VM as one supervised <c>qemu-system-x86_64</c> process, exec'd directly (no shell), driven over QMP.
/// State lives in <c>&lt;DataDirectory&gt;/vms/&lt;id&gt;/</c> (spec.json, state.json, disk.qcow2, cidata.img,
/// console.log, qemu.log, qmp.sock), so a new driver over the same directory adopts running VMs (same pids).
/// <para>QEMU starts paused (<c>-S</c>); the driver moves its pid into the VM's cgroup and only then sends
/// <c>cont</c>, so no guest code runs outside the cgroup.</para>
/// <para><see cref="DisposeAsync"/> detaches: VMs keep running (an agent restart adopts them).
/// <see cref="IComputeDriver.ShutdownAllAsync"/> stops them.</para>
/// <para>Soft reboot is ACPI power-off (bounded by <see cref="QemuDriverOptions.GracefulStopTimeout"/>, then forced)
/// followed by a fresh start of the same disk and ports (the QEMU pid changes); hard reboot is <c>system_reset</c>
/// (same pid).</para>
/// </summary>
public sealed partial class QemuDriver : IComputeDriver, IVmCpuCap, ILiveMigrationDriver
{
    /// <summary>QEMU's seccomp sandbox: no obsolete calls, no set*id, no scheduler/resource changes, no fork/exec.</summary>
    internal const string Sandbox = "on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly QemuDriverOptions _options;
    private readonly ILogger _logger;
    private readonly QemuImg _qemuImg;
    private readonly ICgroupWriter? _cgroups;
    private readonly bool _cgroupsDetected;
    private readonly ConcurrentDictionary<InstanceId, QemuVm> _vms = new();
    private readonly ConcurrentDictionary<int, InstanceId> _reservedPorts = new();
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private readonly SemaphoreSlim _createGate = new(1, 1);
    private readonly string _vmsRoot;
    private bool _loaded;
    private bool _disposed;
    private int _identityLogged;
    private string _identityText = "not probed yet";

    /// <summary>Validates <paramref name="options"/> and detects cgroups; touches no VM until first use.</summary>
    public QemuDriver(QemuDriverOptions options, ILogger<QemuDriver>? logger = null, ICgroupWriter? cgroupWriter = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _qemuImg = new QemuImg(options.QemuImgBinary);
        _cgroups = cgroupWriter ?? CgroupDetector.Create(options.Cgroups, options.CgroupRoot, options.CgroupParent);
        _cgroupsDetected = cgroupWriter is null;
        _vmsRoot = Path.Combine(options.DataDirectory, "vms");
        CreatePrivateDirectory(_vmsRoot);
    }

    /// <inheritdoc />
    public string Name => "qemu";

    /// <summary>The cgroup writer in use (null when cgroups are off).</summary>
    public ICgroupWriter? Cgroups => _cgroups;

    /// <inheritdoc />
    public event Action<VmEvent>? VmChanged;

    /// <summary>"kvm" or "tcg" (probed once per QEMU binary and cached).</summary>
    public Task<string> DetectAcceleratorAsync(CancellationToken cancellationToken) => _options.Accelerator switch
    {
        AcceleratorMode.Kvm => Task.FromResult("kvm"),
        AcceleratorMode.Tcg => Task.FromResult("tcg"),
        _ => AcceleratorProbe.DetectAsync(_options.QemuBinary, _options.KvmProbeTimeout, cancellationToken),
    };

    /// <summary>Who QEMU runs as on this host: <see cref="QemuDriverOptions.QemuUser"/> when a trial launch as that user works,
    /// else root with the reason (logged as a warning once per driver). Probed once per process and configuration.</summary>
    public async Task<QemuIdentity> DetectQemuIdentityAsync(CancellationToken cancellationToken)
    {
        var accel = await DetectAcceleratorAsync(cancellationToken);
        var identity = await PrivilegeProbe.DetectAsync(_options, accel).WaitAsync(cancellationToken);
        if (Interlocked.Exchange(ref _identityLogged, 1) == 0)
        {
            _identityText = identity.ToString();
            if (identity.FallbackReason is { } reason)
            {
                LogPrivilegeFallback(_logger, _options.QemuUser ?? "", reason);
            }
            else
            {
                LogQemuIdentity(_logger, identity.User, identity.Uid, identity.DropsPrivileges);
            }
        }

        return identity;
    }

    /// <summary>Memory the cgroup allows beyond the guest's RAM, in MiB.</summary>
    public async Task<int> MemoryOverheadMibAsync(CancellationToken cancellationToken) =>
        _options.MemoryOverheadMib ?? (await DetectAcceleratorAsync(cancellationToken) == "kvm" ? 64 : _options.TcgTbSizeMib + 96);

    /// <inheritdoc />
    public async Task<HostInventory> DetectInventoryAsync(CancellationToken cancellationToken)
    {
        var accel = await DetectAcceleratorAsync(cancellationToken);
        var identity = await DetectQemuIdentityAsync(cancellationToken);
        return new HostInventory(
            Environment.ProcessorCount,
            HostProbe.MemoryMib(),
            HostProbe.DiskGib(_options.DataDirectory),
            accel,
            HostProbe.CpuModel(),
            _cgroups?.Version ?? 0)
        {
            HypervisorUser = identity.ToString(),
        };
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        var result = new List<VmStatus>();
        foreach (var vm in _vms.Values.OrderBy(v => v.Id.Value))
        {
            result.Add(await StatusOfAsync(vm, cancellationToken));
        }

        return result;
    }

    /// <inheritdoc />
    public async Task<VmStatus?> GetStatusAsync(InstanceId id, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        return _vms.TryGetValue(id, out var vm) ? await StatusOfAsync(vm, cancellationToken) : null;
    }

    /// <summary>Reads status without taking the VM's gate, so a long graceful stop never blocks status polling.</summary>
    private async Task<VmStatus> StatusOfAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        await RefreshPowerAsync(vm, cancellationToken);
        return vm.Status();
    }

    private async Task RefreshPowerAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (vm.Qmp is not { } qmp || vm.Pid is null)
        {
            return;
        }

        try
        {
            var status = await qmp.ExecuteAsync("query-status", null, cancellationToken);
            vm.Power = MapRunState(status.GetProperty("status").GetString());
        }
        catch (Exception e) when (e is IOException or TimeoutException or QmpException or ObjectDisposedException)
        {
            // Exiting or being detached: the exit handler sets the final state.
        }
    }

    private static PowerState MapRunState(string? status) => status switch
    {
        "running" => PowerState.Running,
        "paused" or "suspended" or "prelaunch" or "inmigrate" or "postmigrate" or "finish-migrate" or "save-vm" or "restore-vm" or "debug" or "colo" => PowerState.Paused,
        "shutdown" => PowerState.Shutdown,
        "internal-error" or "io-error" or "guest-panicked" or "watchdog" => PowerState.Crashed,
        _ => PowerState.NoState,
    };

    /// <inheritdoc />
    public async Task<VmStatus> CreateAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        await EnsureLoadedAsync(cancellationToken);
        ValidateSpec(spec);
        await _createGate.WaitAsync(cancellationToken);
        QemuVm? vm = null;
        try
        {
            if (_vms.TryGetValue(spec.Id, out var existing))
            {
                return await StatusOfAsync(existing, cancellationToken);
            }

            RequireNotIncoming(spec.Id);
            var dir = Path.Combine(_vmsRoot, spec.Id.ToString());
            var diskDir = DiskDirectoryFor(spec, dir);
            var forwards = ResolveForwards(spec.Id, spec.Forwards, []);
            vm = new QemuVm(spec.Id, dir, spec, forwards, diskDir) { QmpPath = QmpPathFor(spec.Id, dir) };
            CreatePrivateDirectory(dir);
            CreatePrivateDirectory(diskDir);
            await File.WriteAllTextAsync(vm.SpecPath, JsonSerializer.Serialize(spec, Json), cancellationToken);
            await PrepareDiskAsync(vm, cancellationToken);
            await ConfigDrive.BuildAsync(spec, vm.ConfigDrivePath, cancellationToken);
            await SaveStateAsync(vm, cancellationToken);
            await vm.Gate.WaitAsync(cancellationToken);
            try
            {
                await LaunchAsync(vm, cancellationToken);
                _vms[spec.Id] = vm;
            }
            finally
            {
                vm.Gate.Release();
            }

            LogCreated(_logger, spec.Id.ToString(), vm.Pid ?? 0);
            return vm.Status();
        }
        catch
        {
            if (vm is not null && !_vms.ContainsKey(spec.Id))
            {
                await RemoveEverythingAsync(vm, CancellationToken.None);
            }

            ReleasePorts(spec.Id);
            throw;
        }
        finally
        {
            _createGate.Release();
        }
    }

    private void ValidateSpec(VmSpec spec)
    {
        var errors = new List<string>();
        if (spec.Vcpus < 1) errors.Add("vcpus must be ≥ 1");
        if (spec.MaxVcpus < spec.Vcpus) errors.Add("max vcpus must be ≥ vcpus");
        if (spec.HotPlugged is { } h)
        {
            if (h.BootVcpus < 1 || h.PluggedVcpus < h.BootVcpus || h.PluggedVcpus > spec.MaxVcpus) errors.Add($"hot-plugged vCPUs must be boot ≤ plugged ≤ max vcpus ({h.BootVcpus}, {h.PluggedVcpus}, {spec.MaxVcpus})");
            if (h.BootMemoryMib < 16 || h.DimmsMib.Any(d => d < 1) || h.DimmsMib.Count > 4 || h.PluggedMemoryMib > spec.MaxMemoryMib) errors.Add($"hot-plugged memory must be ≤ 4 DIMMs within max memory ({h.PluggedMemoryMib} of {spec.MaxMemoryMib} MiB)");
        }
        if (spec.MemoryMib < 16) errors.Add("memory must be ≥ 16 MiB");
        if (spec.MaxMemoryMib < spec.MemoryMib) errors.Add("max memory must be ≥ memory");
        if (spec.DiskGib < 0) errors.Add("disk must be ≥ 0 GiB");
        if (spec.StoragePool is not (StoragePools.Local or StoragePools.Shared)) errors.Add($"storage pool '{spec.StoragePool}' is not '{StoragePools.Local}' or '{StoragePools.Shared}'");
        if (spec.ImagePath is not null && !File.Exists(spec.ImagePath)) errors.Add($"image {spec.ImagePath} not found");
        if (spec.ImagePath is not null && spec.ImageFormat is not ("qcow2" or "raw")) errors.Add("image format must be qcow2 or raw");
        if (spec.KernelPath is not null && !File.Exists(spec.KernelPath)) errors.Add($"kernel {spec.KernelPath} not found");
        if (spec.InitrdPath is not null && spec.KernelPath is null) errors.Add("an initrd needs a kernel");
        if (spec.InitrdPath is not null && !File.Exists(spec.InitrdPath)) errors.Add($"initrd {spec.InitrdPath} not found");
        foreach (var f in spec.Forwards)
        {
            if (f.HostPort is < 0 or > 65535 || f.GuestPort is < 1 or > 65535) errors.Add($"forward {f.HostPort}:{f.GuestPort} is out of range");
            if (f.Protocol is not ("tcp" or "udp")) errors.Add($"forward protocol {f.Protocol} is not tcp or udp");
        }

        if (errors.Count > 0)
        {
            throw new ComputeException("invalid_spec", string.Join("; ", errors));
        }

        ConfigDrive.Validate(spec, _options.MaxUserDataBytes);
        if (spec.StoragePool == StoragePools.Shared && _options.SharedPoolDirectory is null)
        {
            throw new ComputeException("shared_pool_unavailable", $"VM {spec.Id} asks for the shared storage pool, but this host has no SharedPoolDirectory configured");
        }
    }

    /// <summary>Where a VM's disk and config drive live: its own directory (local pool) or <c>&lt;SharedPoolDirectory&gt;/&lt;id&gt;</c>.</summary>
    private string DiskDirectoryFor(VmSpec spec, string vmDirectory) => spec.StoragePool switch
    {
        StoragePools.Local => vmDirectory,
        StoragePools.Shared => _options.SharedPoolDirectory is { } pool
            ? Path.Combine(pool, spec.Id.ToString())
            : throw new ComputeException("shared_pool_unavailable", $"VM {spec.Id} is on the shared storage pool, but this host has no SharedPoolDirectory configured"),
        _ => throw new ComputeException("invalid_spec", $"storage pool '{spec.StoragePool}' is not '{StoragePools.Local}' or '{StoragePools.Shared}'"),
    };

    /// <summary>Binds each requested host port to prove it is free (port_in_use otherwise) and picks free ports for 0.</summary>
    /// <param name="fallbackToFree">A requested port that is taken is replaced by a free one instead of failing (an incoming
    /// migration: the source may hold the same port on this machine).</param>
    private List<PortForward> ResolveForwards(InstanceId id, IReadOnlyList<PortForward> requested, IReadOnlyList<PortForward> previous, bool fallbackToFree = false)
    {
        var result = new List<PortForward>();
        try
        {
            foreach (var f in requested)
            {
                var port = f.HostPort;
                if (port == 0)
                {
                    port = previous.FirstOrDefault(p => p.GuestPort == f.GuestPort && p.Protocol == f.Protocol)?.HostPort ?? 0;
                }

                port = ProbePort(id, port, f.Protocol, !fallbackToFree && (f.HostPort != 0 || port != 0));
                result.Add(f with { HostPort = port });
            }
        }
        catch
        {
            ReleasePorts(id);
            throw;
        }

        return result;
    }

    private int ProbePort(InstanceId id, int port, string protocol, bool explicitPort)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (port != 0 && _reservedPorts.TryGetValue(port, out var owner) && owner != id)
            {
                if (explicitPort)
                {
                    throw new ComputeException("port_in_use", $"host port {port} is already forwarded to another VM");
                }

                port = 0;
                continue;
            }

            try
            {
                int bound;
                if (protocol == "udp")
                {
                    using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                    udp.Bind(new IPEndPoint(_options.ForwardBindAddress, port));
                    bound = ((IPEndPoint)udp.LocalEndPoint!).Port;
                }
                else
                {
                    using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    // As QEMU's slirp does: connections of a previous run in TIME_WAIT must not block the port.
                    tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                    tcp.Bind(new IPEndPoint(_options.ForwardBindAddress, port));
                    tcp.Listen(1);
                    bound = ((IPEndPoint)tcp.LocalEndPoint!).Port;
                }

                if (_reservedPorts.TryAdd(bound, id) || _reservedPorts[bound] == id)
                {
                    return bound;
                }

                port = 0;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
            {
                if (explicitPort)
                {
                    throw new ComputeException("port_in_use", $"host port {port} on {_options.ForwardBindAddress} is already in use");
                }

                port = 0;
            }
        }

        throw new ComputeException("port_in_use", "no free host port found");
    }

    private void ReleasePorts(InstanceId id)
    {
        foreach (var kv in _reservedPorts.Where(kv => kv.Value == id).ToList())
        {
            _reservedPorts.TryRemove(kv.Key, out _);
        }
    }

    private async Task PrepareDiskAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        var spec = vm.Spec;
        var size = spec.DiskGib * 1024L * 1024 * 1024;
        if (spec.ImagePath is not null)
        {
            var info = await _qemuImg.InfoAsync(spec.ImagePath, mayBeInUse: true, cancellationToken);
            if (!string.Equals(info.Format, spec.ImageFormat, StringComparison.Ordinal))
            {
                throw new ComputeException("image_invalid", $"image is {info.Format}, not {spec.ImageFormat}");
            }

            await _qemuImg.CreateOverlayAsync(vm.DiskPath, spec.ImagePath, info.Format, Math.Max(size, info.VirtualSizeBytes), cancellationToken);
        }
        else if (size > 0)
        {
            await _qemuImg.CreateBlankAsync(vm.DiskPath, "qcow2", size, cancellationToken);
        }
    }

    /// <summary>Starts QEMU paused, puts it into its cgroup, connects QMP, then lets the guest run. Caller holds the gate.
    /// With <paramref name="incoming"/> QEMU waits for a migration (<c>-incoming defer</c>) and nothing is resumed here.
    /// <para>QEMU gets every file as a descriptor opened here (<see cref="OpenLaunchFiles"/>) and runs as
    /// <see cref="DetectQemuIdentityAsync"/>'s identity (exec'd through setpriv, same pid).</para></summary>
    private async Task LaunchAsync(QemuVm vm, CancellationToken cancellationToken, bool incoming = false)
    {
        var accel = await DetectAcceleratorAsync(cancellationToken);
        var identity = await DetectQemuIdentityAsync(cancellationToken);
        foreach (var f in vm.Forwards)
        {
            ProbePort(vm.Id, f.HostPort, f.Protocol, explicitPort: true);
        }

        // A migration destination whose source had hot-plugged devices boots the source's boot size; PrepareIncomingAsync
        // then plugs the same vCPUs and DIMMs before the state arrives.
        vm.Live = incoming && vm.Spec.HotPlugged is { } source
            ? new LiveSize(source.BootVcpus, source.BootMemoryMib, [], source.BootVcpus)
            : new LiveSize(vm.Spec.Vcpus, vm.Spec.MemoryMib, [], vm.Spec.Vcpus);
        vm.MigrationSetup = null; // a new QEMU process starts with QEMU's defaults
        await WriteCgroupAsync(vm, cancellationToken);

        TrimLog(vm.ConsolePath);
        TrimLog(vm.LogPath);
        CreatePrivateDirectory(vm.Directory);
        if (vm.OnSharedPool)
        {
            CreatePrivateDirectory(vm.DiskDirectory);
        }

        var lowPorts = vm.Forwards.Any(f => f.HostPort < UnprivilegedPortStart());
        var argv = identity.ExecPrefix(ToolProcess.Resolve(_options.SetprivBinary), lowPorts)
            .Append(ToolProcess.Resolve(_options.QemuBinary))
            .Concat(BuildArguments(vm, accel, incoming))
            .ToList();
        ChildProcess child;
        try
        {
            using var fds = OpenLaunchFiles(vm);
            child = ChildProcess.Start(argv[0], argv, fds.Map);
        }
        catch (IOException ex)
        {
            throw new ComputeException("hypervisor_error", $"cannot start QEMU for VM {vm.Id}: {ex.Message} (is qemu-system-x86 installed?)");
        }

        vm.ExpectExit = false;
        vm.GuestShutdown = false;
        vm.Child = child;
        vm.Pid = child.Pid;
        vm.Power = PowerState.Paused;
        try
        {
            // Recorded at once: an agent that dies before `cont` leaves a prelaunch QEMU the next adoption removes.
            await SaveStateAsync(vm, cancellationToken);
            if (_cgroups is not null)
            {
                await _cgroups.AddProcessAsync(vm.CgroupName, child.Pid, cancellationToken);
            }

            QmpClient qmp;
            using (var connectCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                var connect = QmpClient.ConnectAsync(vm.QmpPath, _options.StartTimeout, _options.QmpCommandTimeout, connectCts.Token);
                await Task.WhenAny(connect, child.Exited.WaitAsync(cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                if (!connect.IsCompletedSuccessfully)
                {
                    // The socket is bound before exec, so a QEMU that dies at start resets the connection, maybe before its
                    // exit is reaped: give the exit a moment, then report QEMU's own words.
                    await Task.WhenAny(child.Exited, Task.Delay(TimeSpan.FromSeconds(2), cancellationToken));
                    if (child.Exited.IsCompleted)
                    {
                        await connectCts.CancelAsync();
                        await Task.WhenAny(connect);
                        throw StartFailure(vm);
                    }
                }

                await connectCts.CancelAsync();
                qmp = await connect;
            }

            Attach(vm, qmp, child, child.Pid);
            await SaveStateAsync(vm, cancellationToken);
            if (incoming)
            {
                return;
            }

            await qmp.ExecuteAsync("cont", null, cancellationToken);
            vm.Power = PowerState.Running;
            await SaveStateAsync(vm, cancellationToken);
            await PrepareForMigrationAsync(vm, qmp);
        }
        catch
        {
            vm.ExpectExit = true;
            await KillAsync(vm, CancellationToken.None);
            throw;
        }
    }

    /// <summary>Descriptors QEMU gets (numbers as <see cref="BuildArguments"/> names them), each opened with the access
    /// QEMU needs and no more: the overlay read-write, the base image, config drive, kernel and initrd read-only, the
    /// console and QEMU's own log append-only, and the QMP socket listening (bound here, so the socket file is root's).</summary>
    private static DescriptorSet OpenLaunchFiles(QemuVm vm)
    {
        var fds = new DescriptorSet();
        try
        {
            fds.OpenRead("/dev/null", 0);
            fds.OpenAppend(vm.LogPath, 1);
            fds.OpenAppend(vm.LogPath, 2);
            fds.ListenUnix(vm.QmpPath, Fd.Qmp);
            fds.OpenAppend(vm.ConsolePath, Fd.Console);
            if (File.Exists(vm.DiskPath))
            {
                fds.OpenReadWrite(vm.DiskPath, Fd.RootDisk);
                if (vm.Spec.ImagePath is { } image)
                {
                    var chain = BaseChain(image, vm.Spec.ImageFormat);
                    for (var i = 0; i < chain.Count; i++)
                    {
                        fds.OpenRead(chain[i].Path, Fd.Base(i));
                    }
                }
            }

            fds.OpenRead(vm.ConfigDrivePath, Fd.ConfigDrive);
            if (vm.Spec.KernelPath is { } kernel)
            {
                fds.OpenRead(kernel, Fd.Kernel);
                if (vm.Spec.InitrdPath is { } initrd)
                {
                    fds.OpenRead(initrd, Fd.Initrd);
                }
            }

            return fds;
        }
        catch
        {
            fds.Dispose();
            throw;
        }
    }

    /// <summary>The descriptor numbers QEMU's files have in the QEMU process (0–2 are stdin, stdout and stderr).</summary>
    internal static class Fd
    {
        public const int Qmp = 3;
        public const int Console = 4;
        public const int RootDisk = 5;
        public const int BaseImage = 6;

        /// <summary>Link <paramref name="level"/> of the base image's own chain (0: the base image itself; deeper links from 10).</summary>
        public static int Base(int level) => level == 0 ? BaseImage : 9 + level;
        public const int ConfigDrive = 7;
        public const int Kernel = 8;
        public const int Initrd = 9;
    }

    /// <summary>The lowest port an unprivileged process may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default).</summary>
    private static int UnprivilegedPortStart()
    {
        try
        {
            return int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_unprivileged_port_start").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return 1024;
        }
    }

    /// <summary>Creates <paramref name="path"/> (and parents) with mode 0700, or tightens an existing directory to 0700:
    /// VM directories hold guest disks and sockets that only the agent opens (QEMU gets descriptors).</summary>
    internal static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }

        const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var dir = Directory.CreateDirectory(path, OwnerOnly);
        if (dir.UnixFileMode != OwnerOnly)
        {
            dir.UnixFileMode = OwnerOnly;
        }
    }

    private async Task WriteCgroupAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (_cgroups is null)
        {
            return;
        }

        long? quota = vm.CpuCapCores is { } cores
            ? (long)Math.Round(cores * _options.CpuPeriodMicroseconds)
            : vm.Spec.CpuCapped ? (long)vm.Spec.Vcpus * _options.CpuPeriodMicroseconds : null;
        if (vm.MigrationHeadroom)
        {
            // While the VM migrates out, its QEMU is not capped: the migration thread shares the VM's cgroup,
            // and CFS throttling at period boundaries stretches the transfer and the downtime (host work,
            // seconds long, not the tenant's CPU).
            quota = null;
        }
        var overhead = await MemoryOverheadMibAsync(cancellationToken);
        await _cgroups.CreateAsync(vm.CgroupName, new CgroupLimits(quota, _options.CpuPeriodMicroseconds, (Math.Max(vm.Spec.MemoryMib, vm.Live?.PluggedMemoryMib ?? 0) + overhead) * 1024L * 1024, vm.Spec.Vcpus, Environment.ProcessorCount), cancellationToken);
    }

    /// <inheritdoc />
    public async Task SetCpuCapAsync(InstanceId id, double? cores, CancellationToken cancellationToken)
    {
        await WithVmAsync(id, async vm =>
        {
            if (cores is { } c && (c < 0.01 || c > vm.Spec.MaxVcpus))
            {
                throw new ComputeException("invalid_spec", $"CPU cap {c} must be 0.01–{vm.Spec.MaxVcpus} cores");
            }

            vm.CpuCapCores = cores;
            await SaveStateAsync(vm, cancellationToken);
            if (vm.Pid is not null)
            {
                await WriteCgroupAsync(vm, cancellationToken);
            }
        }, cancellationToken);
    }

    private ComputeException StartFailure(QemuVm vm)
    {
        var log = File.Exists(vm.LogPath) ? ReadTail(vm.LogPath, 2000) : "";
        return log.Contains("host forwarding rule", StringComparison.Ordinal) || log.Contains("Address already in use", StringComparison.Ordinal)
            ? new ComputeException("port_in_use", "QEMU could not bind a forwarded host port: " + log.Trim())
            : log.Contains("/proc/self/fd/", StringComparison.Ordinal)
                ? new ComputeException("hypervisor_error", $"QEMU could not read its kernel ({vm.Spec.KernelPath}, descriptor {Fd.Kernel}) or initrd ({vm.Spec.InitrdPath}, descriptor {Fd.Initrd}): they must be readable by QEMU's user ({_identityText}). " + log.Trim())
                : new ComputeException("hypervisor_error", "QEMU exited at start: " + log.Trim());
    }

    /// <summary>The one command line of a VM. A migration destination gets the same device model (same order, same ids) plus
    /// <c>-incoming defer</c>; only the forwarded ports differ. Every file is a descriptor (<see cref="Fd"/>): block devices
    /// and the console through fd sets (<c>-add-fd</c>, <c>/dev/fdset/N</c>, whose opaque label is the file's path, for
    /// people reading <c>ps</c>), kernel and initrd as <c>/proc/self/fd/N</c> (QEMU reads them with fopen), QMP as a
    /// listening socket. The overlay names its base explicitly (<c>backing</c>), so QEMU never opens a path from an image
    /// header.</summary>
    internal IReadOnlyList<string> BuildArguments(QemuVm vm, string accel, bool incoming = false)
    {
        var spec = vm.Spec;
        var id = spec.Id.ToString();
        var args = new List<string>
        {
            "-name", $"stratus-{id},process=stratus-{id}",
            "-uuid", id,
            "-nodefaults", "-no-user-config", "-nographic",
            "-sandbox", Sandbox,
            "-chardev", $"socket,id=qmp,fd={Fd.Qmp},server=on,wait=off", "-mon", "chardev=qmp,mode=control",
        };
        if (!incoming || !vm.OnSharedPool)
        {
            // Paused at start (resumed after the cgroup move). A local-pool migration destination stays paused after the
            // state arrived, until CompleteIncomingAsync: the source flushes its disk mirror only after QEMU's switch-over.
            // A shared-pool destination has nothing to wait for and resumes by itself (QEMU's autostart), as the source ran.
            args.Add("-S");
        }

        if (incoming)
        {
            args.AddRange(["-incoming", "defer"]);
        }

        if (accel == "kvm")
        {
            args.AddRange(["-accel", "kvm", "-cpu", "host"]);
        }
        else
        {
            args.AddRange(["-accel", $"tcg,tb-size={_options.TcgTbSizeMib}"]);
        }

        // The boot size: the spec's, or (migration destination) the source process's boot size before its hot-plugs.
        var bootVcpus = vm.Live?.BootVcpus ?? spec.Vcpus;
        var bootMemory = vm.Live?.BootMemoryMib ?? spec.MemoryMib;
        args.AddRange(["-smp", $"{bootVcpus},maxcpus={spec.MaxVcpus}"]);
        args.AddRange(["-m", spec.MaxMemoryMib > bootMemory ? $"size={bootMemory}M,slots=4,maxmem={spec.MaxMemoryMib}M" : $"size={bootMemory}M"]);
        args.AddRange([.. AddFd(Fd.Console, vm.ConsolePath), "-chardev", $"file,id=serial0,path=/dev/fdset/{Fd.Console},append=on", "-serial", "chardev:serial0"]);
        if (File.Exists(vm.DiskPath))
        {
            var backing = "null";
            if (spec.ImagePath is { } image)
            {
                // The base may itself be a chain (a server restored from incremental backups): each link is handed over
                // open and wired explicitly, deepest first, so QEMU never resolves a backing name from a header.
                var chain = BaseChain(image, spec.ImageFormat);
                for (var i = chain.Count - 1; i >= 0; i--)
                {
                    var node = i == 0 ? "base" : $"base{i}";
                    var below = i + 1 < chain.Count ? $"\"base{i + 1}-fmt\"" : "null";
                    args.AddRange([
                        .. AddFd(Fd.Base(i), chain[i].Path),
                        "-blockdev", $"driver=file,filename=/dev/fdset/{Fd.Base(i)},node-name={node}-file,read-only=on",
                        "-blockdev", chain[i].Format == "qcow2"
                            ? $"{{\"driver\":\"qcow2\",\"file\":\"{node}-file\",\"node-name\":\"{node}-fmt\",\"read-only\":true,\"backing\":{below}}}"
                            : $"driver={chain[i].Format},file={node}-file,node-name={node}-fmt,read-only=on",
                    ]);
                }

                backing = "\"base-fmt\"";
            }

            args.AddRange([
                .. AddFd(Fd.RootDisk, vm.DiskPath),
                "-blockdev", $"driver=file,filename=/dev/fdset/{Fd.RootDisk},node-name=root-file",
                "-blockdev", $"{{\"driver\":\"qcow2\",\"file\":\"root-file\",\"node-name\":\"root-fmt\",\"backing\":{backing}}}",
                "-device", "virtio-blk-pci,drive=root-fmt,id=root-disk,bootindex=1",
            ]);
        }

        args.AddRange([
            .. AddFd(Fd.ConfigDrive, vm.ConfigDrivePath),
            "-blockdev", $"driver=file,filename=/dev/fdset/{Fd.ConfigDrive},node-name=cidata-file,read-only=on",
            "-blockdev", "driver=raw,file=cidata-file,node-name=cidata-fmt,read-only=on",
            "-device", "virtio-blk-pci,drive=cidata-fmt,id=cidata-disk",
        ]);
        var netdev = "user,id=net0";
        foreach (var f in vm.Forwards)
        {
            netdev += $",hostfwd={f.Protocol}:{_options.ForwardBindAddress}:{f.HostPort}-:{f.GuestPort}";
        }

        var b = spec.Id.Value.ToByteArray();
        args.AddRange(["-netdev", netdev, "-device", $"virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:{b[13]:x2}:{b[14]:x2}:{b[15]:x2}"]);
        args.AddRange(["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0"]);
        args.AddRange(["-device", "virtio-balloon-pci,id=balloon0"]);
        if (spec.KernelPath is not null)
        {
            args.AddRange(["-kernel", $"/proc/self/fd/{Fd.Kernel}"]);
            if (spec.InitrdPath is not null)
            {
                args.AddRange(["-initrd", $"/proc/self/fd/{Fd.Initrd}"]);
            }

            if (!string.IsNullOrEmpty(spec.KernelCmdline))
            {
                args.AddRange(["-append", spec.KernelCmdline]);
            }
        }

        return args;
    }

    /// <summary><c>-add-fd</c> for descriptor <paramref name="fd"/> as fd set <paramref name="fd"/>, labelled with the file's
    /// path (commas doubled, as QEMU's option syntax wants).</summary>
    /// <summary>
    /// The base image and, when it is a qcow2 with a backing file, every link below it (read from the headers here, as the
    /// agent). A link must be a regular file inside the directory that holds the base image's directory (a restored chain
    /// lives in <c>images/restored-ID/BACKUP/</c>, its links beside each other): a header naming anything else is refused.
    /// </summary>
    internal static IReadOnlyList<(string Path, string Format)> BaseChain(string image, string? format)
    {
        var chain = new List<(string Path, string Format)> { (image, format ?? "qcow2") };
        var root = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(image))) ?? "/";
        while (chain[^1].Format == "qcow2" && chain.Count < 64)
        {
            var current = chain[^1].Path;
            if (!File.Exists(current) || Directory.Exists(current))
            {
                break;
            }
            var backing = ReadQcow2Backing(current);
            if (backing is null)
            {
                break;
            }
            var next = Path.GetFullPath(Path.IsPathRooted(backing) ? backing : Path.Combine(Path.GetDirectoryName(current)!, backing));
            var info = new FileInfo(next);
            if (!next.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !info.Exists || info.LinkTarget is not null)
            {
                throw new ComputeException("invalid_spec", $"image {Path.GetFileName(current)} names a backing file outside its own directory tree: refused");
            }
            chain.Add((next, IsQcow2(next) ? "qcow2" : "raw"));
        }
        return chain;
    }

    private static ReadOnlySpan<byte> Qcow2Magic => [0x51, 0x46, 0x49, 0xFB]; // "QFI\xfb"

    private static bool IsQcow2(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        return f.Read(magic) == 4 && magic.SequenceEqual(Qcow2Magic);
    }

    /// <summary>The backing file name in a qcow2 header (big-endian offset at byte 8, length at 16), or null.</summary>
    private static string? ReadQcow2Backing(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> header = stackalloc byte[20];
        if (f.Read(header) != 20 || !header[..4].SequenceEqual(Qcow2Magic))
        {
            return null;
        }
        var offset = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header[8..]);
        var length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header[16..]);
        if (offset == 0 || length is 0 or > 1023)
        {
            return null;
        }
        var name = new byte[length];
        f.Seek((long)offset, SeekOrigin.Begin);
        f.ReadExactly(name);
        return System.Text.Encoding.UTF8.GetString(name);
    }

    private static string[] AddFd(int fd, string path) =>
        ["-add-fd", $"fd={fd},set={fd},opaque={path.Replace(",", ",,", StringComparison.Ordinal)}"];

    /// <summary>Wires QMP events and the exit watcher for a running process (started or adopted).</summary>
    private void Attach(QemuVm vm, QmpClient? qmp, ChildProcess? child, int pid)
    {
        vm.Qmp = qmp;
        if (qmp is not null)
        {
            qmp.EventReceived += e => OnQmpEvent(vm, e);
        }

        vm.Detach = new CancellationTokenSource();
        var detach = vm.Detach.Token;
        var exit = child is not null ? child.Exited.WaitAsync(detach) : WaitForPidExitAsync(pid, detach);
        vm.Exited = Task.Run(async () =>
        {
            try
            {
                await exit;
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await OnExitedAsync(vm, pid);
        }, CancellationToken.None);
    }

    private static void OnQmpEvent(QemuVm vm, QmpEvent e)
    {
        switch (e.Name)
        {
            case "SHUTDOWN" when e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty("guest", out var g) && g.ValueKind == JsonValueKind.True:
                vm.GuestShutdown = true;
                break;
            case "STOP" when vm.Pid is not null:
                vm.Power = PowerState.Paused;
                break;
            case "RESUME" when vm.Pid is not null:
                vm.Power = PowerState.Running;
                break;
        }
    }

    private async Task OnExitedAsync(QemuVm vm, int pid)
    {
        if (vm.Pid != pid)
        {
            return;
        }

        // The exit can be seen before the QMP reader has processed the events QEMU sent last (its
        // SHUTDOWN guest=true among them); the socket closes with the process, so let the reader
        // drain to end-of-stream (bounded) before telling a guest power-off from a crash.
        if (vm.Qmp is { } draining && !vm.GuestShutdown)
        {
            await Task.WhenAny(draining.Completion, Task.Delay(TimeSpan.FromSeconds(2)));
        }
        var expected = vm.ExpectExit;
        var power = expected || vm.GuestShutdown ? PowerState.Shutdown : PowerState.Crashed;
        vm.Pid = null;
        vm.Power = power;
        vm.Child = null;
        if (vm.Qmp is { } qmp)
        {
            vm.Qmp = null;
            await qmp.DisposeAsync();
        }

        if (Directory.Exists(vm.Directory))
        {
            try
            {
                await SaveStateAsync(vm, CancellationToken.None);
            }
            catch (IOException)
            {
                // Destroy is removing the directory.
            }
        }

        if (!expected && vm.Incoming is null)
        {
            var reason = vm.GuestShutdown ? "guest powered off" : "QEMU exited unexpectedly";
            LogExited(_logger, vm.Id.ToString(), pid, reason);
            VmChanged?.Invoke(new VmEvent(vm.Id, power, reason));
        }
    }

    private static async Task WaitForPidExitAsync(int pid, CancellationToken cancellationToken)
    {
        while (ProcessAlive(pid))
        {
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>True when the pid exists and is not a zombie.</summary>
    internal static bool ProcessAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..];
            return state.Length > 0 && state[0] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>True when <paramref name="pid"/> is a live QEMU whose command line names this instance.</summary>
    internal static bool IsQemuOf(int pid, InstanceId id)
    {
        if (!ProcessAlive(pid))
        {
            return false;
        }

        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            var uuid = Array.IndexOf(cmdline, "-uuid");
            return uuid >= 0 && uuid + 1 < cmdline.Length && cmdline[uuid + 1] == id.ToString();
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task SaveStateAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        var tmp = vm.StatePath + ".tmp";
        await File.WriteAllTextAsync(tmp, JsonSerializer.Serialize(new VmStateFile(vm.Pid, vm.Power, vm.Forwards, vm.CpuCapCores, vm.Pid is null ? null : vm.Live), Json), cancellationToken);
        File.Move(tmp, vm.StatePath, overwrite: true);
    }

    /// <summary>Loads every VM directory once; adopts live QEMU processes (same pid), marks dead ones.</summary>
    private async Task EnsureLoadedAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_loaded)
        {
            return;
        }

        await _loadGate.WaitAsync(cancellationToken);
        try
        {
            if (_loaded)
            {
                return;
            }

            if (_cgroups is not null && _cgroupsDetected && _options.FavorDynamicCgroups && Environment.IsPrivilegedProcess)
            {
                var tuning = await CgroupTuning.EnsureFavorDynModsAsync("/proc/self/mountinfo", "mount", cancellationToken);
                LogCgroupTuning(_logger, tuning.Detail);
            }

            foreach (var dir in Directory.EnumerateDirectories(_vmsRoot))
            {
                if (!InstanceId.TryParse(Path.GetFileName(dir), out var id) || !File.Exists(Path.Combine(dir, "spec.json")) || !File.Exists(Path.Combine(dir, "state.json")))
                {
                    continue;
                }

                if (File.Exists(Path.Combine(dir, IncomingMarker)))
                {
                    // A migration destination, not an ordinary VM: found again by Complete/AbortIncomingAsync.
                    continue;
                }

                try
                {
                    await AdoptAsync(id, dir, cancellationToken);
                }
                catch (Exception e) when (e is IOException or JsonException or TimeoutException or QmpException or ComputeException)
                {
                    LogAdoptFailed(_logger, id.ToString(), e.Message);
                }
            }

            _loaded = true;
        }
        finally
        {
            _loadGate.Release();
        }
    }

    private async Task<QemuVm> AdoptAsync(InstanceId id, string dir, CancellationToken cancellationToken, IncomingMigration? incoming = null)
    {
        var spec = JsonSerializer.Deserialize<VmSpec>(await File.ReadAllTextAsync(Path.Combine(dir, "spec.json"), cancellationToken))!;
        var state = JsonSerializer.Deserialize<VmStateFile>(await File.ReadAllTextAsync(Path.Combine(dir, "state.json"), cancellationToken))!;
        var vm = new QemuVm(id, dir, spec, state.Forwards, DiskDirectoryFor(spec, dir))
        {
            CpuCapCores = state.CpuCapCores,
            Live = state.Live ?? new LiveSize(spec.Vcpus, spec.MemoryMib, []),
            QmpPath = QmpPathFor(id, dir),
            Incoming = incoming,
            NbdServing = incoming?.DiskTarget is not null,
        };
        foreach (var f in state.Forwards)
        {
            _reservedPorts[f.HostPort] = id;
        }

        if (state.Pid is { } pid && IsQemuOf(pid, id))
        {
            vm.Pid = pid;
            vm.Power = state.Power;
            QmpClient? qmp = null;
            try
            {
                qmp = await QmpClient.ConnectAsync(vm.QmpPath, TimeSpan.FromSeconds(5), _options.QmpCommandTimeout, cancellationToken);
            }
            catch (Exception e) when (e is IOException or TimeoutException)
            {
                // Still ours (pid and uuid match): supervise it without QMP; stop/destroy fall back to SIGKILL.
                LogAdoptFailed(_logger, id.ToString(), e.Message);
            }

            Attach(vm, qmp, null, pid);
            if (incoming is null && qmp is not null && (await qmp.ExecuteAsync("query-status", null, cancellationToken)).GetProperty("status").GetString() == "prelaunch")
            {
                // The previous agent died between exec and `cont` (maybe before the cgroup move): not a VM to keep.
                vm.ExpectExit = false;
                using (var orphan = Process.GetProcessById(pid))
                {
                    orphan.Kill();
                }

                await vm.Exited.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            }
            else
            {
                await RefreshPowerAsync(vm, cancellationToken);
                LogAdopted(_logger, id.ToString(), pid);
            }
        }
        else
        {
            // A recorded pid that is gone died while nobody watched; a crash seen before is kept.
            vm.Power = state.Pid is not null || state.Power == PowerState.Crashed ? PowerState.Crashed : PowerState.Shutdown;
            vm.Pid = null;
            await SaveStateAsync(vm, cancellationToken);
        }

        if (incoming is null)
        {
            _vms[id] = vm;
        }

        return vm;
    }

    private async Task<QemuVm> GetVmAsync(InstanceId id, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        return _vms.TryGetValue(id, out var vm) ? vm : throw new ComputeException("not_found", $"VM {id} does not exist on this host");
    }

    private async Task<VmStatus> WithVmAsync(InstanceId id, Func<QemuVm, Task> action, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        await vm.Gate.WaitAsync(cancellationToken);
        try
        {
            if (!_vms.ContainsKey(id))
            {
                throw new ComputeException("not_found", $"VM {id} does not exist on this host");
            }

            await action(vm);
            return vm.Status();
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <inheritdoc />
    public Task<VmStatus> StartAsync(InstanceId id, CancellationToken cancellationToken) =>
        WithVmAsync(id, vm => vm.Pid is null ? StartStoppedAsync(vm, cancellationToken) : Task.CompletedTask, cancellationToken);

    private async Task StartStoppedAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        await vm.Exited;
        await LaunchAsync(vm, cancellationToken);
    }

    /// <inheritdoc />
    public Task<VmStatus> StopAsync(InstanceId id, TimeSpan graceful, CancellationToken cancellationToken) =>
        WithVmAsync(id, vm => StopLockedAsync(vm, graceful, cancellationToken), cancellationToken);

    private async Task StopLockedAsync(QemuVm vm, TimeSpan graceful, CancellationToken cancellationToken)
    {
        if (vm.Pid is null)
        {
            await vm.Exited;
            return;
        }

        vm.ExpectExit = true;
        if (graceful > TimeSpan.Zero && vm.Qmp is { } qmp)
        {
            try
            {
                if (vm.Power == PowerState.Paused)
                {
                    await qmp.ExecuteAsync("cont", null, cancellationToken);
                }

                await qmp.ExecuteAsync("system_powerdown", null, cancellationToken);
                await vm.Exited.WaitAsync(graceful, cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or IOException or QmpException)
            {
                LogForcedOff(_logger, vm.Id.ToString(), graceful.TotalSeconds);
            }
        }

        await KillAsync(vm, cancellationToken);
    }

    /// <summary>Makes the current QEMU process exit (QMP quit, then SIGKILL) and waits for the exit to be handled.</summary>
    private async Task KillAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        vm.ExpectExit = true;
        var pid = vm.Pid;
        if (pid is null)
        {
            await vm.Exited;
            return;
        }

        if (!vm.Exited.IsCompleted && vm.Qmp is { } qmp)
        {
            try
            {
                await qmp.ExecuteAsync("quit", null, cancellationToken, TimeSpan.FromSeconds(2));
                await vm.Exited.WaitAsync(TimeSpan.FromSeconds(3), cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or IOException or QmpException)
            {
            }
        }

        if (vm.Child is { } child)
        {
            child.Kill();
        }
        else if (ProcessAlive(pid.Value) && IsQemuOf(pid.Value, vm.Id))
        {
            try
            {
                using var p = Process.GetProcessById(pid.Value);
                p.Kill();
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }

        if (vm.Exited.IsCompleted && vm.Pid == pid)
        {
            // No watcher attached (start failed before QMP): handle the exit here.
            if (vm.Child is { } exited)
            {
                await exited.Exited.WaitAsync(cancellationToken);
            }

            await OnExitedAsync(vm, pid.Value);
        }

        await vm.Exited.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
    }

    /// <inheritdoc />
    public Task<VmStatus> RebootAsync(InstanceId id, bool hard, CancellationToken cancellationToken) =>
        WithVmAsync(id, async vm =>
        {
            if (vm.Pid is null)
            {
                await StartStoppedAsync(vm, cancellationToken);
                return;
            }

            if (hard)
            {
                RequireProcess(vm, "reboot");
                await vm.Qmp!.ExecuteAsync("system_reset", null, cancellationToken);
                if (vm.Power == PowerState.Paused)
                {
                    await vm.Qmp.ExecuteAsync("cont", null, cancellationToken);
                }

                vm.Power = PowerState.Running;
                return;
            }

            await StopLockedAsync(vm, _options.GracefulStopTimeout, cancellationToken);
            await LaunchAsync(vm, cancellationToken);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<VmStatus> PauseAsync(InstanceId id, CancellationToken cancellationToken) =>
        WithVmAsync(id, async vm =>
        {
            RequireProcess(vm, "pause");
            await vm.Qmp!.ExecuteAsync("stop", null, cancellationToken);
            vm.Power = PowerState.Paused;
            await SaveStateAsync(vm, cancellationToken);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<VmStatus> ResumeAsync(InstanceId id, CancellationToken cancellationToken) =>
        WithVmAsync(id, async vm =>
        {
            RequireProcess(vm, "resume");
            await vm.Qmp!.ExecuteAsync("cont", null, cancellationToken);
            vm.Power = PowerState.Running;
            await SaveStateAsync(vm, cancellationToken);
        }, cancellationToken);

    private static void RequireProcess(QemuVm vm, string operation)
    {
        if (vm.Pid is null || vm.Qmp is null)
        {
            throw new ComputeException("invalid_state", $"cannot {operation} VM {vm.Id}: it is {vm.Power.ToString().ToLowerInvariant()}");
        }
    }

    /// <inheritdoc />
    public async Task DestroyAsync(InstanceId id, CancellationToken cancellationToken)
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

            await KillAsync(vm, cancellationToken);
            await RemoveEverythingAsync(vm, cancellationToken);
            _vms.TryRemove(id, out _);
            ReleasePorts(id);
            LogDestroyed(_logger, id.ToString());
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    private string QmpPathFor(InstanceId id, string dir)
    {
        var inDir = Path.Combine(dir, "qmp.sock");
        if (System.Text.Encoding.UTF8.GetByteCount(inDir) <= 107)
        {
            return inDir;
        }

        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(_options.DataDirectory)))[..12];
        var shortDir = Path.Combine(Path.GetTempPath(), "stratus-qmp-" + hash);
        CreatePrivateDirectory(shortDir);
        return Path.Combine(shortDir, id + ".sock");
    }

    /// <summary>Removes the VM's socket, cgroup and directory; the shared-pool disk directory too unless <paramref name="keepSharedDisk"/>
    /// (migration clean-up never deletes it: the VM lives on elsewhere).</summary>
    private async Task RemoveEverythingAsync(QemuVm vm, CancellationToken cancellationToken, bool keepSharedDisk = false)
    {
        File.Delete(vm.QmpPath);
        var socketDir = Path.GetDirectoryName(vm.QmpPath)!;
        if (Path.GetFileName(socketDir).StartsWith("stratus-qmp-", StringComparison.Ordinal) && !Directory.EnumerateFileSystemEntries(socketDir).Any())
        {
            Directory.Delete(socketDir);
        }

        if (_cgroups is not null)
        {
            await _cgroups.RemoveAsync(vm.CgroupName, cancellationToken);
        }

        if (Directory.Exists(vm.Directory))
        {
            Directory.Delete(vm.Directory, recursive: true);
        }

        if (vm.OnSharedPool && !keepSharedDisk && Directory.Exists(vm.DiskDirectory))
        {
            Directory.Delete(vm.DiskDirectory, recursive: true);
        }
    }

    /// <inheritdoc />
    public async Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        return File.Exists(vm.ConsolePath) ? ReadTail(vm.ConsolePath, maxBytes) : "";
    }

    /// <summary>Keeps the last 1 MiB of a log that grew past 8 MiB (called before QEMU opens it).</summary>
    private static void TrimLog(string path)
    {
        const int Keep = 1024 * 1024;
        if (File.Exists(path) && new FileInfo(path).Length > 8 * Keep)
        {
            var tail = ReadTail(path, Keep);
            File.WriteAllText(path, tail);
        }
    }

    private static string ReadTail(string path, int maxBytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var length = stream.Length;
        var take = (int)Math.Min(length, Math.Max(0, maxBytes));
        stream.Seek(length - take, SeekOrigin.Begin);
        var buffer = new byte[take];
        stream.ReadExactly(buffer);
        return System.Text.Encoding.UTF8.GetString(buffer);
    }

    /// <inheritdoc />
    public async Task ShutdownAllAsync(TimeSpan graceful, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(cancellationToken);
        await Task.WhenAll(_vms.Keys.ToList().Select(async id =>
        {
            try
            {
                await StopAsync(id, graceful, cancellationToken);
            }
            catch (ComputeException e) when (e.Code == "not_found")
            {
            }
        }));
    }

    /// <summary>The cgroup usage of a VM (CPU time and memory), or null without cgroups.</summary>
    public async Task<CgroupUsage?> ReadUsageAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(id, cancellationToken);
        return _cgroups is null ? null : await _cgroups.ReadUsageAsync(vm.CgroupName, cancellationToken);
    }

    /// <summary>Detaches from every VM without stopping it (QMP connections closed, watchers stopped).
    /// A new driver over the same data directory adopts them.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var vm in _incoming.Values.Where(v => v.IncomingStart is not null))
        {
            // A pipelined destination still starting or waiting for its source: stop waiting (its QEMU, if it runs, stays).
            await vm.IncomingStart!.CancelAsync();
            if (await vm.Gate.WaitAsync(TimeSpan.FromSeconds(30)))
            {
                vm.Gate.Release();
            }
        }

        foreach (var vm in _vms.Values.Concat(_incoming.Values))
        {
            if (vm.Detach is { } d)
            {
                await d.CancelAsync();
            }

            if (vm.Qmp is { } qmp)
            {
                vm.Qmp = null;
                await qmp.DisposeAsync();
            }
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "VM {InstanceId} created, QEMU pid {Pid}")]
    private static partial void LogCreated(ILogger logger, string instanceId, int pid);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "VM {InstanceId} adopted, QEMU pid {Pid}")]
    private static partial void LogAdopted(ILogger logger, string instanceId, int pid);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "VM {InstanceId} could not be adopted: {Reason}")]
    private static partial void LogAdoptFailed(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "VM {InstanceId} QEMU pid {Pid} exited: {Reason}")]
    private static partial void LogExited(ILogger logger, string instanceId, int pid, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "VM {InstanceId} did not power off within {Seconds} s; forcing it off")]
    private static partial void LogForcedOff(ILogger logger, string instanceId, double seconds);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Information, Message = "VM {InstanceId} destroyed")]
    private static partial void LogDestroyed(ILogger logger, string instanceId);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "QEMU runs as root on this host: it could not run as user {QemuUser}: {Reason}")]
    private static partial void LogPrivilegeFallback(ILogger logger, string qemuUser, string reason);

    [LoggerMessage(EventId = 4040, Level = LogLevel.Information, Message = "cgroups: {Detail}")]
    private static partial void LogCgroupTuning(ILogger logger, string detail);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Information, Message = "QEMU runs as {QemuUser} (uid {Uid}, privileges dropped: {Drops})")]
    private static partial void LogQemuIdentity(ILogger logger, string qemuUser, int uid, bool drops);
}
