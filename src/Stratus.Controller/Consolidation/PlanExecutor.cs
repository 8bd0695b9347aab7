using Microsoft.Extensions.Logging;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller.Consolidation;

/// <summary>One move of a plan in the controller's terms.</summary>
public sealed record PlannedMove(InstanceId Server, string ServerName, HostId From, HostId To, string Reason);

/// <summary>What applying a plan did.</summary>
public sealed record ExecutionResult(int Started, int Finished, int Failed, int Skipped, IReadOnlyList<ConsolidationDecisionDto> Decisions, IReadOnlyList<InstanceId> Moved);

/// <summary>Starts live migrations and says when they are done (the <see cref="Migrator"/>; a fake in tests).</summary>
public interface IMigrationStarter
{
    /// <summary>Starts moving a running server to a named host; a refusal is a problem, not an exception.</summary>
    Task<Outcome<Instance>> StartAsync(InstanceId server, HostId to, CancellationToken cancellationToken);

    /// <summary>Completes when the server's migration (if any) has finished or rolled back.</summary>
    Task WhenDoneAsync(InstanceId server);
}

/// <summary>The <see cref="Migrator"/> as the executor uses it.</summary>
public sealed class MigratorStarter(Migrator migrator) : IMigrationStarter
{
    public Task<Outcome<Instance>> StartAsync(InstanceId server, HostId to, CancellationToken cancellationToken) =>
        migrator.StartAsync(server.ToString(), new MigrateRequest(to.ToString(), true, null, null, null, null), "consolidation", cancellationToken);

    public Task WhenDoneAsync(InstanceId server) => migrator.WhenDoneAsync(server);
}

