using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Threading.Channels;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Stratus.Core.Ids;
using Stratus.Protocol;
using AgentChannel = Stratus.Protocol.V1.AgentChannel;
using AgentMessage = Stratus.Protocol.V1.AgentMessage;
using ControllerMessage = Stratus.Protocol.V1.ControllerMessage;
using Reply = Stratus.Protocol.V1.Reply;
using Request = Stratus.Protocol.V1.Request;

namespace Stratus.Agent;

/// <summary>
/// An agent's connection to the controller over gRPC: dials the controller's agent endpoint
/// (<c>http://HOST:PORT</c> or <c>unix:/path/agent.sock</c>), says Hello with the per-host token,
/// then relays reports up and desired state and requests down. When the stream breaks it
/// reconnects with backoff (250 ms doubling to <see cref="MaxBackoff"/>, with jitter); VMs keep running meanwhile and
/// reports are dropped (they are level-triggered: the next one after reconnecting says it all).
/// Several agents (hollow hosts) may share one <see cref="GrpcChannel"/>: each has its own stream.
/// </summary>
public sealed partial class GrpcControllerClient : IControllerEndpoint, IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly bool _ownsChannel;
    private readonly string _token;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<(HostId, long)> _welcomed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<InstanceId, CancellationTokenSource> _migrations = new();
    private IAgentSession? _session;
    private HostRegistration? _registration;
    private Channel<AgentMessage>? _outbox;
    private Task? _loop;
    private CancellationTokenSource? _conn;
    private int _connections;

    public GrpcControllerClient(string controller, string token, ILogger logger)
        : this(CreateChannel(controller), token, logger, ownsChannel: true)
    {
    }

    public GrpcControllerClient(GrpcChannel channel, string token, ILogger logger, bool ownsChannel = false)
    {
        _channel = channel;
        _ownsChannel = ownsChannel;
        _token = token;
        _log = logger;
    }

    /// <summary>The longest wait between two connection attempts (plus up to half of it as jitter). Default 10 s; an agent
    /// holding HA leases uses less, so a controller that restarts finds it back well within one lease.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times the stream was established (1 + reconnects).</summary>
    public int Connections => Volatile.Read(ref _connections);

    public bool Connected => Volatile.Read(ref _outbox) is not null;

    /// <summary>
    /// A channel to <paramref name="controller"/>: <c>http://HOST:PORT</c> (cleartext HTTP/2), <c>https://HOST:PORT</c>
    /// (TLS; with <paramref name="caCertFile"/>, only certificates issued by that PEM CA — or that very certificate — are trusted,
    /// and the name must match) or <c>unix:/path</c>.
    /// </summary>
    public static GrpcChannel CreateChannel(string controller, string? caCertFile = null)
    {
        var handler = new SocketsHttpHandler
        {
            KeepAlivePingDelay = TimeSpan.FromSeconds(5),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        if (caCertFile is not null)
        {
            var ca = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(caCertFile));
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => TrustedBy(ca, cert, errors);
        }
        var address = controller;
        if (controller.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = controller["unix:".Length..];
            handler.ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
            address = "http://localhost";
        }
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = 16 * 1024 * 1024,
        });
    }

    /// <summary>True when <paramref name="cert"/> chains to <paramref name="ca"/> (a custom root) and its name matched.</summary>
    public static bool TrustedBy(System.Security.Cryptography.X509Certificates.X509Certificate2 ca, System.Security.Cryptography.X509Certificates.X509Certificate? cert,
        System.Net.Security.SslPolicyErrors errors)
    {
        if (cert is null || errors.HasFlag(System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(System.Net.Security.SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        using var leaf = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        return chain.Build(leaf);
    }

    /// <summary>The agent the controller's pushes and requests go to. Set before <see cref="RegisterAsync"/>.</summary>
    public void Bind(IAgentSession session) => _session = session;

    public async Task<(HostId HostId, long Epoch)> RegisterAsync(HostRegistration registration, CancellationToken cancellationToken)
    {
        _registration = registration;
        _loop ??= Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
        return await _welcomed.Task.WaitAsync(cancellationToken);
    }

    public Task ReportAsync(HostReport report, CancellationToken cancellationToken)
    {
        Send(new AgentMessage { Report = report.ToProto() });
        return Task.CompletedTask;
    }

    public Task ReportMetricsAsync(HostMetricsReport report, CancellationToken cancellationToken)
    {
        Send(new AgentMessage { Metrics = report.ToProto() });
        return Task.CompletedTask;
    }

    private bool Send(AgentMessage m) => Volatile.Read(ref _outbox)?.Writer.TryWrite(m) ?? false;

    private async Task LoopAsync(CancellationToken stop)
    {
        var client = new AgentChannel.AgentChannelClient(_channel);
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stop.IsCancellationRequested)
        {
            var outbox = Channel.CreateUnbounded<AgentMessage>(new UnboundedChannelOptions { SingleReader = true });
            using var conn = CancellationTokenSource.CreateLinkedTokenSource(stop);
            Task? writer = null;
            try
            {
                var headers = new Metadata { { "authorization", "Bearer " + _token } };
                using var call = client.Connect(headers, cancellationToken: conn.Token);
                await call.RequestStream.WriteAsync(new AgentMessage { Hello = _registration!.ToProto() }, conn.Token);
                if (!await call.ResponseStream.MoveNext(conn.Token) || call.ResponseStream.Current.Welcome is not { } welcome)
                {
                    throw new RpcException(new Status(StatusCode.Internal, "the controller did not answer Hello with Welcome"));
                }
                var hostId = new HostId(Guid.Parse(welcome.HostId));
                writer = Task.Run(async () =>
                {
                    await foreach (var m in outbox.Reader.ReadAllAsync(conn.Token))
                    {
                        await call.RequestStream.WriteAsync(m, conn.Token);
                    }
                }, CancellationToken.None);
                Volatile.Write(ref _outbox, outbox);
                Volatile.Write(ref _conn, conn);
                Interlocked.Increment(ref _connections);
                _welcomed.TrySetResult((hostId, welcome.Epoch));
                if (welcome.LeaseMs > 0 && _session is { } bound)
                {
                    // The stream itself grants the first lease; each processed report renews it.
                    _ = bound.RenewLeaseAsync(welcome.Epoch, TimeSpan.FromMilliseconds(welcome.LeaseMs), _stop.Token);
                }
                LogConnected(_log, _registration!.Name, hostId);
                backoff = TimeSpan.FromMilliseconds(250);
                while (await call.ResponseStream.MoveNext(conn.Token))
                {
                    try
                    {
                        Dispatch(call.ResponseStream.Current, outbox);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // One message the agent cannot act on must not end the stream (that would fence the host).
                        LogDispatchFailed(_log, e, _registration!.Name, call.ResponseStream.Current.BodyCase.ToString());
                    }
                }
                LogStreamEnded(_log, _registration!.Name);
            }
            catch (Exception e) when (e is RpcException or IOException or HttpRequestException or OperationCanceledException or InvalidOperationException)
            {
                if (stop.IsCancellationRequested)
                {
                    break;
                }
                if (e is RpcException { StatusCode: StatusCode.Unauthenticated or StatusCode.FailedPrecondition } fatal)
                {
                    LogRefused(_log, _registration!.Name, fatal.Status.Detail);
                    _welcomed.TrySetException(new AgentRequestException("agent_refused", fatal.Status.Detail));
                }
                else
                {
                    LogConnectFailed(_log, _registration!.Name, e.Message);
                }
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                // Anything else (a bug) used to end this loop for good: the agent lived on, disconnected, and fenced its
                // host. Log it with its stack and reconnect like any other failure.
                LogLoopFailed(_log, e, _registration!.Name);
            }
            finally
            {
                Interlocked.CompareExchange(ref _outbox, null, outbox);
                Interlocked.CompareExchange(ref _conn, null, conn);
                outbox.Writer.TryComplete();
                await conn.CancelAsync();
                if (writer is not null)
                {
                    await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }
            try
            {
                await Task.Delay(backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)(backoff.TotalMilliseconds / 2) + 1)), stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    private void Dispatch(ControllerMessage m, Channel<AgentMessage> outbox)
    {
        var session = _session ?? throw new InvalidOperationException("no agent bound");
        switch (m.BodyCase)
        {
            case ControllerMessage.BodyOneofCase.Desired:
                _ = session.PushAsync(m.Desired.FromProto(), _stop.Token);
                break;
            case ControllerMessage.BodyOneofCase.Lease:
                _ = session.RenewLeaseAsync(m.Lease.Epoch, TimeSpan.FromMilliseconds(m.Lease.ValidMs), _stop.Token);
                break;
            case ControllerMessage.BodyOneofCase.Request:
                if (m.Request.OpCase == Request.OpOneofCase.CancelMigration)
                {
                    if (_migrations.TryGetValue(new InstanceId(Guid.Parse(m.Request.CancelMigration.Id)), out var cts))
                    {
                        cts.Cancel();
                    }
                    break;
                }
                var request = m.Request;
                _ = Task.Run(async () => outbox.Writer.TryWrite(new AgentMessage { Reply = await HandleAsync(session, request, outbox) }));
                break;
            default:
                break;
        }
    }

    private async Task<Reply> HandleAsync(IAgentSession session, Request r, Channel<AgentMessage> outbox)
    {
        var reply = new Reply { Id = r.Id };
        var ct = _stop.Token;
        try
        {
            switch (r.OpCase)
            {
                case Request.OpOneofCase.Console:
                    reply.Console = await session.ReadConsoleAsync(Id(r.Console.Id), r.Console.MaxBytes, ct);
                    break;
                case Request.OpOneofCase.PrepareIncoming:
                    reply.Incoming = (await session.PrepareIncomingAsync(r.PrepareIncoming.Vm.FromProto(), ct)).ToProto();
                    break;
                case Request.OpOneofCase.MigrateOut:
                    {
                        var id = Id(r.MigrateOut.Id);
                        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        _migrations[id] = cts;
                        try
                        {
                            var progress = new RelayProgress(p => outbox.Writer.TryWrite(new AgentMessage { Progress = p.ToProto(r.Id) }));
                            reply.FinalProgress = (await session.MigrateOutAsync(id, r.MigrateOut.Target.FromProto(), r.MigrateOut.Settings.FromProto(), progress, cts.Token)).ToProto(r.Id);
                        }
                        finally
                        {
                            _migrations.TryRemove(id, out _);
                        }
                        break;
                    }
                case Request.OpOneofCase.CompleteIncoming:
                    reply.Vm = (await session.CompleteIncomingAsync(Id(r.CompleteIncoming.Id), ct)).ToProto();
                    break;
                case Request.OpOneofCase.CompleteOutgoing:
                    await session.CompleteOutgoingAsync(Id(r.CompleteOutgoing.Id), ct);
                    reply.Done = true;
                    break;
                case Request.OpOneofCase.AbortIncoming:
                    await session.AbortIncomingAsync(Id(r.AbortIncoming.Id), ct);
                    reply.Done = true;
                    break;
                case Request.OpOneofCase.ExportDisk:
                    if (await session.ExportDiskAsync(Id(r.ExportDisk.Id), ct) is { } path)
                    {
                        reply.DiskPath = path;
                    }
                    else
                    {
                        reply.Done = true;
                    }
                    break;
                case Request.OpOneofCase.ImportStopped:
                    reply.Vm = (await session.ImportStoppedAsync(r.ImportStopped.Vm.FromProto(), r.ImportStopped.HasSourceDisk ? r.ImportStopped.SourceDisk : null, ct)).ToProto();
                    break;
                case Request.OpOneofCase.StartVm:
                    reply.Vm = (await session.StartVmAsync(Id(r.StartVm.Id), ct)).ToProto();
                    break;
                case Request.OpOneofCase.CreateSnapshot:
                    reply.Snapshot = (await session.CreateSnapshotAsync(Id(r.CreateSnapshot.Id), r.CreateSnapshot.Name, r.CreateSnapshot.WithMemory, ct)).ToProto();
                    break;
                case Request.OpOneofCase.ListSnapshots:
                    {
                        var list = new Stratus.Protocol.V1.SnapshotList();
                        list.Snapshots.AddRange((await session.ListSnapshotsAsync(Id(r.ListSnapshots.Id), ct)).Select(s => s.ToProto()));
                        reply.Snapshots = list;
                        break;
                    }
                case Request.OpOneofCase.RevertSnapshot:
                    reply.Vm = (await session.RevertSnapshotAsync(Id(r.RevertSnapshot.Id), r.RevertSnapshot.Name, ct)).ToProto();
                    break;
                case Request.OpOneofCase.DeleteSnapshot:
                    await session.DeleteSnapshotAsync(Id(r.DeleteSnapshot.Id), r.DeleteSnapshot.Name, ct);
                    reply.Done = true;
                    break;
                case Request.OpOneofCase.Backup:
                    reply.Backup = (await session.BackupAsync(Id(r.Backup.Id), r.Backup.TargetDirectory, r.Backup.HasIncrementalFrom ? r.Backup.IncrementalFrom : null, ct)).ToProto();
                    break;
                case Request.OpOneofCase.Resize:
                    reply.Resize = (await session.ResizeAsync(r.Resize.FromProto(), ct)).ToProto();
                    break;
                case Request.OpOneofCase.ShutdownVms:
                    await session.ShutdownVmsAsync(TimeSpan.FromMilliseconds(r.ShutdownVms.GracefulMs), ct);
                    reply.Done = true;
                    break;
                default:
                    reply.ErrorCode = "unsupported_request";
                    reply.ErrorMessage = $"this agent does not know request {r.OpCase}";
                    break;
            }
        }
        catch (AgentRequestException e)
        {
            reply.ErrorCode = e.Code;
            reply.ErrorMessage = e.Message;
        }
        catch (OperationCanceledException)
        {
            reply.ErrorCode = "cancelled";
            reply.ErrorMessage = "the request was cancelled";
        }
        catch (Exception e)
        {
            LogRequestFailed(_log, e, r.OpCase.ToString());
            reply.ErrorCode = "agent_failure";
            reply.ErrorMessage = $"{e.GetType().Name}: {e.Message}";
        }
        return reply;
    }

    private static InstanceId Id(string s) => new(Guid.Parse(s));

    private sealed class RelayProgress(Action<MigrationStatus> report) : IProgress<MigrationStatus>
    {
        public void Report(MigrationStatus value) => report(value);
    }

    /// <summary>Drops the stream now (for tests of the controller's side of a cut); the loop reconnects.</summary>
    public void DropConnection()
    {
        try
        {
            Volatile.Read(ref _conn)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _welcomed.TrySetCanceled();
        if (_ownsChannel)
        {
            _channel.Dispose();
        }
        _stop.Dispose();
    }

    [LoggerMessage(1, LogLevel.Information, "Host {HostName} connected to the controller as {HostId}")]
    private static partial void LogConnected(ILogger log, string hostName, HostId hostId);

    [LoggerMessage(2, LogLevel.Warning, "Host {HostName}: the controller ended the stream; reconnecting")]
    private static partial void LogStreamEnded(ILogger log, string hostName);

    [LoggerMessage(3, LogLevel.Warning, "Host {HostName}: cannot reach the controller ({Reason}); retrying")]
    private static partial void LogConnectFailed(ILogger log, string hostName, string reason);

    [LoggerMessage(4, LogLevel.Error, "Host {HostName}: the controller refused the agent: {Reason}")]
    private static partial void LogRefused(ILogger log, string hostName, string reason);

    [LoggerMessage(6, LogLevel.Error, "Host {HostName}: the stream to the controller failed; reconnecting")]
    private static partial void LogLoopFailed(ILogger log, Exception e, string hostName);

    [LoggerMessage(7, LogLevel.Error, "Host {HostName}: a {Body} message from the controller could not be handled")]
    private static partial void LogDispatchFailed(ILogger log, Exception e, string hostName, string body);

    [LoggerMessage(5, LogLevel.Error, "Request {Op} failed")]
    private static partial void LogRequestFailed(ILogger log, Exception e, string op);
}
