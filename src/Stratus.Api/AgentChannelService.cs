using System.Collections.Concurrent;
using System.Threading.Channels;
using Grpc.Core;
using Stratus.Controller;
using Stratus.Core.Ids;
using Stratus.Protocol;
using AgentMessage = Stratus.Protocol.V1.AgentMessage;
using ControllerMessage = Stratus.Protocol.V1.ControllerMessage;
using Welcome = Stratus.Protocol.V1.Welcome;
using Request = Stratus.Protocol.V1.Request;
using Reply = Stratus.Protocol.V1.Reply;
using MigrationProgress = Stratus.Protocol.V1.MigrationProgress;
using ConsoleRequest = Stratus.Protocol.V1.ConsoleRequest;
using PrepareIncomingRequest = Stratus.Protocol.V1.PrepareIncomingRequest;
using MigrateOutRequest = Stratus.Protocol.V1.MigrateOutRequest;
using VmRequest = Stratus.Protocol.V1.VmRequest;
using ImportStoppedRequest = Stratus.Protocol.V1.ImportStoppedRequest;
using ShutdownRequest = Stratus.Protocol.V1.ShutdownRequest;
using SnapshotRequest = Stratus.Protocol.V1.SnapshotRequest;
using BackupRequest = Stratus.Protocol.V1.BackupRequest;
using AgentChannel = Stratus.Protocol.V1.AgentChannel;

namespace Stratus.Api;

