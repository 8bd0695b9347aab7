namespace Stratus.Controller.Scaling;

/// <summary>Wakes the scaling loop early (a group was created or changed) instead of waiting out its check interval.</summary>
public sealed class ScalingSignal
{
    private readonly SemaphoreSlim _wake = new(0, 1);

    public void Signal()
    {
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

    /// <summary>Waits for a signal or <paramref name="timeout"/>; true when signalled.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _wake.WaitAsync(timeout, ct);
}