/// <summary>
/// Applies a consolidation plan through live migration: a move starts only while its source and destination are
/// <c>up</c>, the server is active with no task and still on the source, fewer than
/// <see cref="ControllerOptions.MaxMigrationsPerHost"/> migrations touch either host and fewer than
/// <see cref="ConsolidationOptions.MaxConcurrentMigrations"/> run in the cloud (migrations started by anyone count,
/// read from the store). Moves held back by a limit wait for a running one to finish; moves not started within
/// <see cref="ConsolidationOptions.PlanTimeout"/> are dropped (the next pass re-plans). Started migrations keep their
/// own phase and whole-migration timeouts and roll back on failure.
/// </summary>
public sealed partial class PlanExecutor(
    IStateStore store, IMigrationStarter migrations, ControllerOptions controller, ConsolidationOptions options, TimeProvider time, ILogger<PlanExecutor> log)
{
    /// <summary>How often limits are re-checked while moves wait.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    public async Task<ExecutionResult> ExecuteAsync(IReadOnlyList<PlannedMove> moves, CancellationToken ct)
    {
        var decisions = new List<ConsolidationDecisionDto>();
        var moved = new List<InstanceId>();
        int started = 0, finished = 0, failed = 0, skipped = 0;
        var pending = new List<PlannedMove>(moves);
        var running = new Dictionary<InstanceId, (PlannedMove Move, Task Done)>();
        var deadline = time.GetUtcNow() + options.PlanTimeout;
        while (pending.Count > 0 || running.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            foreach (var (id, (move, done)) in running.Where(r => r.Value.Done.IsCompleted).ToList())
            {
                running.Remove(id);
                var after = await store.GetInstanceAsync(id, ct);
                if (after?.HostId == move.To)
                {
                    finished++;
                    moved.Add(id);
                    decisions.Add(new("finished", move.ServerName, move.From.ToString(), move.To.ToString(), "migrated"));
                }
                else
                {
                    failed++;
                    var why = (await store.ListActionsAsync(id, ct)).LastOrDefault(a => a.Action == "live-migrate")?.Message ?? "rolled back";
                    decisions.Add(new("failed", move.ServerName, move.From.ToString(), move.To.ToString(), why));
                }
            }
            if (time.GetUtcNow() >= deadline)
            {
                foreach (var m in pending)
                {
                    skipped++;
                    decisions.Add(new("skip", m.ServerName, m.From.ToString(), m.To.ToString(), $"not started within the plan timeout ({options.PlanTimeout.TotalSeconds:0} s)"));
                }
                foreach (var (move, _) in running.Values)
                {
                    decisions.Add(new("running", move.ServerName, move.From.ToString(), move.To.ToString(), "still migrating at the plan timeout; it finishes or rolls back on its own"));
                }
                pending.Clear();
                break;
            }
            if (pending.Count > 0)
            {
                var hosts = (await store.ListHostsAsync(ct)).ToDictionary(h => h.Id);
                var inFlight = (await store.ListMigrationsAsync(ct)).ToList();
                foreach (var m in pending.ToList())
                {
                    var skip = await WhyNotAsync(m, hosts, ct);
                    if (skip is not null)
                    {
                        pending.Remove(m);
                        skipped++;
                        decisions.Add(new("skip", m.ServerName, m.From.ToString(), m.To.ToString(), skip));
                        continue;
                    }
                    if (inFlight.Count >= options.MaxConcurrentMigrations)
                    {
                        break;
                    }
                    if (Touching(inFlight, m.From) >= controller.MaxMigrationsPerHost || Touching(inFlight, m.To) >= controller.MaxMigrationsPerHost)
                    {
                        continue; // waits for a migration on one of its hosts to finish
                    }
                    pending.Remove(m);
                    var o = await migrations.StartAsync(m.Server, m.To, ct);
                    if (!o.Ok)
                    {
                        if (o.Problem!.Code == "too_many_migrations")
                        {
                            pending.Add(m); // someone else started one meanwhile: try again later
                            continue;
                        }
                        failed++;
                        decisions.Add(new("failed", m.ServerName, m.From.ToString(), m.To.ToString(), $"{o.Problem.Code}: {o.Problem.Detail}"));
                        LogMoveRefused(log, m.Server, o.Problem.Code);
                        continue;
                    }
                    started++;
                    inFlight.Add(new MigrationRecord(m.Server, m.From, m.To, "live", o.Value!.Resources, time.GetUtcNow()));
                    running[m.Server] = (m, migrations.WhenDoneAsync(m.Server));
                    decisions.Add(new("migrate", m.ServerName, m.From.ToString(), m.To.ToString(), m.Reason));
                }
            }
            if (pending.Count > 0 || running.Count > 0)
            {
                var wait = Task.Delay(PollInterval, time, ct);
                await Task.WhenAny(running.Values.Select(r => r.Done).Append(wait));
            }
        }
        return new ExecutionResult(started, finished, failed, skipped, decisions, moved);
    }

    private static int Touching(List<MigrationRecord> inFlight, HostId h) => inFlight.Count(r => r.Source == h || r.Destination == h);

    /// <summary>Why a move must not be attempted now (null when it may).</summary>
    private async Task<string?> WhyNotAsync(PlannedMove m, Dictionary<HostId, Host> hosts, CancellationToken ct)
    {
        foreach (var h in new[] { m.From, m.To })
        {
            if (!hosts.TryGetValue(h, out var host))
            {
                return $"host {h} no longer exists";
            }
            if (host.State != HostState.Up)
            {
                return $"host {host.Name} is {Names.Of(host.State)}";
            }
        }
        var inst = await store.GetInstanceAsync(m.Server, ct);
        if (inst is null || inst.VmState == VmState.Deleted)
        {
            return "server deleted";
        }
        if (inst.Task is { } task)
        {
            return $"server busy ({Names.Of(task)})";
        }
        if (inst.VmState != VmState.Active)
        {
            return $"server is {Names.Of(inst.VmState)}";
        }
        return inst.HostId != m.From ? "server moved since the plan was made" : null;
    }

    [LoggerMessage(70, LogLevel.Information, "Consolidation move of server {InstanceId} refused: {Code}")]
    private static partial void LogMoveRefused(ILogger log, InstanceId instanceId, string code);
}
