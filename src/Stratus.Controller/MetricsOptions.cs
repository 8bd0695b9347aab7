using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>Start-up configuration of the metric time series kept by <see cref="MetricsService"/>.</summary>
public sealed class MetricsOptions
{
    /// <summary>How long raw samples are kept before they become one-minute points. Default 1 h; range 1 min–7 days.</summary>
    public TimeSpan RawRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long one-minute points (average and maximum) are kept before they become one-hour points. Default 1 day; longer than <see cref="RawRetention"/>, at most 90 days.</summary>
    public TimeSpan MinuteRetention { get; init; } = TimeSpan.FromDays(1);

    /// <summary>How long one-hour points are kept before they are deleted. Default 30 days; longer than <see cref="MinuteRetention"/>, at most 5 years.</summary>
    public TimeSpan HourRetention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>How often compaction runs. Default 1 min; range 1 s–1 h. Shorter spreads the work thinner, longer keeps raw rows a little past their retention.</summary>
    public TimeSpan CompactionInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The retention of every tier, as the store takes it.</summary>
    public MetricsRetention Retention => new(RawRetention, MinuteRetention, HourRetention);

    /// <summary>Throws for the first option out of range.</summary>
    public void Validate()
    {
        if (RawRetention < TimeSpan.FromMinutes(1) || RawRetention > TimeSpan.FromDays(7))
        {
            throw new ArgumentOutOfRangeException(nameof(RawRetention), "must be between 1 min and 7 days");
        }
        if (MinuteRetention <= RawRetention || MinuteRetention > TimeSpan.FromDays(90))
        {
            throw new ArgumentOutOfRangeException(nameof(MinuteRetention), "must be longer than RawRetention and at most 90 days");
        }
        if (HourRetention <= MinuteRetention || HourRetention > TimeSpan.FromDays(5 * 365))
        {
            throw new ArgumentOutOfRangeException(nameof(HourRetention), "must be longer than MinuteRetention and at most 5 years");
        }
        if (CompactionInterval < TimeSpan.FromSeconds(1) || CompactionInterval > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(CompactionInterval), "must be between 1 s and 1 h");
        }
    }
}
