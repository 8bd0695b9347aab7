using System.Runtime.CompilerServices;

namespace Stratus.Scheduler.Consolidation;

/// <summary>
/// The statistics CloudSim's policies use (median, IQR, MAD, least-squares line), written to give
/// the same numbers as CloudSim's <c>MathUtil</c> and Apache Commons Math. Pure functions.
/// </summary>
public static class Statistics
{
    /// <summary>Median (average of the two middle values for an even count). Does not modify its input.</summary>
    public static double Median(ReadOnlySpan<double> data)
    {
        if (data.IsEmpty)
        {
            return double.NaN;
        }
        var sorted = data.ToArray();
        Array.Sort(sorted);
        return Percentile(sorted, 50);
    }

    /// <summary>Median absolute deviation from the median.</summary>
    public static double Mad(ReadOnlySpan<double> data)
    {
        if (data.IsEmpty)
        {
            return 0;
        }
        var median = Median(data);
        var dev = new double[data.Length];
        for (var i = 0; i < data.Length; i++)
        {
            dev[i] = Math.Abs(data[i] - median);
        }
        return Median(dev);
    }

    /// <summary>Interquartile range with CloudSim's index rule (round(0.25(n+1)) − 1 and round(0.75(n+1)) − 1).</summary>
    public static double Iqr(ReadOnlySpan<double> data)
    {
        var sorted = data.ToArray();
        Array.Sort(sorted);
        var q1 = (int)JavaRound(0.25 * (sorted.Length + 1)) - 1;
        var q3 = (int)JavaRound(0.75 * (sorted.Length + 1)) - 1;
        return sorted[q3] - sorted[q1];
    }

    /// <summary>
    /// Ordinary least squares of y against x = 1..n with Apache Commons Math's <c>SimpleRegression</c>
    /// update formulas. Returns (intercept, slope); NaN slope when x has no spread.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static (double Intercept, double Slope) LinearFit(ReadOnlySpan<double> y)
    {
        double sumX = 0, sumY = 0, sumXx = 0, sumXy = 0, xbar = 0, ybar = 0;
        long n = 0;
        for (var i = 0; i < y.Length; i++)
        {
            double x = i + 1;
            if (n == 0)
            {
                xbar = x;
                ybar = y[i];
            }
            else
            {
                var fact1 = 1.0 + n;
                var fact2 = n / (1.0 + n);
                var dx = x - xbar;
                var dy = y[i] - ybar;
                sumXx += dx * dx * fact2;
                sumXy += dx * dy * fact2;
                xbar += dx / fact1;
                ybar += dy / fact1;
            }
            sumX += x;
            sumY += y[i];
            n++;
        }
        if (n < 2 || Math.Abs(sumXx) < 10 * double.Epsilon)
        {
            return (double.NaN, double.NaN);
        }
        var slope = sumXy / sumXx;
        return ((sumY - (slope * sumX)) / n, slope);
    }

    /// <summary>Pearson correlation-based R² of y regressed on several predictors (least squares with intercept).</summary>
    /// <returns>R², or NaN when the system is singular or under-determined.</returns>
    public static double RSquared(double[] y, double[][] predictors)
    {
        var n = y.Length;
        var k = predictors.Length + 1;
        if (n <= k)
        {
            return double.NaN;
        }
        var xtx = new double[k, k];
        var xty = new double[k];
        var row = new double[k];
        for (var r = 0; r < n; r++)
        {
            row[0] = 1;
            for (var j = 1; j < k; j++)
            {
                row[j] = predictors[j - 1][r];
            }
            for (var a = 0; a < k; a++)
            {
                xty[a] += row[a] * y[r];
                for (var b = 0; b < k; b++)
                {
                    xtx[a, b] += row[a] * row[b];
                }
            }
        }
        var beta = Solve(xtx, xty);
        if (beta is null)
        {
            return double.NaN;
        }
        double mean = 0;
        for (var r = 0; r < n; r++)
        {
            mean += y[r];
        }
        mean /= n;
        double ssRes = 0, ssTot = 0;
        for (var r = 0; r < n; r++)
        {
            var pred = beta[0];
            for (var j = 1; j < k; j++)
            {
                pred += beta[j] * predictors[j - 1][r];
            }
            ssRes += (y[r] - pred) * (y[r] - pred);
            ssTot += (y[r] - mean) * (y[r] - mean);
        }
        return ssTot == 0 ? double.NaN : 1 - (ssRes / ssTot);
    }

    /// <summary>Java's <c>Math.round</c>: floor(x + 0.5).</summary>
    public static double JavaRound(double x) => Math.Floor(x + 0.5);

    private static double Percentile(double[] sorted, double p)
    {
        var n = sorted.Length;
        if (n == 1)
        {
            return sorted[0];
        }
        var pos = p * (n + 1) / 100;
        var fpos = Math.Floor(pos);
        var intPos = (int)fpos;
        var dif = pos - fpos;
        if (pos < 1)
        {
            return sorted[0];
        }
        if (pos >= n)
        {
            return sorted[n - 1];
        }
        var lower = sorted[intPos - 1];
        var upper = sorted[intPos];
        return lower + (dif * (upper - lower));
    }

    private static double[]? Solve(double[,] a, double[] b)
    {
        var n = b.Length;
        var m = (double[,])a.Clone();
        var x = (double[])b.Clone();
        for (var c = 0; c < n; c++)
        {
            var pivot = c;
            for (var r = c + 1; r < n; r++)
            {
                if (Math.Abs(m[r, c]) > Math.Abs(m[pivot, c]))
                {
                    pivot = r;
                }
            }
            if (Math.Abs(m[pivot, c]) < 1e-12)
            {
                return null;
            }
            if (pivot != c)
            {
                for (var j = 0; j < n; j++)
                {
                    (m[c, j], m[pivot, j]) = (m[pivot, j], m[c, j]);
                }
                (x[c], x[pivot]) = (x[pivot], x[c]);
            }
            for (var r = c + 1; r < n; r++)
            {
                var f = m[r, c] / m[c, c];
                for (var j = c; j < n; j++)
                {
                    m[r, j] -= f * m[c, j];
                }
                x[r] -= f * x[c];
            }
        }
        for (var r = n - 1; r >= 0; r--)
        {
            var s = x[r];
            for (var j = r + 1; j < n; j++)
            {
                s -= m[r, j] * x[j];
            }
            x[r] = s / m[r, r];
        }
        return x;
    }
}
