using System.Collections.Immutable;
using System.Globalization;

namespace Stratus.Scheduler.Framework;

/// <summary>
/// Runs a <see cref="SchedulingProfile"/>: prepare plugins, filter (exactly, scanning from a
/// per-request offset until the profile's sample of feasible hosts is found), score the sample
/// with the weighted scorers, pick the best (ties: first in scan order), reserve, and return a
/// typed result with its <see cref="DecisionTrace"/>. Pure: reads only the snapshot it is given.
/// Thread-safe: concurrent calls use separate per-thread cycle states.
/// </summary>
public sealed class FrameworkPlacementEngine : IPlacementEngine
{
    // One reusable scratch per thread: decisions are synchronous and never re-enter, so a
    // thread-static buffer makes the hot path allocation-free apart from the result itself.
    [ThreadStatic]
    private static Scratch? _threadScratch;

    private const int MaxTraceTop = 32;

    private readonly SchedulingProfile _profile;

    public FrameworkPlacementEngine(SchedulingProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        _profile = profile;
    }

    /// <summary>The profile this engine runs.</summary>
    public SchedulingProfile Profile => _profile;

    public PlacementResult Place(PlacementRequest request, ClusterSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(snapshot);
        var s = _threadScratch ??= new Scratch();
        try
        {
            return PlaceCore(s, request, snapshot);
        }
        finally
        {
            // Do not keep the request and snapshot alive in the thread-static scratch after the decision.
            s.State.Forget();
        }
    }

    private PlacementResult PlaceCore(Scratch s, PlacementRequest request, ClusterSnapshot snapshot)
    {
        var state = s.State;
        state.Reset(request, snapshot);
        var hosts = snapshot.Hosts;
        var n = hosts.Length;
        var p = _profile;

        var filterCount = 0;
        s.EnsureFilters(p.Filters.Length);
        foreach (var f in p.Filters)
        {
            if (f.Prepare(state))
            {
                s.Filters[filterCount] = f;
                s.Removed[filterCount] = 0;
                filterCount++;
            }
        }
        var scorerCount = 0;
        s.EnsureScorers(p.Scorers.Length);
        foreach (var ws in p.Scorers)
        {
            if (ws.Weight != 0 && ws.Scorer.Prepare(state))
            {
                s.Scorers[scorerCount++] = ws;
            }
        }

        var limit = p.SampleSize <= 0 || p.SampleSize > n ? n : p.SampleSize;
        s.EnsureCandidates(limit);
        // Deterministic per request: spreads scans over the fleet without a random source; a retry shifts it by a large odd stride.
        var start = n == 0 ? 0 : (int)(((uint)request.InstanceId.GetHashCode() + ((ulong)(uint)request.Attempt * 2_654_435_761UL)) % (uint)n);
        var feasible = 0;
        var examined = 0;
        var filters = s.Filters;
        var removed = s.Removed;
        for (var k = 0; k < n && feasible < limit; k++)
        {
            var idx = start + k;
            if (idx >= n)
            {
                idx -= n;
            }
            var h = hosts[idx];
            state.HostIndex = idx;
            examined++;
            var pass = true;
            for (var f = 0; f < filterCount; f++)
            {
                if (!filters[f].Filter(state, h))
                {
                    removed[f]++;
                    pass = false;
                    break;
                }
            }
            if (pass)
            {
                s.CandidateIndex[feasible] = idx;
                s.Candidates[feasible] = h;
                feasible++;
            }
        }

        var steps = BuildSteps(s, filterCount, examined);
        if (feasible == 0)
        {
            var failTrace = new DecisionTrace(p.Name, examined, steps, [], 0) { FleetSize = n, SampleLimit = p.SampleSize };
            return Refuse(s, filterCount, state, hosts, failTrace);
        }

        var totals = s.Totals.AsSpan(0, feasible);
        totals.Clear();
        var raw = s.Raw.AsSpan(0, feasible);
        for (var c = 0; c < scorerCount; c++)
        {
            var ws = s.Scorers[c];
            for (var j = 0; j < feasible; j++)
            {
                state.HostIndex = s.CandidateIndex[j];
                raw[j] = ws.Scorer.Score(state, s.Candidates[j]);
            }
            if (ws.Scorer.NeedsNormalize)
            {
                ws.Scorer.Normalize(state, raw);
            }
            for (var j = 0; j < feasible; j++)
            {
                totals[j] += ws.Weight * raw[j];
            }
        }

        var top = TopCandidates(s, totals, p.TraceTop);
        var trace = new DecisionTrace(p.Name, examined, steps, top, feasible) { FleetSize = n, SampleLimit = p.SampleSize };
        var best = Best(totals, s.Excluded, feasible);
        if (p.Reservers.IsEmpty)
        {
            var h = s.Candidates[best];
            ClearCandidates(s, feasible);
            return new Placed(h.Id, h.Generation, trace);
        }
        return ReserveBest(s, state, totals, feasible, best, trace);
    }

