using System.Globalization;
using Microsoft.Extensions.Logging;
using Stratus.Agent;
using Stratus.Compute;
using Stratus.Compute.Qemu;
using Stratus.Compute.Simulated;

// stratus-agent: one per physical host. Dials the controller's agent endpoint, registers the host
// and converges its VMs to the desired state it receives. See AgentProgramOptions for the flags.
var o = AgentProgramOptions.Parse(args, out var errors);
if (errors.Count > 0)
{
    foreach (var e in errors)
    {
        Console.Error.WriteLine($"stratus-agent: {e}");
    }
    Console.Error.WriteLine(AgentProgramOptions.Usage);
    return 2;
}
using var loggers = LoggerFactory.Create(b => b
    .AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss.fff "; })
    .SetMinimumLevel(LogLevel.Information)
    .AddFilter("Grpc", LogLevel.Warning)
    .AddFilter("System.Net.Http", LogLevel.Warning));
var log = loggers.CreateLogger("stratus-agent");
Directory.CreateDirectory(o.DataDir);
var pidFile = Path.Combine(o.DataDir, "agent.pid");
File.WriteAllText(pidFile, $"{Environment.ProcessId}\n");

using var stop = new CancellationTokenSource();
using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var intr = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

var tokens = o.LoadTokens();
using var channel = GrpcControllerClient.CreateChannel(o.Controller, o.CaCert);
var hosts = new List<(AgentRuntime Agent, GrpcControllerClient Client, IComputeDriver Driver)>();
try
{
    var names = o.Hollow > 0 ? Enumerable.Range(1, o.Hollow).Select(i => $"{o.Name}-{i}").ToList() : [o.Name];
    foreach (var (name, index) in names.Select((n, i) => (n, i)))
    {
        if (!tokens.TryGetValue(name, out var token) && !tokens.TryGetValue("*", out token))
        {
            Console.Error.WriteLine($"stratus-agent: no token for host '{name}' (--token, --token-file or STRATUS_AGENT_TOKEN; `stratus host token {name}` issues one)");
            return 2;
        }
        var dir = o.Hollow > 0 ? Path.Combine(o.DataDir, "hollow", name) : o.DataDir;
        IComputeDriver driver = o.Driver switch
        {
            "simulated" => new SimulatedDriver(new SimulatedDriverOptions { StateDirectory = Path.Combine(dir, "simulated"), DelayScale = o.SimDelayScale, Seed = index + 1 }),
            _ => new QemuDriver(new QemuDriverOptions
            {
                DataDirectory = Path.Combine(dir, "qemu"),
                SharedPoolDirectory = o.SharedPool,
                // Hosts sharing one machine (tests, demos) need their own cgroup subtree: a VM's cgroup is named after its id.
                CgroupParent = "stratus-" + name,
            }, loggers.CreateLogger<QemuDriver>()),
        };
        var client = new GrpcControllerClient(channel, token, loggers.CreateLogger($"Stratus.Agent.{name}"))
        {
            // With a shared pool the agent holds HA leases (6 s): after a controller restart it must be back well within one.
            MaxBackoff = o.SharedPool is null ? TimeSpan.FromSeconds(10) : TimeSpan.FromSeconds(2),
        };
        var agent = new AgentRuntime(new AgentOptions
        {
            HostName = name,
            StateDirectory = dir,
            HeartbeatInterval = o.Heartbeat,
            StoragePools = o.SharedPool is null ? ["local"] : ["local", "shared"],
            SharedPoolDirectory = o.SharedPool,
        }, driver, client, loggers.CreateLogger($"Stratus.Agent.{name}"));
        client.Bind(agent);
        hosts.Add((agent, client, driver));
    }
    // Registration waits for the controller (reconnecting with backoff), so start every host at once.
    await Task.WhenAll(hosts.Select(h => h.Agent.StartAsync(stop.Token)));
    log.LogInformation("stratus-agent {Pid}: {Count} host(s) connected to {Controller}", Environment.ProcessId, hosts.Count, o.Controller);
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
}
catch (Stratus.Protocol.AgentRequestException e)
{
    Console.Error.WriteLine($"stratus-agent: {e.Message}");
    return 1;
}
finally
{
    // Disconnect first, so stopping VMs (when asked to) is never mistaken for guests shutting down.
    foreach (var (_, client, _) in hosts)
    {
        await client.DisposeAsync();
    }
    foreach (var (agent, _, driver) in hosts)
    {
        await agent.DisposeAsync();
        if (o.StopVmsOnExit)
        {
            await driver.ShutdownAllAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        }
        await driver.DisposeAsync();
    }
    File.Delete(pidFile);
}
return 0;

