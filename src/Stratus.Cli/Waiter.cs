using Stratus.Client;
using Stratus.Core.Wire;

namespace Stratus.Cli;

/// <summary>`--wait`: shows progress on stderr until a server settles in the expected state, or fails.</summary>
public static class Waiter
{
    public static async Task<ServerDto> WaitAsync(StratusClient c, string id, string target, CancellationToken ct, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(10));
        string? last = null;
        ServerDto? s = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                s = await c.GetServerAsync(id, ct);
            }
            catch (StratusApiException e) when (e.Status == 404 && target == "deleted")
            {
                Console.Error.WriteLine($"{id}: deleted");
                return s! with { VmState = "deleted", Task = null };
            }
            var now = s.Task is null ? s.VmState : $"{s.VmState} ({s.Task})";
            if (now != last)
            {
                Console.Error.WriteLine($"{s.Name}: {now}");
                last = now;
            }
            if (s.Task is null && s.VmState == target)
            {
                return s;
            }
            if (s.Task is null && s.VmState == "error")
            {
                throw new StratusApiException(0, "server_error", $"server {s.Name} went to error: {s.Fault}");
            }
            await Task.Delay(200, ct);
        }
        throw new StratusApiException(0, "timeout", $"server {s?.Name ?? id} did not become {target} in time (now {last})");
    }
}
