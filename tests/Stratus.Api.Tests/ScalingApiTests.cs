using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Stratus.Client;
using Stratus.Controller.Scaling;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api.Tests;

/// <summary>
/// Scaling groups end to end on an in-process cloud (three simulated hosts, agents sampling every 250 ms, the scaling
/// loop every 200 ms): convergence, CPU policies driven by the simulated driver's load.json, bounds and cooldowns,
/// the capacity check, replacement of killed, failed and unhealthy members, scheduled changes, deletion and bad input.
/// </summary>
public sealed class ScalingApiTests : IAsyncLifetime
{
    private readonly TestCloud _cloud = new()
    {
        Hosts = 3,
        MetricsInterval = TimeSpan.FromMilliseconds(250),
        Configure = o => o.Scaling = new ScalingOptions
        {
            CheckInterval = TimeSpan.FromMilliseconds(200),
            GrowRetry = TimeSpan.FromSeconds(1),
            StopTimeout = TimeSpan.FromSeconds(5),
            DefaultHealthGrace = TimeSpan.FromSeconds(1),
            DefaultWarmup = TimeSpan.FromMilliseconds(500),
        },
    };

    private StratusClient C => _cloud.Client;

    public Task InitializeAsync() => _cloud.InitializeAsync();

    public Task DisposeAsync() => _cloud.DisposeAsync();

    /// <summary>Sets the CPU % the simulated driver reports for these server names on every host.</summary>
    private async Task LoadAsync(IEnumerable<string> names, double cpu)
    {
        var load = names.ToDictionary(n => n, _ => cpu);
        for (var i = 1; i <= _cloud.Hosts; i++)
        {
            var dir = Path.Combine(_cloud.DataDir, "hosts", $"host-{i}", "simulated");
            Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(Path.Combine(dir, "load.json"), JsonSerializer.Serialize(load));
        }
    }

