using System.Collections.Concurrent;
using Stratus.Core.Ids;

namespace Stratus.Controller;

/// <summary>Wakes the reconciler and remembers which hosts' desired state changed.</summary>
public sealed class ReconcileSignal
{
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly ConcurrentDictionary<HostId, byte> _dirty = new();

    /// <summary>Signals work; <paramref name="host"/> (when known) gets its desired state pushed.</summary>
    public void Signal(HostId? host = null)
    {
        if (host is { } h)
        {
            _dirty[h] = 0;
        }
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _wake.WaitAsync(timeout, ct);

    /// <summary>Takes and clears the set of hosts to push.</summary>
    public List<HostId> TakeDirty()
    {
        var list = new List<HostId>();
        foreach (var k in _dirty.Keys)
        {
            if (_dirty.TryRemove(k, out _))
            {
                list.Add(k);
            }
        }
        return list;
    }
}
