using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Stratus.Controller.Billing;

/// <summary>
/// At start-up, checks the open usage intervals against the allocations ledger and repairs what it finds, from now
/// (servers that ran before metering existed get their first interval; anything else is logged as a warning).
/// </summary>
public sealed partial class MeteringReconciliation(BillingService billing, ILogger<MeteringReconciliation> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var result = await billing.ReconcileAsync(repair: true, cancellationToken);
        foreach (var d in result.Discrepancies)
        {
            LogRepaired(log, d.ServerId, d.Kind, d.Detail);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(60, LogLevel.Warning, "Metering: server {InstanceId} {Kind}: {Detail}; repaired from now")]
    private static partial void LogRepaired(ILogger log, string instanceId, string kind, string detail);
}
