using System.Collections.Concurrent;
using System.Diagnostics;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Protocol;

namespace Stratus.Agent;

/// <summary>
/// The agent's half of resize: each phase goes to the driver's <see cref="IResizeDriver"/>. A cold resize or a revert
/// stops the VM, changes it and starts it again when it ran; the reconcile loop keeps away from the VM meanwhile (it
/// would otherwise "correct" the stop halfway).
/// </summary>
public sealed partial class AgentRuntime
{
    private readonly ConcurrentDictionary<InstanceId, byte> _resizing = new();

    public async Task<ResizeReport> ResizeAsync(ResizeOrder order, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(order);
        var driver = _driver as IResizeDriver
            ?? throw new AgentRequestException("resize_unsupported", $"the {_driver.Name} driver cannot resize VMs");
        var id = order.Id;
        var target = new VmResizeTarget(order.Vcpus, order.MemoryMib, order.DiskGib, order.MaxVcpus, order.MaxMemoryMib);
        if (!_resizing.TryAdd(id, 0))
        {
            throw new AgentRequestException("invalid_state", $"VM {id} is being resized already");
        }
        var sw = Stopwatch.StartNew();
        var restart = false;
        try
        {
            switch (order.Phase)
            {
                case ResizePhase.Live:
                    {
                        var o = await driver.ResizeLiveAsync(id, target, cancellationToken);
                        return new ResizeReport(true, o.GuestVerified, o.GuestCpus, o.GuestMemoryKib, o.GuestVisibleMs, o.Detail, Actual(o.Status));
                    }
                case ResizePhase.Cold:
                    {
                        restart = await StopForResizeAsync(id, cancellationToken);
                        var o = await driver.ResizeStoppedAsync(id, target, cancellationToken);
                        var status = restart ? await _driver.StartAsync(id, cancellationToken) : o.Status;
                        restart = false;
                        var detail = o.Detail.ToList();
                        detail.Insert(0, "stopped");
                        if (status.Power == PowerState.Running)
                        {
                            detail.Add("started with the new size");
                        }
                        return new ResizeReport(false, false, null, null, sw.ElapsedMilliseconds, detail, Actual(status));
                    }
                case ResizePhase.Confirm:
                    {
                        await driver.ConfirmResizeAsync(id, cancellationToken);
                        var status = await _driver.GetStatusAsync(id, cancellationToken) ?? throw new AgentRequestException("not_found", $"VM {id} does not exist on this host");
                        return new ResizeReport(false, false, null, null, sw.ElapsedMilliseconds, ["confirmed: the previous size is forgotten"], Actual(status));
                    }
                case ResizePhase.Revert:
                    {
                        restart = await StopForResizeAsync(id, cancellationToken);
                        await driver.RevertResizeAsync(id, cancellationToken);
                        var status = restart ? await _driver.StartAsync(id, cancellationToken) : (await _driver.GetStatusAsync(id, cancellationToken))!;
                        restart = false;
                        return new ResizeReport(false, false, null, null, sw.ElapsedMilliseconds, ["stopped", "previous size restored", .. status.Power == PowerState.Running ? new[] { "started with the previous size" } : []], Actual(status));
                    }
                default:
                    throw new AgentRequestException("invalid_spec", $"unknown resize phase {order.Phase}");
            }
        }
        catch (ComputeException e)
        {
            throw new AgentRequestException(e.Code, e.Message);
        }
        finally
        {
            if (restart)
            {
                // The change failed after the stop: the VM runs again at the size it had.
                try
                {
                    await _driver.StartAsync(id, CancellationToken.None);
                }
                catch (ComputeException)
                {
                }
            }
            _resizing.TryRemove(id, out _);
            Kick(id);
        }
    }

    /// <summary>Stops the VM for an offline change; true when it was running (or paused) and must be started again.</summary>
    private async Task<bool> StopForResizeAsync(InstanceId id, CancellationToken ct)
    {
        var status = await _driver.GetStatusAsync(id, ct) ?? throw new ComputeException("not_found", $"VM {id} does not exist on this host");
        if (status.Power is PowerState.Running or PowerState.Paused)
        {
            await _driver.StopAsync(id, _options.GracefulStopTimeout, ct);
            return true;
        }
        return false;
    }

    private ActualVm Actual(VmStatus s) =>
        new(s.Id, s.Power, s.Pid, [.. s.Forwards.Select(f => new ForwardSpec(f.HostPort, f.GuestPort))], AppliedReboot(s.Id), null, true) { HotPlugged = s.HotPlugged };
}
