using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Stratus.Compute.Qemu.Qmp;

/// <summary>An asynchronous QMP event (<c>SHUTDOWN</c>, <c>STOP</c>, <c>RESUME</c>, ...).</summary>
public sealed record QmpEvent(string Name, JsonElement Data);

/// <summary>QEMU answered a command with an error.</summary>
public sealed class QmpException(string errorClass, string description) : Exception($"QMP {errorClass}: {description}")
{
    public string ErrorClass { get; } = errorClass;
}

/// <summary>
/// A QMP client over a unix socket. <see cref="ConnectAsync"/> retries until the socket answers, reads
/// the greeting and negotiates capabilities. Commands carry an id; the matching return completes the
/// call, events are dispatched to <see cref="EventReceived"/> (on the reader task: keep handlers short).
/// When QEMU exits the socket closes, pending commands fail with <see cref="IOException"/> and
/// <see cref="Completion"/> completes. Thread-safe. Reconnecting (adoption) is a new <see cref="ConnectAsync"/>:
/// QEMU's <c>server=on,wait=off</c> socket accepts a new client once the previous one is gone.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TimeSpan _defaultTimeout;
    private readonly byte[] _buffer = new byte[8192];
    private readonly MemoryStream _line = new();
    private Task _reader = Task.CompletedTask;
    private long _nextId;
    private int _bufferStart;
    private int _bufferEnd;

    private QmpClient(Socket socket, TimeSpan defaultTimeout)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _defaultTimeout = defaultTimeout;
    }

    /// <summary>Raised for every QMP event.</summary>
    public event Action<QmpEvent>? EventReceived;

    /// <summary>Completes when the connection closes (QEMU exited or the client was disposed).</summary>
    public Task Completion => _reader;

    /// <summary>Connects, retrying until <paramref name="connectTimeout"/>, and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan connectTimeout, TimeSpan commandTimeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + connectTimeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                var client = new QmpClient(socket, commandTimeout);
                try
                {
                    await client.HandshakeAsync(cancellationToken);
                    return client;
                }
                catch
                {
                    await client.DisposeAsync();
                    throw;
                }
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                await Task.Delay(20, cancellationToken);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new IOException($"QMP socket {socketPath} did not answer within {connectTimeout.TotalSeconds:0.#} s: {ex.Message}", ex);
            }
        }
    }

    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_defaultTimeout);
        string greeting;
        try
        {
            greeting = await ReadLineAsync(timeout.Token) ?? throw new IOException("QMP closed before its greeting");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException("QMP sent no greeting (is another client connected?)");
        }

        using (var doc = JsonDocument.Parse(greeting))
        {
            if (!doc.RootElement.TryGetProperty("QMP", out _))
            {
                throw new IOException("Not a QMP greeting: " + greeting);
            }
        }

        _reader = Task.Run(ReadLoopAsync, CancellationToken.None);
        await ExecuteAsync("qmp_capabilities", null, cancellationToken);
    }

    /// <summary>Runs a command and returns its <c>return</c> value. Throws <see cref="QmpException"/> on a QMP error,
    /// <see cref="TimeoutException"/> after the timeout, <see cref="IOException"/> when the connection closes.</summary>
    public Task<JsonElement> ExecuteAsync(string command, object? arguments, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        SendAsync(command, arguments, -1, timeout, cancellationToken);

    /// <summary>
    /// Runs a command that takes a file descriptor (<c>add-fd</c>, <c>getfd</c>): <paramref name="fd"/> travels with the
    /// command's bytes as SCM_RIGHTS ancillary data, as QEMU expects, so a QEMU that may not open a path can still be given
    /// exactly one open file.
    /// </summary>
    public Task<JsonElement> ExecuteWithFdAsync(string command, object? arguments, int fd, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        SendAsync(command, arguments, fd, timeout, cancellationToken);

    private async Task<JsonElement> SendAsync(string command, object? arguments, int fd, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        try
        {
            var message = new JsonObject { ["execute"] = command, ["id"] = id };
            if (arguments is not null)
            {
                message["arguments"] = JsonSerializer.SerializeToNode(arguments);
            }

            var bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                if (fd >= 0)
                {
                    Launch.Native.SendWithFd(_socket.Handle, bytes, fd);
                }
                else
                {
                    await _stream.WriteAsync(bytes, cancellationToken);
                }
            }
            finally
            {
                _writeLock.Release();
            }

            if (_reader.IsCompleted)
            {
                tcs.TrySetException(new IOException("QMP connection closed"));
            }

            return await tcs.Task.WaitAsync(timeout ?? _defaultTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"QMP command {command} got no answer within {(timeout ?? _defaultTimeout).TotalSeconds:0.#} s");
        }
        catch (SocketException ex)
        {
            throw new IOException("QMP connection closed: " + ex.Message, ex);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await ReadLineAsync(_stop.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.TryGetProperty("event", out var ev))
                {
                    var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
                    try
                    {
                        EventReceived?.Invoke(new QmpEvent(ev.GetString() ?? "", data));
                    }
                    catch
                    {
                        // A faulty handler must not stop the reader (it would fail every later command).
                    }

                    continue;
                }

                if (!root.TryGetProperty("id", out var idEl) || idEl.ValueKind != JsonValueKind.Number || !_pending.TryGetValue(idEl.GetInt64(), out var tcs))
                {
                    continue;
                }

                if (root.TryGetProperty("return", out var ret))
                {
                    tcs.TrySetResult(ret.Clone());
                }
                else if (root.TryGetProperty("error", out var err))
                {
                    var cls = err.TryGetProperty("class", out var c) ? c.GetString() ?? "" : "";
                    var desc = err.TryGetProperty("desc", out var de) ? de.GetString() ?? "" : "";
                    tcs.TrySetException(new QmpException(cls, desc));
                }
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            foreach (var pending in _pending.Values)
            {
                pending.TrySetException(new IOException("QMP connection closed"));
            }
        }
    }

    private async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        _line.SetLength(0);
        while (true)
        {
            for (var i = _bufferStart; i < _bufferEnd; i++)
            {
                if (_buffer[i] == (byte)'\n')
                {
                    _line.Write(_buffer, _bufferStart, i - _bufferStart);
                    _bufferStart = i + 1;
                    return Encoding.UTF8.GetString(_line.GetBuffer(), 0, (int)_line.Length).TrimEnd('\r');
                }
            }

            _line.Write(_buffer, _bufferStart, _bufferEnd - _bufferStart);
            _bufferStart = _bufferEnd = 0;
            var n = await _stream.ReadAsync(_buffer, cancellationToken);
            if (n == 0)
            {
                return null;
            }

            _bufferEnd = n;
        }
    }

    /// <summary>Closes the connection (QEMU keeps running).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        await _stream.DisposeAsync();
        try
        {
            await _reader;
        }
        catch
        {
            // The reader never throws past its own handlers; this is belt and braces on shutdown.
        }

        _stop.Dispose();
        _writeLock.Dispose();
        _line.Dispose();
    }
}
