using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Stratus.Api;
using Stratus.Controller;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Scheduler.Framework;
using Stratus.Storage;
using Stratus.Storage.Sqlite;

var options = StratusdArgs.Parse(args, out var argErrors);
if (argErrors.Count > 0)
{
    foreach (var e in argErrors)
    {
        Console.Error.WriteLine($"stratusd: {e}");
    }
    return 2;
}
var app = StratusApp.Build(options, builder => { });
await app.RunAsync();
return 0;

namespace Stratus.Api
{
    /// <summary>Parses stratusd's command line: --data-dir D --port N --driver simulated|qemu --hosts N --listen ADDR --metrics-interval SECONDS
    /// --consolidation [--consolidation-interval SECONDS --consolidation-policy NAME --standby-grace SECONDS --power-driver noop|simulated] [--scaling-interval SECONDS]
    /// --shared-pool DIR [--ha-tolerate N --fence-command CMD --fence-timeout SECONDS --fence-retry SECONDS].</summary>
    public static class StratusdArgs
    {
        public static StratusdOptions Parse(string[] args, out List<string> errors)
        {
            errors = [];
            var o = new StratusdOptions();
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                try
                {
                    switch (args[i])
                    {
                        case "--data-dir": o.DataDir = Path.GetFullPath(Next()); break;
                        case "--port": o.Port = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--listen": o.Listen = Next(); break;
                        case "--driver": o.Driver = Next(); break;
                        case "--hosts": o.Hosts = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--sim-delay-scale": o.SimDelayScale = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--tiny-image": o.TinyImagePath = Path.GetFullPath(Next()); break;
                        case "--metrics-interval": o.MetricsInterval = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--no-bootstrap": o.BootstrapDefaults = false; break;
                        case "--agent-port": o.AgentPort = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--no-agent-socket": o.AgentSocket = false; break;
                        case "--expect-hosts": o.ExpectRemoteHosts = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--shared-pool": o.SharedPool = Path.GetFullPath(Next()); break;
                        case "--ha-suspect-after": o.HaSuspectAfter = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--ha-storage-timeout": o.HaStorageTimeout = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--ha-lease": o.HaLease = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--ha-hold-recovery": o.HaHoldRecovery = ParseHolds(Next()); break;
                        case "--ha-tolerate": o.HaTolerate = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--fence-command": o.FenceCommand = Next(); break;
                        case "--fence-timeout": o.FenceTimeout = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--fence-retry": o.FenceRetry = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                        case "--backup-dir": o.BackupDir = Path.GetFullPath(Next()); break;
                        case "--backup-keep": o.BackupKeep = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--rate-limit": o.RateLimit = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--rate-burst": o.RateBurst = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--tls-cert": o.TlsCert = Path.GetFullPath(Next()); break;
                        case "--tls-key": o.TlsKey = Path.GetFullPath(Next()); break;
                        case "--session-hours": o.Identity = new Controller.Identity.IdentityOptions { SessionLifetime = TimeSpan.FromHours(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)) }; break;
                        case "--backup-full-every": o.BackupFullEvery = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                        case "--consolidation": o.Consolidation = o.Consolidation with { Enabled = true }; break;
                        case "--consolidation-interval": o.Consolidation = o.Consolidation with { Interval = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)) }; break;
                        case "--consolidation-policy": o.Consolidation = o.Consolidation with { Policy = Next() }; break;
                        case "--standby-grace": o.Consolidation = o.Consolidation with { StandbyGrace = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)) }; break;
                        case "--power-driver": o.Consolidation = o.Consolidation with { PowerDriver = Next() }; break;
                        case "--scaling-interval": o.Scaling = o.Scaling with { CheckInterval = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)) }; break;
                        default: errors.Add($"unknown argument '{args[i]}'"); break;
                    }
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
                {
                    errors.Add(e is ArgumentException ? e.Message : $"{args[i - 1]}: '{args[i]}' is not a number");
                }
            }
            errors.AddRange(o.Validate());
            return o;
        }

        /// <summary>NAME=PHASE[,NAME=PHASE…] (test fault injection).</summary>
        private static Dictionary<string, string> ParseHolds(string value)
        {
            var holds = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var parts = pair.Split('=', 2);
                if (parts.Length != 2 || parts[0].Length == 0)
                {
                    throw new ArgumentException($"--ha-hold-recovery: '{pair}' is not NAME=PHASE");
                }
                holds[parts[0]] = parts[1];
            }
            return holds;
        }
    }

    /// <summary>Builds the controller: store, workflows, embedded agents and the /v1 API.</summary>
    public static class StratusApp
    {
        public static WebApplication Build(StratusdOptions options, Action<WebApplicationBuilder> configure)
        {
            Directory.CreateDirectory(options.DataDir);
            var builder = WebApplication.CreateSlimBuilder();
            var endpoints = new ListenEndpoints();
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = Http.MaxJsonBody;
                // Agents: one long-lived stream each, many per connection for hollow agents; pings find dead peers.
                k.Limits.Http2.MaxStreamsPerConnection = 8192;
                k.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(5);
                k.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(10);
                var address = options.Listen is "localhost" ? System.Net.IPAddress.Loopback : System.Net.IPAddress.Parse(options.Listen);
                var cert = Hardening.Certificate(options);
                k.Listen(address, options.Port, l =>
                {
                    endpoints.Api = l;
                    if (cert is not null)
                    {
                        l.UseHttps(cert);
                    }
                });
                if (options.AgentPort is not { } agentPort || agentPort > 0 || options.Port == 0)
                {
                    var port = options.AgentPort ?? (options.Port == 0 ? 0 : options.Port + 1);
                    k.Listen(address, port, l =>
                    {
                        l.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2;
                        endpoints.Agent = l;
                        if (cert is not null)
                        {
                            l.UseHttps(cert);
                        }
                    });
                }
                if (options.AgentSocket)
                {
                    var sock = Path.Combine(options.DataDir, "agent.sock");
                    File.Delete(sock);
                    k.ListenUnixSocket(sock, l => l.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
                    endpoints.AgentSocket = sock;
                }
            });
            endpoints.Scheme = options.TlsCert is null ? "http" : "https";
            builder.Services.AddSingleton(endpoints);
            builder.Services.AddGrpc(g =>
            {
                g.MaxReceiveMessageSize = 16 * 1024 * 1024;
                g.IgnoreUnknownServices = true; // no catch-all gRPC routes: they would turn the REST API's 405s into 404s
            });
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss.fff "; });
            builder.Logging.SetMinimumLevel(LogLevel.Information);
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(25));
            builder.Services.AddProblemDetails();
            builder.Services.AddOpenApi("v1");
            builder.Services.AddSingleton(options);
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton(new ControllerOptions
            {
                ExpectedHosts = options.Hosts + options.ExpectRemoteHosts,
                DefaultStoragePool = options.SharedPool is null ? "local" : "shared",
                HasSharedPool = options.SharedPool is not null,
            });
            builder.Services.AddSingleton<AgentTokens>();
            builder.Services.AddSingleton(options.Identity);
            builder.Services.AddSingleton<Controller.Identity.IdentityService>();
            builder.Services.AddSingleton<Controller.Identity.QuotaGate>();
            builder.Services.AddSingleton<Controller.Identity.AuditLog>();
            Hardening.AddRateLimits(builder.Services, options);
            builder.Services.AddSingleton<Migrator>();
            builder.Services.AddSingleton<Controller.Resize.Resizer>();
            builder.Services.AddSingleton(new HaOptions
            {
                SharedPool = options.SharedPool,
                SuspectAfter = options.HaSuspectAfter,
                StorageTimeout = options.HaStorageTimeout,
                HoldRecovery = options.HaHoldRecovery,
                Tolerate = options.HaTolerate,
                FenceCommand = options.FenceCommand,
                FenceTimeout = options.FenceTimeout,
                FenceRetry = options.FenceRetry,
            });
            builder.Services.AddSingleton<HaAdmission>();
            if (options.FenceCommand is not null)
            {
                builder.Services.AddSingleton<IHostFence, CommandFence>();
            }
            builder.Services.AddSingleton<IDiskLockProbe, QemuImgLockProbe>();
            builder.Services.AddSingleton<HaMonitor>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<HaMonitor>());
            builder.Services.AddSingleton(new DataProtectionOptions
            {
                BackupDirectory = options.BackupDir ?? Path.Combine(options.DataDir, "backups"),
                ImageDirectory = Path.Combine(options.DataDir, "images"),
                DefaultKeep = options.BackupKeep,
                DefaultFullEvery = options.BackupFullEvery,
            });
            builder.Services.AddSingleton<DataProtection>();
            builder.Services.AddSingleton<IStateStore>(_ =>
            {
                var store = new SqliteStateStore(Path.Combine(options.DataDir, "stratus.db"));
                store.MigrateAsync(CancellationToken.None).GetAwaiter().GetResult();
                return store;
            });
            builder.Services.AddSingleton<ReconcileSignal>();
            builder.Services.AddSingleton<Stratus.Controller.Billing.IProjectCatalog, Stratus.Controller.Billing.StoreProjectCatalog>();
            builder.Services.AddSingleton<Stratus.Controller.Billing.BillingService>();
            builder.Services.AddSingleton<CloudService>();
            builder.Services.AddSingleton<InventoryService>();
            builder.Services.AddSingleton<IImageInspector, QemuImageInspector>();
            builder.Services.AddSingleton(sp => new ImageStore(sp.GetRequiredService<IStateStore>(), sp.GetRequiredService<IImageInspector>(),
                sp.GetRequiredService<TimeProvider>(), Path.Combine(options.DataDir, "images")));
            builder.Services.AddSingleton(options.Metrics);
            builder.Services.AddSingleton<MetricsService>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<MetricsService>());
            builder.Services.AddSingleton(sp =>
            {
                var hub = ActivatorUtilities.CreateInstance<AgentHub>(sp);
                hub.LeasePeriod = options.HaLease;
                return hub;
            });
            builder.Services.AddSingleton<IPlacementEngine, SpreadPlacementEngine>();
            builder.Services.AddSingleton<Reconciler>();
            builder.Services.AddHostedService<PidFile>();
            builder.Services.AddHostedService<Bootstrap>();
            builder.Services.AddHostedService<MigrationRecovery>();
            builder.Services.AddHostedService<Stratus.Controller.Billing.MeteringReconciliation>();
            builder.Services.AddSingleton<EmbeddedAgents>();
            // Agents stop after the reconciler (hosted services stop in reverse order).
            builder.Services.AddHostedService(sp => sp.GetRequiredService<EmbeddedAgents>());
            builder.Services.AddHostedService(sp => sp.GetRequiredService<Reconciler>());
            AddConsolidation(builder.Services, options.Consolidation);
            builder.Services.AddSingleton(options.Scaling);
            builder.Services.AddSingleton<Controller.Scaling.ScalingSignal>();
            builder.Services.AddSingleton<Controller.Scaling.IHealthProbe, Controller.Scaling.HttpHealthProbe>();
            builder.Services.AddSingleton<Controller.Scaling.ScalingService>();
            builder.Services.AddSingleton<Controller.Scaling.ScalingLoop>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<Controller.Scaling.ScalingLoop>());
            configure(builder);

            var app = builder.Build();
            app.UseExceptionHandler(e => e.Run(async ctx =>
            {
                var ex = ctx.Features.Get<IExceptionHandlerFeature>()?.Error;
                var (status, code, title) = ex is BadHttpRequestException bad
                    ? (bad.StatusCode, bad.StatusCode == 413 ? "body_too_large" : "bad_request", "Bad request")
                    : (500, "internal_error", "Internal error");
                ctx.Response.StatusCode = status;
                ctx.Response.ContentType = "application/problem+json";
                await JsonSerializer.SerializeAsync(ctx.Response.Body,
                    new ProblemDto($"https://stratus.dev/errors/{code}", title, status, status == 500 ? "see the controller log" : ex?.Message, code, null, ctx.Request.Path),
                    WireJson.Options);
            }));
            app.UseStatusCodePages(async sc =>
            {
                var ctx = sc.HttpContext;
                if (ctx.Response.HasStarted || ctx.Response.ContentLength > 0)
                {
                    return;
                }
                var status = ctx.Response.StatusCode;
                var code = status switch { 404 => "not_found", 405 => "method_not_allowed", 415 => "unsupported_media_type", _ => "http_" + status };
                ctx.Response.ContentType = "application/problem+json";
                await JsonSerializer.SerializeAsync(ctx.Response.Body,
                    new ProblemDto($"https://stratus.dev/errors/{code}", code.Replace('_', ' '), status, $"{ctx.Request.Method} {ctx.Request.Path}", code, null, ctx.Request.Path),
                    WireJson.Options);
            });
            app.Use(Hardening.SecurityHeaders(options));
            app.UseRouting();
            app.UseMiddleware<AuditMiddleware>();
            app.UseMiddleware<AccessMiddleware>();
            if (options.RateLimit > 0)
            {
                app.UseRateLimiter();
            }
            app.UseMiddleware<ScopeMiddleware>();
            app.MapOpenApi("/v1/openapi.json");
            app.MapGrpcService<AgentChannelService>();
            Endpoints.Map(app);
            return app;
        }

        /// <summary>Consolidation: power driver, standby and wake (always on, so standby hosts can be woken), executor, energy report and the loop (idle unless enabled).</summary>
        private static void AddConsolidation(IServiceCollection services, Controller.Consolidation.ConsolidationOptions options)
        {
            services.AddSingleton(options);
            services.AddSingleton<Controller.Consolidation.IPowerDriver>(sp => options.PowerDriver == "simulated"
                ? new Controller.Consolidation.SimulatedPowerDriver(sp.GetRequiredService<TimeProvider>())
                : new Controller.Consolidation.NoopPowerDriver());
            services.AddSingleton<Controller.Consolidation.PowerManager>();
            services.AddSingleton<Controller.Consolidation.ICapacityWaker>(sp => sp.GetRequiredService<Controller.Consolidation.PowerManager>());
            services.AddSingleton<Controller.Consolidation.IMigrationStarter, Controller.Consolidation.MigratorStarter>();
            services.AddSingleton<Controller.Consolidation.PlanExecutor>();
            services.AddSingleton<Controller.Consolidation.EnergyReporter>();
            services.AddSingleton<Controller.Consolidation.ConsolidationLoop>();
            services.AddHostedService(sp => sp.GetRequiredService<Controller.Consolidation.ConsolidationLoop>());
        }
    }

    /// <summary>Where the controller listens: the REST API, the agents' gRPC port and unix socket (filled once Kestrel binds).</summary>
    public sealed class ListenEndpoints
    {
        internal Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? Api { get; set; }

        internal Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? Agent { get; set; }

        public string? AgentSocket { get; internal set; }

        /// <summary>The REST API's base URL, e.g. http://127.0.0.1:7300.</summary>
        public string ApiUrl => Api?.IPEndPoint is { } ep ? $"{Scheme}://{ep}" : "";

        /// <summary>https when the controller was given a certificate.</summary>
        public string Scheme { get; internal set; } = "http";

        /// <summary>The agents' gRPC endpoint, e.g. http://127.0.0.1:7301 (null when disabled).</summary>
        public string? AgentUrl => Agent?.IPEndPoint is { } ep ? $"{Scheme}://{ep}" : null;
    }

    /// <summary>At start-up, rolls back migrations a previous controller process left unfinished.</summary>
    public sealed class MigrationRecovery(Migrator migrator) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => migrator.RecoverAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Writes DATA_DIR/stratusd.pid while the controller runs, so `stratus down` finds it.</summary>
    public sealed class PidFile(StratusdOptions options) : IHostedService
    {
        private string PathName => System.IO.Path.Combine(options.DataDir, "stratusd.pid");

        public Task StartAsync(CancellationToken cancellationToken) =>
            File.WriteAllTextAsync(PathName, $"{Environment.ProcessId}\n", cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken)
        {
            File.Delete(PathName);
            return Task.CompletedTask;
        }
    }
}
