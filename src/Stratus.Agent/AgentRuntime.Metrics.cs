using Microsoft.Extensions.Logging;
using Stratus.Compute;
using Stratus.Protocol;

namespace Stratus.Agent;

// Resource-use sampling: a loop of its own, apart from the heartbeat, so a slow sample (QMP, /proc) never delays
// state reports. Only drivers that implement IMetricsSource are sampled; a failed sample or report is logged and the
// next tick tries again — metrics never stop the agent.
public sealed partial class AgentRuntime
{
    private Task _metricsLoop = Task.CompletedTask;

    private void StartMetrics(CancellationToken ct)
    {
        if (_driver is IMetricsSource source)
        {
            _metricsLoop = Task.Run(() => MetricsLoopAsync(source, ct), CancellationToken.None);
        }
    }

    private async Task StopMetricsAsync() => await _metricsLoop.ConfigureAwait(false);

    private async Task MetricsLoopAsync(IMetricsSource source, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.MetricsInterval, _time);
        try
        {
            do
            {
                try
                {
                    await ReportMetricsAsync(source, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    LogMetricsFailed(_log, e);
                }
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Takes one sample and sends it to the controller.</summary>
    private async Task ReportMetricsAsync(IMetricsSource source, CancellationToken ct)
    {
        var s = await source.SampleAsync(ct);
        var vms = new List<VmMetrics>(s.Vms.Count);
        foreach (var v in s.Vms)
        {
            vms.Add(new VmMetrics(v.Id, v.CpuPercent, v.MemoryUsedMib, v.DiskReadBytesPerSecond, v.DiskWriteBytesPerSecond, v.NetRxBytesPerSecond, v.NetTxBytesPerSecond));
        }
        await _controller.ReportMetricsAsync(new HostMetricsReport(HostId, s.At, s.CpuPercent, s.MemoryUsedMib, s.DiskUsedGib, vms), ct);
    }

    [LoggerMessage(5, LogLevel.Warning, "Sampling or reporting resource use failed; the next interval tries again")]
    private static partial void LogMetricsFailed(ILogger log, Exception e);
}