namespace Stratus.Agent
{
    /// <summary>stratus-agent's command line.</summary>
    public sealed class AgentProgramOptions
    {
        public const string Usage = """
            usage: stratus-agent --controller URL --data-dir DIR [options]
              --controller URL      the controller's agent endpoint: http://HOST:PORT or unix:/path/agent.sock
              --data-dir DIR        this agent's state (VM directories, applied reboots, pid file)
              --name NAME           host name (default: this machine's host name)
              --token T             the host's agent token (else --token-file, STRATUS_AGENT_TOKEN or DIR/token)
              --token-file F        a file with the token, or with lines "HOST TOKEN" (hollow hosts)
              --driver D            qemu (default) or simulated
              --shared-pool DIR     the shared storage pool (a directory every host reaches)
              --heartbeat SECONDS   report interval (default 1)
              --hollow N            register N simulated hosts NAME-1..NAME-N from this one process
              --sim-delay-scale X   simulated driver delays (default 1)
              --stop-vms-on-exit    stop this host's VMs when the agent is stopped (used by `stratus down`)
            """;

        public string Controller { get; set; } = "";

        public string DataDir { get; set; } = "";

        public string Name { get; set; } = Environment.MachineName;

        public string? Token { get; set; }

        public string? TokenFile { get; set; }

        /// <summary>PEM CA (or the controller's own certificate) to trust for an https controller.</summary>
        public string? CaCert { get; set; }

        public string Driver { get; set; } = "qemu";

        public string? SharedPool { get; set; }

        public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(1);

        public int Hollow { get; set; }

        public double SimDelayScale { get; set; } = 1.0;

        public bool StopVmsOnExit { get; set; }

        public static AgentProgramOptions Parse(string[] args, out List<string> errors)
        {
            errors = [];
            var o = new AgentProgramOptions();
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                try
                {
                    switch (args[i])
                    {
                        case "--controller": o.Controller = Next(); break;
                        case "--data-dir": o.DataDir = Path.GetFullPath(Next()); break;
                        case "--name": o.Name = Next(); break;
                        case "--token": o.Token = Next(); break;
                        case "--token-file": o.TokenFile = Path.GetFullPath(Next()); break;
                        case "--ca-cert": o.CaCert = Path.GetFullPath(Next()); break;
                        case "--driver": o.Driver = Next(); break;
                        case "--shared-pool": o.SharedPool = Path.GetFullPath(Next()); break;
                        case "--heartbeat": o.Heartbeat = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)); break;
                        case "--hollow": o.Hollow = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                        case "--sim-delay-scale": o.SimDelayScale = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                        case "--stop-vms-on-exit": o.StopVmsOnExit = true; break;
                        case "-h" or "--help": errors.Add("help"); break;
                        default: errors.Add($"unknown argument '{args[i]}'"); break;
                    }
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
                {
                    errors.Add(e is ArgumentException ? e.Message : $"{args[i - 1]}: '{args[i]}' is not a number");
                }
            }
            if (o.Controller.Length == 0 || !(o.Controller.StartsWith("http://", StringComparison.Ordinal) || o.Controller.StartsWith("https://", StringComparison.Ordinal) || o.Controller.StartsWith("unix:/", StringComparison.Ordinal)))
            {
                errors.Add("--controller must be http://HOST:PORT, https://HOST:PORT or unix:/path");
            }
            if (o.DataDir.Length == 0)
            {
                errors.Add("--data-dir is required");
            }
            if (o.Driver is not ("qemu" or "simulated"))
            {
                errors.Add($"--driver must be qemu or simulated (got '{o.Driver}')");
            }
            if (o.Hollow is < 0 or > 5000)
            {
                errors.Add("--hollow must be between 0 and 5000");
            }
            if (o.Hollow > 0 && o.Driver != "simulated")
            {
                errors.Add("--hollow needs --driver simulated");
            }
            if (o.Heartbeat < TimeSpan.FromMilliseconds(50) || o.Heartbeat > TimeSpan.FromSeconds(60))
            {
                errors.Add("--heartbeat must be between 0.05 and 60 seconds");
            }
            return o;
        }

        /// <summary>Tokens by host name ("*" = any host of this process).</summary>
        public Dictionary<string, string> LoadTokens()
        {
            var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
            var file = TokenFile ?? (File.Exists(Path.Combine(DataDir, "token")) ? Path.Combine(DataDir, "token") : null);
            if ((Token ?? Environment.GetEnvironmentVariable("STRATUS_AGENT_TOKEN")) is { Length: > 0 } single)
            {
                tokens["*"] = single;
            }
            else if (file is not null)
            {
                foreach (var line in File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')))
                {
                    var parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (parts.Length == 2)
                    {
                        tokens[parts[0]] = parts[1];
                    }
                    else
                    {
                        tokens["*"] = parts[0];
                    }
                }
            }
            return tokens;
        }
    }
}
