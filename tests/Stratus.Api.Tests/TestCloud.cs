using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Stratus.Api;
using Stratus.Client;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api.Tests;

/// <summary>A whole all-in-one cloud in this process: real store, controller, embedded agents (simulated driver, fast delays), HTTP on a free loopback port.</summary>
public sealed class TestCloud : IAsyncLifetime
{
    private WebApplication? _app;

    public string DataDir { get; } = Directory.CreateTempSubdirectory("stratus-api-").FullName;

    public int Hosts { get; init; } = 3;

    public double DelayScale { get; init; } = 0.02;

    /// <summary>Remote agents the cloud waits for before it is ready (tests start them before <see cref="InitializeAsync"/> returns only if they connect by themselves).</summary>
    public int RemoteHosts { get; init; }

    /// <summary>Where remote agents dial (gRPC over HTTP/2).</summary>
    public string AgentUrl { get; private set; } = "";

    /// <summary>Set to skip waiting for readiness (remote agents are started after the cloud).</summary>
    public bool WaitReady { get; init; } = true;

    /// <summary>How often the embedded agents report resource use (short, so stats tests see points quickly).</summary>
    public TimeSpan MetricsInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Adjusts the controller's options before it starts (consolidation, say).</summary>
    public Action<StratusdOptions>? Configure { get; init; }

    public StratusClient Client { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>The bootstrap admin's API key (cloud admin).</summary>
    public string AdminToken { get; private set; } = "";

    /// <summary>An HTTP client for the cloud with no credential, or with <paramref name="token"/>.</summary>
    public HttpClient NewHttp(string? token = null)
    {
        var h = new HttpClient { BaseAddress = Http.BaseAddress };
        if (token is not null)
        {
            h.DefaultRequestHeaders.Authorization = new("Bearer", token);
        }
        return h;
    }

    public IStateStore Store => _app!.Services.GetRequiredService<IStateStore>();

    public IServiceProvider Services => _app!.Services;

    public async Task InitializeAsync()
    {
        // Tests poll fast from one user: the per-user rate limit is off unless a test turns it on.
        var options = new StratusdOptions { DataDir = DataDir, Port = 0, Hosts = Hosts, SimDelayScale = DelayScale, ExpectRemoteHosts = RemoteHosts, MetricsInterval = MetricsInterval, RateLimit = 0 };
        Configure?.Invoke(options);
        _app = StratusApp.Build(options, b => { });
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<ListenEndpoints>().ApiUrl;
        AgentUrl = _app.Services.GetRequiredService<ListenEndpoints>().AgentUrl!;
        // The bootstrap admin's API key (written by the controller on a new cloud) authenticates the tests' clients.
        var deadline0 = DateTime.UtcNow.AddSeconds(30);
        string? key;
        while ((key = Credentials.ReadBootstrapKey(DataDir)) is null && DateTime.UtcNow < deadline0)
        {
            await Task.Delay(10);
        }
        AdminToken = key ?? throw new TimeoutException("no admin credential in 30 s");
        Http = new HttpClient { BaseAddress = new Uri(address.TrimEnd('/') + "/") };
        Http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        Client = StratusClient.Create(Http.BaseAddress, null, AdminToken);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (WaitReady && !(await Client.HealthAsync()).Ready)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("test cloud not ready in 30 s");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Polls until the server settles in <paramref name="state"/> with no task.</summary>
    public async Task<ServerDto> WaitAsync(string id, string state, int timeoutMs = 20000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        ServerDto s;
        do
        {
            s = await Client.GetServerAsync(id);
            if (s.Task is null && s.VmState == state)
            {
                return s;
            }
            await Task.Delay(20);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"server {s.Name} is {s.VmState}/{s.Task}, expected {state}");
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        Http.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(DataDir, true);
        }
        catch (IOException)
        {
        }
    }
}