    private static IEnumerable<string> Names(string group, int upTo = 30) => Enumerable.Range(1, upTo).Select(i => $"{group}-{i}");

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, int timeoutMs = 30000)
        where T : class
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            if (await probe() is { } done)
            {
                return done;
            }
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until the group has exactly <paramref name="count"/> active members and nothing draining.</summary>
    private Task<IReadOnlyList<ScalingMemberDto>> SettledAsync(string group, int count, int timeoutMs = 30000) =>
        EventuallyAsync<IReadOnlyList<ScalingMemberDto>>(async () =>
        {
            var g = await C.GetScalingGroupAsync(group);
            var members = await C.ListScalingMembersAsync(group);
            return g.Desired == count && g.Draining == 0 && members.Count == count && members.All(m => m.VmState == "active" && m.Task is null) ? members : null;
        }, $"{group} settled at {count} active members", timeoutMs);

    private static CreateScalingGroupRequest Group(string name, int min, int max, int desired, params ScalingPolicyDto[] policies) =>
        new(name, "tiny", "tiny", min, max, desired) { Policies = policies };

    [Fact]
    public async Task Create_ConvergesToDesired_MembersNamedGroupN_SpreadOverHosts()
    {
        var created = await C.CreateScalingGroupAsync(Group("web", 1, 5, 3));
        Assert.Equal("growing", created.Status);
        var members = await SettledAsync("web", 3);
        Assert.Equal(["web-1", "web-2", "web-3"], members.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.Equal(3, members.Select(m => m.HostId).Distinct().Count()); // soft anti-affinity over three hosts
        var g = await EventuallyAsync(async () => await C.GetScalingGroupAsync("web") is { Status: "stable" } s ? s : null, "stable");
        Assert.Equal(3, g.Current);
        foreach (var m in members)
        {
            var s = await C.GetServerAsync(m.Id);
            Assert.Equal(g.ServerGroupId, s.GroupId); // members join the group's anti-affinity server group
        }
        Assert.Contains((await C.ListScalingGroupsAsync()), x => x.Name == "web");
        Assert.Contains(await C.ListScalingEventsAsync("web"), e => e.Kind == "member_added" && e.Message.Contains("web-3", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Policies_HighCpu_ScaleOutToMax_LoadStops_ScaleInToMin_NewestFirst_NeverBeyondBounds()
    {
        await LoadAsync(Names("api"), 90);
        await C.CreateScalingGroupAsync(Group("api", 1, 3, 1,
            new ScalingPolicyDto("hot", "above", 70, 1, 1, 1),
            new ScalingPolicyDto("cold", "below", 30, 1, -1, 1)));
        // Desired always within [min, max]; members never above max, and never below min once the group first reached it.
        var seen = new List<(int Desired, int Current, bool Reached)>();
        using var stop = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            var reached = false;
            while (!stop.IsCancellationRequested)
            {
                var g = await C.GetScalingGroupAsync("api");
                reached |= g.Current >= g.Min;
                lock (seen)
                {
                    seen.Add((g.Desired, g.Current, reached));
                }
                await Task.Delay(50);
            }
        });
        try
        {
            await SettledAsync("api", 3, 40000);
            await EventuallyAsync(async () => (await C.ListScalingEventsAsync("api")).FirstOrDefault(e => e.Kind == "at_limit"), "the at-max event");
            Assert.Equal(3, (await C.GetScalingGroupAsync("api")).Desired);

            await LoadAsync(Names("api"), 5);
            var left = await SettledAsync("api", 1, 40000);
            Assert.Equal("api-1", left.Single().Name); // scale-in removes the newest first
            await Task.Delay(1500); // below the threshold at min: stays at min
            Assert.Equal(1, (await C.GetScalingGroupAsync("api")).Desired);
        }
        finally
        {
            await stop.CancelAsync();
            await watcher;
        }
        lock (seen)
        {
            Assert.All(seen, x => Assert.InRange(x.Desired, 1, 3));
            Assert.All(seen, x => Assert.InRange(x.Current, x.Reached ? 1 : 0, 3));
            Assert.Contains(seen, x => x.Current == 3);
        }
        var events = await C.ListScalingEventsAsync("api");
        Assert.Equal(2, events.Count(e => e.Kind == "scale_out"));
        Assert.Equal(2, events.Count(e => e.Kind == "scale_in"));
        // Removed gracefully: each removed member was stopped before it was deleted.
        foreach (var name in new[] { "api-2", "api-3" })
        {
            var inst = (await _cloud.Store.ListInstancesAsync(new InstanceQuery(Limit: 1000, IncludeDeleted: true), CancellationToken.None)).Items.Single(i => i.Name == name);
            var actions = (await C.ListActionsAsync(inst.Id.ToString())).Select(a => a.Action).ToList();
            Assert.True(actions.IndexOf("stop") >= 0 && actions.IndexOf("stop") < actions.IndexOf("delete"), $"{name}: {string.Join(", ", actions)}");
        }
    }

    [Fact]
    public async Task ScaleIn_LeastLoaded_RemovesTheIdlestMember()
    {
        var load = new Dictionary<string, double> { ["ll-1"] = 50, ["ll-2"] = 4, ["ll-3"] = 60 };
        for (var i = 1; i <= _cloud.Hosts; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(_cloud.DataDir, "hosts", $"host-{i}", "simulated", "load.json"), JsonSerializer.Serialize(load));
        }
        await C.CreateScalingGroupAsync(new CreateScalingGroupRequest("ll", "tiny", "tiny", 1, 3, 3) { ScaleIn = "least-loaded" });
        await SettledAsync("ll", 3);
        await Task.Delay(1500); // a few samples of each member
        await C.UpdateScalingGroupAsync("ll", new UpdateScalingGroupRequest(null, null, 2));
        var left = await SettledAsync("ll", 2);
        Assert.Equal(["ll-1", "ll-3"], left.Select(m => m.Name).Order(StringComparer.Ordinal)); // not the newest (ll-3): the idlest (ll-2)
    }

    [Fact]
    public async Task Policy_Cooldown_OneChangePerCooldown()
    {
        await LoadAsync(Names("cool"), 95);
        await C.CreateScalingGroupAsync(Group("cool", 1, 5, 1, new ScalingPolicyDto("hot", "above", 50, 1, 1, 60)));
        await EventuallyAsync(async () => await C.GetScalingGroupAsync("cool") is { Desired: 2 } g ? g : null, "the first scale-out");
        await Task.Delay(3000); // load stays high for longer than the window, well within the cooldown
        var after = await C.GetScalingGroupAsync("cool");
        Assert.Equal(2, after.Desired);
        Assert.Single(after.Events, e => e.Kind == "scale_out");
    }

    [Fact]
    public async Task CapacityCheck_NoRoom_SaysWhy_CreatesNothing_QuotaSaysSo()
    {
        await C.CreateFlavorAsync(new CreateFlavorRequest("giant", 512, 8L * 1024 * 1024, 1, true));
        await C.CreateScalingGroupAsync(new CreateScalingGroupRequest("big", "giant", "tiny", 0, 2, 1));
        var g = await EventuallyAsync(async () => await C.GetScalingGroupAsync("big") is { Status: "cannot_grow" } s ? s : null, "cannot_grow");
        Assert.Contains("room for 0 of 1", g.StatusReason, StringComparison.Ordinal);
        Assert.Contains(g.Events, e => e.Kind == "cannot_grow");
        Assert.Empty(await C.ListScalingMembersAsync("big"));
        Assert.DoesNotContain((await _cloud.Store.ListInstancesAsync(new InstanceQuery(Limit: 1000, IncludeDeleted: true), CancellationToken.None)).Items, i => i.Name.StartsWith("big-", StringComparison.Ordinal));

        // Quota: the admin project may hold 2 servers; a group asking for 3 gets 2 and says why it stops there.
        await C.SetQuotaAsync("admin", new QuotasDto(2, null, null, null, null, null));
        await C.CreateScalingGroupAsync(Group("quota", 0, 5, 3));
        var q = await EventuallyAsync(async () => await C.GetScalingGroupAsync("quota") is { Status: "cannot_grow", Current: 2 } s ? s : null, "quota stop");
        Assert.Contains("quota_exceeded", q.StatusReason, StringComparison.Ordinal);
        Assert.Contains(q.Events, e => e.Kind == "quota" && e.Message.Contains("instances", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MemberDeletedOrFailed_IsReplaced()
    {
        await C.CreateScalingGroupAsync(Group("rep", 2, 4, 2));
        var members = await SettledAsync("rep", 2);
        var victim = members.Single(m => m.Name == "rep-1");
        await C.DeleteServerAsync(victim.Id);
        var after = await EventuallyAsync<IReadOnlyList<ScalingMemberDto>>(async () =>
            await C.ListScalingMembersAsync("rep") is { Count: 2 } l && l.All(m => m.VmState == "active") && l.All(m => m.Id != victim.Id) ? l : null, "replacement of a deleted member");
        Assert.Contains(after, m => m.Name == "rep-3");
        Assert.Contains(await C.ListScalingEventsAsync("rep"), e => e.Kind == "member_lost" && e.Message.Contains("rep-1", StringComparison.Ordinal));

        // A member whose VM failed (error) is deleted and replaced.
        var failing = after.Single(m => m.Name == "rep-2");
        var inst = (await _cloud.Store.GetInstanceAsync(new InstanceId(Guid.Parse(failing.Id)), CancellationToken.None))!;
        Assert.Equal(CasOutcome.Ok, await _cloud.Store.UpdateInstanceAsync(inst with { VmState = VmState.Error, Fault = "test: the VM crashed" }, null, CancellationToken.None));
        await EventuallyAsync<IReadOnlyList<ScalingMemberDto>>(async () =>
            await C.ListScalingMembersAsync("rep") is { Count: 2 } l && l.All(m => m.VmState == "active" && m.Name != "rep-2") ? l : null, "replacement of a failed member");
        await _cloud.WaitAsync(failing.Id, "deleted");
        Assert.Contains(await C.ListScalingEventsAsync("rep"), e => e.Kind == "member_failed" && e.Message.Contains("the VM crashed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UnhealthyMember_IsReplaced_HealthyOneKept()
    {
        await C.CreateScalingGroupAsync(new CreateScalingGroupRequest("hc", "tiny", "tiny", 2, 4, 2)
        {
            Health = new HealthCheckDto(80, "/", 1.5, 0.3, 2),
        });
        var members = await SettledAsync("hc", 2);
        var healthy = members.Single(m => m.Name == "hc-1");
        var sick = members.Single(m => m.Name == "hc-2");
        var port = healthy.Forwards.Single(f => f.GuestPort == 80).HostPort;
        using var page = new TinyHttpServer(port); // only hc-1 answers on its forward
        await EventuallyAsync(async () => (await C.ListScalingEventsAsync("hc")).FirstOrDefault(e => e.Kind == "unhealthy" && e.Message.Contains("hc-2", StringComparison.Ordinal)),
            "hc-2 found unhealthy");
        var now = await C.ListScalingMembersAsync("hc");
        Assert.Contains(now, m => m.Id == healthy.Id && m.Health == "healthy");
        Assert.DoesNotContain(now, m => m.Id == sick.Id && m.Health != "draining"); // leaving: stopped, then deleted
        Assert.True(page.Requests > 0);
        await _cloud.WaitAsync(sick.Id, "deleted");
        Assert.Contains(await C.ListScalingMembersAsync("hc"), m => m.Name == "hc-3"); // its replacement
    }

    [Fact]
    public async Task ScheduledChange_AppliesAtItsTime()
    {
        var at = DateTimeOffset.UtcNow.AddSeconds(2);
        await C.CreateScalingGroupAsync(new CreateScalingGroupRequest("sched", "tiny", "tiny", 1, 2, 1)
        {
            Schedules = [new ScheduledChangeDto("morning", at, 3, null, 4)],
        });
        await SettledAsync("sched", 1);
        Assert.Equal(1, (await C.GetScalingGroupAsync("sched")).Desired); // not before its time
        await SettledAsync("sched", 3);
        Assert.True(DateTimeOffset.UtcNow >= at);
        var g = await C.GetScalingGroupAsync("sched");
        Assert.Equal(4, g.Max);
        Assert.True(g.Schedules.Single().Applied);
        Assert.Contains(g.Events, e => e.Kind == "schedule");
    }

    [Fact]
    public async Task Update_And_Delete_MembersRemovedGracefully_GroupGone()
    {
        await C.CreateScalingGroupAsync(Group("del", 1, 3, 1));
        await SettledAsync("del", 1);
        var updated = await C.UpdateScalingGroupAsync("del", new UpdateScalingGroupRequest(null, null, 2));
        Assert.Equal(2, updated.Desired);
        var members = await SettledAsync("del", 2);
        var serverGroup = updated.ServerGroupId;
        var gone = await C.DeleteScalingGroupAsync("del");
        Assert.Equal("deleting", gone.Status);
        await EventuallyAsync(async () =>
        {
            try
            {
                await C.GetScalingGroupAsync("del");
                return null;
            }
            catch (StratusApiException e) when (e.Status == 404)
            {
                return "gone";
            }
        }, "the group removed");
        foreach (var m in members)
        {
            await _cloud.WaitAsync(m.Id, "deleted");
            var actions = (await C.ListActionsAsync(m.Id)).Select(a => a.Action).ToList();
            Assert.True(actions.IndexOf("stop") >= 0 && actions.IndexOf("stop") < actions.IndexOf("delete"), string.Join(", ", actions));
        }
        Assert.Null(await _cloud.Store.FindGroupAsync(serverGroup, CancellationToken.None));
    }

    private static readonly (string What, string Body)[] BadCreates =
    [
        ("min above max", """{"name":"b","flavor":"tiny","image":"tiny","min":3,"max":2,"desired":2}"""),
        ("desired above max", """{"name":"b","flavor":"tiny","image":"tiny","min":0,"max":2,"desired":5}"""),
        ("no max", """{"name":"b","flavor":"tiny","image":"tiny","min":0,"desired":0}"""),
        ("unknown flavor and image", """{"name":"b","flavor":"nope","image":"nope","min":0,"max":1}"""),
        ("name too long", $$"""{"name":"{{new string('n', 61)}}","flavor":"tiny","image":"tiny","max":1}"""),
        ("policy threshold", """{"name":"b","flavor":"tiny","image":"tiny","max":2,"policies":[{"operator":"above","threshold":150,"adjustment":1}]}"""),
        ("policy operator", """{"name":"b","flavor":"tiny","image":"tiny","max":2,"policies":[{"operator":"sideways","threshold":50,"adjustment":0,"window_seconds":0}]}"""),
        ("health port", """{"name":"b","flavor":"tiny","image":"tiny","max":2,"health":{"port":0,"path":"nope"}}"""),
        ("schedule without time", """{"name":"b","flavor":"tiny","image":"tiny","max":2,"schedules":[{"name":"x","desired":1}]}"""),
        ("scale-in order", """{"name":"b","flavor":"tiny","image":"tiny","max":2,"scale_in":"oldest"}"""),
    ];

    [Fact]
    public async Task BadInput_Clear400_StoreUnchanged()
    {
        await C.CreateScalingGroupAsync(Group("keep", 0, 2, 0));
        var before = await _cloud.Store.DumpAsync(CancellationToken.None);
        foreach (var (what, body) in BadCreates)
        {
            var (status, problem) = await SendAsync("POST", "v1/scaling-groups", body);
            Assert.True(status == 400 && problem.Contains("validation_failed", StringComparison.Ordinal), $"{what}: {status} {problem}");
        }
        var (s2, p2) = await SendAsync("PATCH", "v1/scaling-groups/keep", """{"min":2,"max":1}""");
        Assert.Equal(400, s2);
        Assert.Contains("\"max\"", p2, StringComparison.Ordinal);
        var (s3, _) = await SendAsync("PATCH", "v1/scaling-groups/keep", """{"desired":3}""");
        Assert.Equal(400, s3);
        var (s4, _) = await SendAsync("PUT", "v1/scaling-groups/keep/policies", """{"policies":[{"operator":"above","threshold":-1,"adjustment":1}]}""");
        Assert.Equal(400, s4);
        var (s5, _) = await SendAsync("PATCH", "v1/scaling-groups/nope", """{"desired":1}""");
        Assert.Equal(404, s5);
        Assert.Equal(before, await _cloud.Store.DumpAsync(CancellationToken.None));
    }

    [Fact]
    public async Task BadInput_ReportsEveryErrorAtOnce()
    {
        var (status, body) = await SendAsync("POST", "v1/scaling-groups",
            """{"name":"b","flavor":"nope","image":"tiny","min":3,"max":2,"policies":[{"operator":"up","threshold":101,"adjustment":0}]}""");
        Assert.Equal(400, status);
        var errors = JsonDocument.Parse(body).RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("field").GetString()).ToList();
        Assert.Contains("flavor", errors);
        Assert.Contains("max", errors);
        Assert.Contains("policies[0].operator", errors);
        Assert.Contains("policies[0].threshold", errors);
        Assert.Contains("policies[0].adjustment", errors);
        Assert.DoesNotContain(await C.ListScalingGroupsAsync(), g => g.Name == "b");
    }

    private async Task<(int Status, string Body)> SendAsync(string method, string path, string body)
    {
        using var req = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var res = await _cloud.Http.SendAsync(req);
        return ((int)res.StatusCode, await res.Content.ReadAsStringAsync());
    }

    /// <summary>A page on 127.0.0.1:<c>port</c> answering 200 to every GET: stands in for a healthy guest's web server behind its forward.</summary>
    private sealed class TinyHttpServer : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private int _requests;

        public TinyHttpServer(int port)
        {
            _listener = new TcpListener(IPAddress.Loopback, port);
            _listener.Start();
            _ = AcceptAsync();
        }

        public int Requests => Volatile.Read(ref _requests);

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    using (client)
                    {
                        var stream = client.GetStream();
                        var buffer = new byte[4096];
                        var read = 0;
                        while (read < buffer.Length && !Encoding.ASCII.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal))
                        {
                            var n = await stream.ReadAsync(buffer.AsMemory(read));
                            if (n == 0)
                            {
                                return;
                            }
                            read += n;
                        }
                        Interlocked.Increment(ref _requests);
                        await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
                    }
                });
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
