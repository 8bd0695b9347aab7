namespace Stratus.Controller.Scaling;

/// <summary>Checks that a member answers. Implementations must not throw for an unreachable member: that is a failed check.</summary>
public interface IHealthProbe
{
    /// <summary>True when GET <paramref name="path"/> on 127.0.0.1:<paramref name="hostPort"/> answers 200–399 within <paramref name="timeout"/>.</summary>
    Task<bool> CheckAsync(int hostPort, string path, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>
/// HTTP GET through the member's forward on the loopback address (user-mode networking binds forwards to 127.0.0.1 on the
/// member's host, so this reaches members on the controller's own machine: all-in-one clouds and agents beside the controller).
/// </summary>
public sealed class HttpHealthProbe : IHealthProbe, IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(30), UseProxy = false })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async Task<bool> CheckAsync(int hostPort, string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            using var response = await _http.GetAsync(new Uri($"http://127.0.0.1:{hostPort}{path}"), HttpCompletionOption.ResponseHeadersRead, cts.Token);
            return (int)response.StatusCode is >= 200 and < 400;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    public void Dispose() => _http.Dispose();
}
