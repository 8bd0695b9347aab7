namespace Stratus.Simulator.Engine;

/// <summary>
/// The simulator's virtual clock and future-event list. Events at the same time run in the order
/// they were scheduled (as CloudSim's future queue). Not thread-safe; one per run, never static.
/// </summary>
/// <typeparam name="T">Event payload.</typeparam>
public sealed class EventQueue<T>
{
    private readonly PriorityQueue<T, (double Time, long Seq)> _queue = new();
    private long _seq;

    /// <summary>Current virtual time in seconds.</summary>
    public double Now { get; private set; }

    /// <summary>Number of pending events.</summary>
    public int Count => _queue.Count;

    /// <summary>Schedules an event at an absolute time (never before <see cref="Now"/>).</summary>
    public void ScheduleAt(double time, T payload)
    {
        if (time < Now)
        {
            throw new ArgumentOutOfRangeException(nameof(time), "cannot schedule in the past");
        }
        _queue.Enqueue(payload, (time, _seq++));
    }

    /// <summary>Time of the next event, or +∞ when none.</summary>
    public double PeekTime() => _queue.TryPeek(out _, out var p) ? p.Time : double.PositiveInfinity;

    /// <summary>Removes the next event and advances the clock to it.</summary>
    public T Dequeue()
    {
        _queue.TryDequeue(out var payload, out var p);
        Now = p.Time;
        return payload!;
    }
}