/// <summary>
/// The controller's gRPC agent endpoint: one bidirectional stream per host. The first message must
/// be Hello with a valid per-host token; the stream then carries reports up and desired state and
/// requests down, exactly what the embedded agents exchange with <see cref="AgentHub"/> in-process.
/// </summary>
public sealed partial class AgentChannelService(AgentHub hub, AgentTokens tokens, ILogger<AgentChannelService> log) : AgentChannel.AgentChannelBase
{
    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ControllerMessage> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct) || requestStream.Current.Hello is not { } hello)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the first message on the stream must be Hello"));
        }
        var auth = context.RequestHeaders.GetValue("authorization");
        var token = auth is not null && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth["Bearer ".Length..] : null;
        if (!await tokens.VerifyAsync(hello.Name, token, ct))
        {
            LogRefused(log, hello.Name, context.Peer);
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"no valid agent token for host '{hello.Name}'"));
        }
        HostId hostId;
        long epoch;
        try
        {
            (hostId, epoch) = await hub.RegisterAsync(hello.FromProto(), ct);
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
        var session = new RemoteAgentSession(hostId);
        var writer = Task.Run(() => session.PumpAsync(responseStream, ct), CancellationToken.None);
        session.Send(new ControllerMessage
        {
            Welcome = new Welcome
            {
                HostId = hostId.ToString(),
                Epoch = epoch,
                ProtocolMajor = ProtocolVersion.Major,
                ProtocolMinor = ProtocolVersion.Minor,
                LeaseMs = (long)hub.LeasePeriod.TotalMilliseconds,
            },
        });
        hub.Attach(session);
        LogConnected(log, hello.Name, hostId, context.Peer);
        try
        {
            while (await requestStream.MoveNext(ct))
            {
                var m = requestStream.Current;
                switch (m.BodyCase)
                {
                    case AgentMessage.BodyOneofCase.Report:
                        await hub.ReportAsync(m.Report.FromProto(), ct);
                        // Processed: the agent's lease is renewed (it fences itself when renewals stop).
                        session.Send(new ControllerMessage { Lease = new Stratus.Protocol.V1.Lease { Epoch = epoch, ValidMs = (long)hub.LeasePeriod.TotalMilliseconds } });
                        break;
                    case AgentMessage.BodyOneofCase.Reply:
                        session.OnReply(m.Reply);
                        break;
                    case AgentMessage.BodyOneofCase.Progress:
                        session.OnProgress(m.Progress);
                        break;
                    case AgentMessage.BodyOneofCase.Metrics:
                        await hub.ReportMetricsAsync(m.Metrics.FromProto() with { HostId = hostId }, ct);
                        break;
                    default:
                        break; // unknown (newer) message kinds are ignored, as protobuf intends
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or RpcException)
        {
            // the agent went away; it reconnects and its VMs keep running meanwhile
        }
        finally
        {
            hub.Detach(hostId, session);
            session.Close();
            await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            LogDisconnected(log, hello.Name, hostId);
        }
    }

    [LoggerMessage(1, LogLevel.Information, "Agent {HostName} connected as {HostId} from {Peer}")]
    private static partial void LogConnected(ILogger log, string hostName, HostId hostId, string peer);

    [LoggerMessage(2, LogLevel.Information, "Agent {HostName} ({HostId}) disconnected")]
    private static partial void LogDisconnected(ILogger log, string hostName, HostId hostId);

    [LoggerMessage(3, LogLevel.Warning, "Agent {HostName} from {Peer} refused: bad token")]
    private static partial void LogRefused(ILogger log, string hostName, string peer);
}

/// <summary>
/// The controller's handle on one connected remote agent: pushes and requests go out through one
/// writer (gRPC streams take one write at a time); replies are matched to requests by id.
/// </summary>
public sealed class RemoteAgentSession(HostId hostId) : IAgentSession
{
    private readonly Channel<ControllerMessage> _outbox = Channel.CreateUnbounded<ControllerMessage>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<long, TaskCompletionSource<Reply>> _pending = new();
    private readonly ConcurrentDictionary<long, Action<MigrationProgress>> _progress = new();
    private long _nextId;
    private volatile bool _closed;

    public HostId HostId { get; } = hostId;

    public void Send(ControllerMessage m)
    {
        if (_closed || !_outbox.Writer.TryWrite(m))
        {
            throw new AgentRequestException("agent_unreachable", $"the agent of host {HostId} is not connected");
        }
    }

    public async Task PumpAsync(IServerStreamWriter<ControllerMessage> stream, CancellationToken ct)
    {
        try
        {
            await foreach (var m in _outbox.Reader.ReadAllAsync(ct))
            {
                await stream.WriteAsync(m, ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException or RpcException)
        {
            Close();
        }
    }

    public void OnReply(Reply reply)
    {
        if (_pending.TryRemove(reply.Id, out var tcs))
        {
            tcs.TrySetResult(reply);
        }
    }

    public void OnProgress(MigrationProgress p)
    {
        if (_progress.TryGetValue(p.RequestId, out var report))
        {
            report(p);
        }
    }

    public void Close()
    {
        _closed = true;
        _outbox.Writer.TryComplete();
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var tcs))
            {
                tcs.TrySetException(new AgentRequestException("agent_unreachable", $"the agent of host {HostId} disconnected"));
            }
        }
    }

    public Task PushAsync(DesiredHostState desired, CancellationToken cancellationToken)
    {
        Send(new ControllerMessage { Desired = desired.ToProto() });
        return Task.CompletedTask;
    }

    private async Task<Reply> CallAsync(Request request, CancellationToken ct, Action<MigrationProgress>? progress = null, Action? onCancel = null)
    {
        request.Id = Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[request.Id] = tcs;
        if (progress is not null)
        {
            _progress[request.Id] = progress;
        }
        try
        {
            Send(new ControllerMessage { Request = request });
            if (_closed)
            {
                Close();
            }
            using var reg = onCancel is null ? default : ct.Register(onCancel);
            var reply = onCancel is null ? await tcs.Task.WaitAsync(ct) : await tcs.Task;
            if (reply.HasErrorCode)
            {
                throw reply.ErrorCode == "cancelled"
                    ? new OperationCanceledException(reply.ErrorMessage)
                    : new AgentRequestException(reply.ErrorCode, reply.HasErrorMessage ? reply.ErrorMessage : reply.ErrorCode);
            }
            return reply;
        }
        finally
        {
            _pending.TryRemove(request.Id, out _);
            _progress.TryRemove(request.Id, out _);
        }
    }

    public async Task<string> ReadConsoleAsync(InstanceId id, int maxBytes, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { Console = new ConsoleRequest { Id = id.ToString(), MaxBytes = maxBytes } }, cancellationToken)).Console;

    public async Task<IncomingMigrationInfo> PrepareIncomingAsync(DesiredVm vm, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { PrepareIncoming = new PrepareIncomingRequest { Vm = vm.ToProto() } }, cancellationToken)).Incoming.FromProto();

    public async Task<MigrationStatus> MigrateOutAsync(InstanceId id, IncomingMigrationInfo target, MigrationSettings settings,
        IProgress<MigrationStatus>? progress, CancellationToken cancellationToken)
    {
        var request = new Request { MigrateOut = new MigrateOutRequest { Id = id.ToString(), Target = target.ToProto(), Settings = settings.ToProto() } };
        // Cancelling asks the agent to abort; the reply (cancelled, or completed if it was too late) still arrives.
        var reply = await CallAsync(request, cancellationToken, progress is null ? null : p => progress.Report(p.FromProto()),
            () => TrySend(new Request { CancelMigration = new VmRequest { Id = id.ToString() } }));
        return reply.FinalProgress.FromProto();
    }

    private void TrySend(Request r)
    {
        try
        {
            r.Id = Interlocked.Increment(ref _nextId);
            Send(new ControllerMessage { Request = r });
        }
        catch (AgentRequestException)
        {
        }
    }

    public async Task<ActualVm> CompleteIncomingAsync(InstanceId id, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { CompleteIncoming = new VmRequest { Id = id.ToString() } }, cancellationToken)).Vm.FromProto();

    public Task CompleteOutgoingAsync(InstanceId id, CancellationToken cancellationToken) =>
        CallAsync(new Request { CompleteOutgoing = new VmRequest { Id = id.ToString() } }, cancellationToken);

    public Task AbortIncomingAsync(InstanceId id, CancellationToken cancellationToken) =>
        CallAsync(new Request { AbortIncoming = new VmRequest { Id = id.ToString() } }, cancellationToken);

    public async Task<VmSnapshot> CreateSnapshotAsync(InstanceId id, string name, bool withMemory, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { CreateSnapshot = new SnapshotRequest { Id = id.ToString(), Name = name, WithMemory = withMemory } }, cancellationToken)).Snapshot.FromProto();

    public async Task<IReadOnlyList<VmSnapshot>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken) =>
        [.. (await CallAsync(new Request { ListSnapshots = new VmRequest { Id = id.ToString() } }, cancellationToken)).Snapshots.Snapshots.Select(s => s.FromProto())];

    public async Task<ResizeReport> ResizeAsync(ResizeOrder order, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { Resize = order.ToProto() }, cancellationToken)).Resize.FromProto();

    public async Task<ActualVm> RevertSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { RevertSnapshot = new SnapshotRequest { Id = id.ToString(), Name = name } }, cancellationToken)).Vm.FromProto();

    public async Task DeleteSnapshotAsync(InstanceId id, string name, CancellationToken cancellationToken) =>
        await CallAsync(new Request { DeleteSnapshot = new SnapshotRequest { Id = id.ToString(), Name = name } }, cancellationToken);

    public async Task<BackupResult> BackupAsync(InstanceId id, string targetDirectory, string? incrementalFrom, CancellationToken cancellationToken)
    {
        var request = new BackupRequest { Id = id.ToString(), TargetDirectory = targetDirectory };
        if (incrementalFrom is not null)
        {
            request.IncrementalFrom = incrementalFrom;
        }
        return (await CallAsync(new Request { Backup = request }, cancellationToken)).Backup.FromProto();
    }

    public async Task<string?> ExportDiskAsync(InstanceId id, CancellationToken cancellationToken)
    {
        var reply = await CallAsync(new Request { ExportDisk = new VmRequest { Id = id.ToString() } }, cancellationToken);
        return reply.ResultCase == Reply.ResultOneofCase.DiskPath ? reply.DiskPath : null;
    }

    public async Task<ActualVm> ImportStoppedAsync(DesiredVm vm, string? sourceDisk, CancellationToken cancellationToken)
    {
        var r = new ImportStoppedRequest { Vm = vm.ToProto() };
        if (sourceDisk is not null)
        {
            r.SourceDisk = sourceDisk;
        }
        return (await CallAsync(new Request { ImportStopped = r }, cancellationToken)).Vm.FromProto();
    }

    public async Task<ActualVm> StartVmAsync(InstanceId id, CancellationToken cancellationToken) =>
        (await CallAsync(new Request { StartVm = new VmRequest { Id = id.ToString() } }, cancellationToken)).Vm.FromProto();

    public Task ShutdownVmsAsync(TimeSpan graceful, CancellationToken cancellationToken) =>
        CallAsync(new Request { ShutdownVms = new ShutdownRequest { GracefulMs = (long)graceful.TotalMilliseconds } }, cancellationToken);
}
