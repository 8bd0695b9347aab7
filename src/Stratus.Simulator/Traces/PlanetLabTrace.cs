using System.Globalization;
using System.Runtime.CompilerServices;

namespace Stratus.Simulator.Traces;

/// <summary>One PlanetLab VM's CPU trace: utilisation fractions at 300 s steps.</summary>
/// <param name="Name">File name.</param>
/// <param name="Samples">289 values: the file's 288 percentages / 100, the last one repeated (as CloudSim's <c>UtilizationModelPlanetLabInMemory</c>).</param>
public sealed record PlanetLabVmTrace(string Name, double[] Samples);

/// <summary>
/// Reads a PlanetLab day folder (one file per VM, 288 integer percentages) in the order CloudSim
/// listed the files (<c>cloudsim_listFiles_order_&lt;day&gt;.txt</c>: "index name" per line) when that
/// file exists, else in ordinal name order.
/// </summary>
public static class PlanetLabTrace
{
    /// <summary>Samples per file.</summary>
    public const int SamplesPerDay = 288;

    /// <summary>Loads one day.</summary>
    /// <param name="dayDirectory">Folder holding the VM files.</param>
    /// <param name="orderFile">Optional listing order file.</param>
    /// <param name="maxVms">Read at most this many files (in order).</param>
    public static IReadOnlyList<PlanetLabVmTrace> LoadDay(string dayDirectory, string? orderFile = null, int? maxVms = null)
    {
        List<string> names;
        if (orderFile is not null && File.Exists(orderFile))
        {
            names = [];
            foreach (var line in File.ReadLines(orderFile))
            {
                // "index<TAB>name"; names may contain spaces.
                var tab = line.IndexOf('\t', StringComparison.Ordinal);
                var name = tab >= 0 ? line[(tab + 1)..] : line.Trim();
                if (name.Length > 0)
                {
                    names.Add(name);
                }
            }
            names = names.Where(n => File.Exists(Path.Combine(dayDirectory, n))).ToList();
        }
        else
        {
            names = Directory.GetFiles(dayDirectory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        }
        if (maxVms is { } max && names.Count > max)
        {
            names = names.Take(max).ToList();
        }
        var result = new PlanetLabVmTrace[names.Count];
        for (var i = 0; i < names.Count; i++)
        {
            result[i] = new PlanetLabVmTrace(names[i], ReadFile(Path.Combine(dayDirectory, names[i])));
        }
        return result;
    }

    /// <summary>Parses one VM file into 289 fractions.</summary>
    public static double[] ReadFile(string path)
    {
        var data = new double[SamplesPerDay + 1];
        var i = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (i >= SamplesPerDay)
            {
                break;
            }
            var t = line.Trim();
            if (t.Length == 0)
            {
                continue;
            }
            data[i++] = int.Parse(t, CultureInfo.InvariantCulture) / 100.0;
        }
        data[SamplesPerDay] = data[SamplesPerDay - 1];
        return data;
    }

    /// <summary>The per-time part of <see cref="UtilizationAt(double[], double, double)"/>, computed once for many VMs.</summary>
    public readonly record struct InterpolationPoint(bool Exact, int Index, int T1, int T2, double Denominator, double Offset)
    {
        /// <summary>Prepares the interpolation at a time.</summary>
        public static InterpolationPoint At(double time, double interval)
        {
            if (time % interval == 0)
            {
                return new InterpolationPoint(true, (int)time / (int)interval, 0, 0, 0, 0);
            }
            var t1 = (int)Math.Floor(time / interval);
            var t2 = (int)Math.Ceiling(time / interval);
            return new InterpolationPoint(false, 0, t1, t2, (t2 - t1) * interval, time - (t1 * interval));
        }
    }

    /// <summary>Utilisation at a prepared time; the same floating-point operations as <see cref="UtilizationAt(double[], double, double)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double UtilizationAt(double[] samples, in InterpolationPoint p)
    {
        if (p.Exact)
        {
            return samples[Math.Min(p.Index, samples.Length - 1)];
        }
        if (p.T2 >= samples.Length)
        {
            return samples[^1];
        }
        var u1 = samples[p.T1];
        var delta = (samples[p.T2] - u1) / p.Denominator;
        return u1 + (delta * p.Offset);
    }

    /// <summary>
    /// Utilisation at virtual time <paramref name="time"/> (s), linearly interpolated between samples
    /// exactly as CloudSim's <c>UtilizationModelPlanetLabInMemory.getUtilization</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double UtilizationAt(double[] samples, double time, double interval)
    {
        if (time % interval == 0)
        {
            return samples[Math.Min((int)time / (int)interval, samples.Length - 1)];
        }
        var t1 = (int)Math.Floor(time / interval);
        var t2 = (int)Math.Ceiling(time / interval);
        if (t2 >= samples.Length)
        {
            return samples[^1];
        }
        var u1 = samples[t1];
        var u2 = samples[t2];
        var delta = (u2 - u1) / ((t2 - t1) * interval);
        return u1 + (delta * (time - (t1 * interval)));
    }
}
