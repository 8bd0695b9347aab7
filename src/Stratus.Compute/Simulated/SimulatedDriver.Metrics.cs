using System.Text.Json;
using Stratus.Core.Compute;

namespace Stratus.Compute.Simulated;

// Synthetic resource use, so the metrics pipeline, consolidation and autoscaling can be exercised without guests.
public sealed partial class SimulatedDriver
{
    private readonly Lock _loadLock = new();
    private (DateTime Written, long Length) _loadStamp;
    private Dictionary<string, double> _load = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// <c>load.json</c> in the state directory: a JSON object mapping a VM's id or name to the CPU percent (0–100) it
    /// should report, e.g. <c>{"web-1": 90, "3f2504e0-…": 5}</c>. Re-read whenever the file changes; VMs it does not
    /// name keep their synthetic load; an unreadable file counts as empty. Tests use it to skew load across hosts.
    /// </summary>
    public string LoadFile => Path.Combine(_options.StateDirectory, "load.json");

    /// <summary>
    /// Samples every running or paused VM (paused: no CPU). A VM's CPU % is its <see cref="LoadFile"/> entry, else
    /// a seeded function of its id and the time (a per-VM base of 5–45 %, a ten-minute wave of ±10 % and ±3 % noise
    /// per second), the same on every run with the same seed and clock. Memory is half the VM's RAM plus up to 30 %
    /// more with load; disk and network rates follow the CPU load. The host's CPU % is the sum of its VMs' use over
    /// its cores.
    /// </summary>
    public Task<HostSample> SampleAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var overrides = ReadLoad();
        var seconds = now.ToUnixTimeMilliseconds() / 1000.0;
        var vms = new List<VmSample>();
        double coresUsed = 0;
        long memory = 0;
        long disk = 0;
        foreach (var vm in _vms.Values.OrderBy(v => v.Id.Value))
        {
            disk += vm.DiskGib;
            if (vm.Power is not (PowerState.Running or PowerState.Paused))
            {
                continue;
            }
            var cpu = vm.Power == PowerState.Paused ? 0 : overrides.TryGetValue(vm.Id.ToString(), out var byId) ? byId
                : overrides.TryGetValue(vm.Name, out var byName) ? byName : Synthetic(vm, seconds);
            var mem = (long)(vm.MemoryMib * (0.5 + 0.3 * cpu / 100));
            var rate = (long)(cpu * 1000);
            vms.Add(new VmSample(vm.Id, cpu, mem, rate * 40, rate * 20, rate * 10, rate * 5));
            coresUsed += cpu / 100 * vm.Vcpus;
            memory += mem;
        }
        var hostCpu = Math.Min(100, coresUsed / _options.Cores * 100);
        return Task.FromResult(new HostSample(now, hostCpu, memory, disk, vms));
    }

    private double Synthetic(SimVm vm, double seconds)
    {
        var bytes = vm.Id.Value.ToByteArray();
        var key = Mix((ulong)_options.Seed ^ BitConverter.ToUInt64(bytes, 0) ^ Mix(BitConverter.ToUInt64(bytes, 8)));
        var baseLoad = 5 + (key % 4001) / 100.0;
        var phase = (key >> 20) % 628 / 100.0;
        var wave = 10 * Math.Sin((2 * Math.PI * seconds / 600) + phase);
        var noise = (Mix(key ^ (ulong)(long)Math.Floor(seconds)) % 601 / 100.0) - 3;
        return Math.Clamp(baseLoad + wave + noise, 0, 100);
    }

    /// <summary>SplitMix64's finaliser: a stable, well-spread hash (string.GetHashCode differs per process).</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private Dictionary<string, double> ReadLoad()
    {
        var file = new FileInfo(LoadFile);
        var stamp = file.Exists ? (file.LastWriteTimeUtc, file.Length) : default;
        lock (_loadLock)
        {
            if (stamp == _loadStamp)
            {
                return _load;
            }
            var load = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
            if (file.Exists)
            {
                try
                {
                    foreach (var (k, v) in JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(LoadFile)) ?? [])
                    {
                        load[k] = double.IsFinite(v) ? Math.Clamp(v, 0, 100) : 0;
                    }
                }
                catch (Exception e) when (e is JsonException or IOException)
                {
                    // Half-written or malformed: treat as empty and read again when it changes.
                }
            }
            _loadStamp = stamp;
            _load = load;
            return load;
        }
    }
}
