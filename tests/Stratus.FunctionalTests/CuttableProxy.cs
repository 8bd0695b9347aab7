using System.Net;
using System.Net.Sockets;

namespace Stratus.FunctionalTests;

/// <summary>A TCP proxy in front of the controller's agent port whose connections can be severed on demand.</summary>
internal sealed class CuttableProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Uri _target;
    private readonly List<TcpClient> _open = [];
    private readonly CancellationTokenSource _stop = new();
    private int _connections;

    public CuttableProxy(string target)
    {
        _target = new Uri(target);
        _listener.Start();
        _ = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Connections => Volatile.Read(ref _connections);

    private volatile bool _blocked;

    /// <summary>Black-holes the link: open connections are severed and new ones are accepted but never forwarded.</summary>
    public void Block()
    {
        _blocked = true;
        Cut();
    }

    public void Unblock() => _blocked = false;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            if (_blocked)
            {
                lock (_open)
                {
                    _open.Add(inbound); // held open, silent: a cut network, not a refused connection
                }
                continue;
            }
            Interlocked.Increment(ref _connections);
            var outbound = new TcpClient();
            try
            {
                await outbound.ConnectAsync(_target.Host, _target.Port, _stop.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The controller refused or is restarting: drop this client (it reconnects) and keep accepting.
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }
            lock (_open)
            {
                _open.Add(inbound);
                _open.Add(outbound);
            }
            _ = Task.WhenAny(Pump(inbound.GetStream(), outbound.GetStream()), Pump(outbound.GetStream(), inbound.GetStream()))
                .ContinueWith(_ => Close(inbound, outbound), TaskScheduler.Default);
        }
    }

    /// <summary>When either side ends, the other is closed too (no half-open link for the agent to wait on).</summary>
    private void Close(TcpClient a, TcpClient b)
    {
        lock (_open)
        {
            _open.Remove(a);
            _open.Remove(b);
        }
        a.Dispose();
        b.Dispose();
    }

    private static async Task Pump(NetworkStream from, NetworkStream to)
    {
        try
        {
            await from.CopyToAsync(to);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
        }
    }

    /// <summary>Severs every open connection (both directions); new ones are still accepted.</summary>
    public void Cut()
    {
        lock (_open)
        {
            foreach (var c in _open)
            {
                c.Client.LingerState = new LingerOption(true, 0);
                c.Dispose();
            }
            _open.Clear();
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        Cut();
        _stop.Dispose();
    }
}