    private PlacementResult ReserveBest(Scratch s, CycleState state, Span<double> totals, int feasible, int best, DecisionTrace trace)
    {
        var reservers = _profile.Reservers;
        var excluded = s.Excluded;
        Array.Clear(excluded, 0, feasible);
        while (best >= 0)
        {
            var h = s.Candidates[best];
            state.HostIndex = s.CandidateIndex[best];
            var done = 0;
            while (done < reservers.Length && reservers[done].Reserve(state, h))
            {
                done++;
            }
            if (done == reservers.Length)
            {
                ClearCandidates(s, feasible);
                return new Placed(h.Id, h.Generation, trace);
            }
            // As in the Kubernetes framework: a failed reserve unreserves every reserve plugin (Unreserve is idempotent).
            for (var r = reservers.Length - 1; r >= 0; r--)
            {
                reservers[r].Unreserve(state, h);
            }
            excluded[best] = true;
            best = Best(totals, excluded, feasible);
        }
        ClearCandidates(s, feasible);
        return new Unschedulable([$"{reservers.Length} reserve plugin(s) refused all {feasible} feasible hosts"], trace);
    }

    private static int Best(ReadOnlySpan<double> totals, bool[] excluded, int feasible)
    {
        var best = -1;
        var bestScore = double.NegativeInfinity;
        for (var j = 0; j < feasible; j++)
        {
            if (totals[j] > bestScore && !excluded[j])
            {
                bestScore = totals[j];
                best = j;
            }
        }
        return best;
    }

    private static ImmutableArray<ScoredHost> TopCandidates(Scratch s, ReadOnlySpan<double> totals, int k)
    {
        k = Math.Min(Math.Min(k, totals.Length), MaxTraceTop);
        if (k <= 0)
        {
            return [];
        }
        // Partial selection of the k best (k ≤ 32, so a stack buffer): O(feasible × k), no sort of the sample.
        Span<int> pick = stackalloc int[k];
        var count = 0;
        for (var j = 0; j < totals.Length; j++)
        {
            var pos = count;
            while (pos > 0 && totals[pick[pos - 1]] < totals[j])
            {
                pos--;
            }
            if (pos >= k)
            {
                continue;
            }
            var last = Math.Min(count, k - 1);
            for (var m = last; m > pos; m--)
            {
                pick[m] = pick[m - 1];
            }
            pick[pos] = j;
            if (count < k)
            {
                count++;
            }
        }
        var b = ImmutableArray.CreateBuilder<ScoredHost>(count);
        for (var i = 0; i < count; i++)
        {
            var h = s.Candidates[pick[i]];
            b.Add(new ScoredHost(h.Id, h.Name, Math.Round(totals[pick[i]], 6)));
        }
        return b.MoveToImmutable();
    }

    private static ImmutableArray<FilterStep> BuildSteps(Scratch s, int filterCount, int examined)
    {
        var b = ImmutableArray.CreateBuilder<FilterStep>(filterCount);
        var before = examined;
        for (var f = 0; f < filterCount; f++)
        {
            b.Add(new FilterStep(s.Filters[f].Name, before, s.Removed[f]));
            before -= s.Removed[f];
        }
        return b.MoveToImmutable();
    }

    // Drop references to host snapshots so the thread-static buffer does not keep old snapshots alive.
    private static void ClearCandidates(Scratch s, int feasible)
    {
        Array.Clear(s.Candidates, 0, feasible);
        Array.Clear(s.Excluded, 0, feasible);
    }

    private static PlacementResult Refuse(Scratch s, int filterCount, CycleState state, ImmutableArray<HostSnapshot> hosts, DecisionTrace trace)
    {
        if (hosts.Length == 0)
        {
            return new UnschedulableAndUnresolvable(["no hosts are registered"], trace);
        }
        // Failure path only: replay the filters over the whole fleet, remembering which hosts reached each one.
        var reached = new List<HostSnapshot>[filterCount];
        for (var f = 0; f < filterCount; f++)
        {
            reached[f] = [];
        }
        for (var i = 0; i < hosts.Length; i++)
        {
            state.HostIndex = i;
            for (var f = 0; f < filterCount; f++)
            {
                reached[f].Add(hosts[i]);
                if (!s.Filters[f].Filter(state, hosts[i]))
                {
                    break;
                }
            }
        }
        var reasons = ImmutableArray.CreateBuilder<string>();
        var unresolvable = true;
        for (var f = 0; f < filterCount; f++)
        {
            if (s.Removed[f] == 0)
            {
                continue;
            }
            var e = s.Filters[f].Explain(state, reached[f]);
            reasons.Add(e.Reason);
            unresolvable &= e.Unresolvable;
        }
        if (reasons.Count == 0)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"no host passed the filters ({hosts.Length} hosts)"));
            unresolvable = false;
        }
        return unresolvable
            ? new UnschedulableAndUnresolvable(reasons.ToImmutable(), trace)
            : new Unschedulable(reasons.ToImmutable(), trace);
    }

    private sealed class Scratch
    {
        public readonly CycleState State = new();
        public IFilterPlugin[] Filters = [];
        public int[] Removed = [];
        public WeightedScorer[] Scorers = [];
        public int[] CandidateIndex = [];
        public HostSnapshot[] Candidates = [];
        public double[] Totals = [];
        public double[] Raw = [];
        public bool[] Excluded = [];

        public void EnsureFilters(int n)
        {
            if (Filters.Length < n)
            {
                Filters = new IFilterPlugin[n];
                Removed = new int[n];
            }
        }

        public void EnsureScorers(int n)
        {
            if (Scorers.Length < n)
            {
                Scorers = new WeightedScorer[n];
            }
        }

        public void EnsureCandidates(int n)
        {
            if (Candidates.Length < n)
            {
                CandidateIndex = new int[n];
                Candidates = new HostSnapshot[n];
                Totals = new double[n];
                Raw = new double[n];
                Excluded = new bool[n];
            }
        }
    }
}
