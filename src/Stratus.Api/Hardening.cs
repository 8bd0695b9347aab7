using System.Security.Cryptography.X509Certificates;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Stratus.Controller;

namespace Stratus.Api;

/// <summary>Rate limits, security headers and TLS for the API.</summary>
public static class Hardening
{
    /// <summary>
    /// One token bucket per user (per source address without a credential): <see cref="StratusdOptions.RateLimit"/>
    /// requests per second, bursts up to <see cref="StratusdOptions.RateBurst"/>; beyond, 429 with Retry-After.
    /// Health checks and the agents' stream are not limited.
    /// </summary>
    public static void AddRateLimits(IServiceCollection services, StratusdOptions options)
    {
        if (options.RateLimit <= 0)
        {
            return;
        }
        var perSecond = Math.Max(1, (int)Math.Round(options.RateLimit / 10));
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = 429;
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(ctx =>
            {
                if (ctx.Request.Path.StartsWithSegments("/v1/health") || ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
                {
                    return RateLimitPartition.GetNoLimiter("exempt");
                }
                var key = Caller.TryOf(ctx) is { } p ? "user:" + p.UserId.ToString("N") : "addr:" + Caller.Source(ctx);
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = options.RateBurst,
                    TokensPerPeriod = perSecond,
                    ReplenishmentPeriod = TimeSpan.FromMilliseconds(100),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                context.HttpContext.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await Http.Problem(context.HttpContext, new Problem("rate_limited", 429, "Too many requests",
                    $"at most {options.RateLimit:0.#} requests per second (bursts of {options.RateBurst}); retry after {retry} s")).ExecuteAsync(context.HttpContext);
            };
        });
    }

    /// <summary>Headers every answer carries: no sniffing, no framing, no referrer, no caching of API answers; HSTS under TLS.</summary>
    public static Func<HttpContext, RequestDelegate, Task> SecurityHeaders(StratusdOptions options) => (ctx, next) =>
    {
        var h = ctx.Response.Headers;
        h.XContentTypeOptions = "nosniff";
        h.XFrameOptions = "DENY";
        h["Referrer-Policy"] = "no-referrer";
        h.ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
        h.CacheControl = "no-store";
        h["Cross-Origin-Resource-Policy"] = "same-origin";
        if (options.TlsCert is not null)
        {
            h.StrictTransportSecurity = "max-age=31536000";
        }
        return next(ctx);
    };

    /// <summary>The controller's certificate (PEM certificate and key), or null without TLS.</summary>
    public static X509Certificate2? Certificate(StratusdOptions options)
    {
        if (options.TlsCert is null || options.TlsKey is null)
        {
            return null;
        }
        using var pem = X509Certificate2.CreateFromPemFile(options.TlsCert, options.TlsKey);
        // Kestrel needs the key in a form the platform's TLS stack can use: round-trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }
}
