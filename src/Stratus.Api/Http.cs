using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Stratus.Controller;
using Stratus.Core.Wire;

namespace Stratus.Api;

/// <summary>Request parsing and RFC 7807 answers shared by every endpoint.</summary>
public static class Http
{
    /// <summary>Largest JSON body accepted, bytes.</summary>
    public const long MaxJsonBody = 1024 * 1024;

    public static IResult Problem(HttpContext ctx, Problem p) => Results.Json(
        new ProblemDto($"https://stratus.dev/errors/{p.Code}", p.Title, p.Status, p.Detail, p.Code, p.Errors, ctx.Request.Path),
        WireJson.Options, "application/problem+json", p.Status);

    public static IResult Json<T>(T value, int status = 200) => Results.Json(value, WireJson.Options, "application/json", status);

    public static IResult From<T>(HttpContext ctx, Outcome<T> o, Func<T, object> map, int status = 200) =>
        o.Ok ? Results.Json(map(o.Value!), WireJson.Options, "application/json", status) : Problem(ctx, o.Problem!);

    /// <summary>Reads a JSON body strictly: content type, size, syntax and unknown members are all checked.</summary>
    public static async Task<(T? Value, IResult? Error)> ReadAsync<T>(HttpContext ctx) where T : class
    {
        var type = ctx.Request.ContentType;
        if (type is null || !type.Split(';')[0].Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Problem(ctx, new Problem("unsupported_media_type", 415, "Unsupported media type", $"the body must be application/json (got '{type ?? "none"}')")));
        }
        if (ctx.Request.ContentLength > MaxJsonBody)
        {
            return (null, TooLarge(ctx));
        }
        var feature = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            feature.MaxRequestBodySize = MaxJsonBody;
        }
        try
        {
            var value = await JsonSerializer.DeserializeAsync<T>(ctx.Request.Body, WireJson.Options, ctx.RequestAborted);
            if (value is null)
            {
                return (null, Problem(ctx, new Problem("invalid_json", 400, "The body is not valid JSON", "the body must be a JSON object")));
            }
            return (value, null);
        }
        catch (JsonException e)
        {
            var detail = e.Path is { Length: > 1 } path ? $"at {path}: {Clean(e.Message)}" : Clean(e.Message);
            return (null, Problem(ctx, new Problem("invalid_json", 400, "The body is not valid JSON", detail)));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return (null, TooLarge(ctx));
        }
    }

    private static IResult TooLarge(HttpContext ctx) =>
        Problem(ctx, new Problem("body_too_large", 413, "The body is too large", $"at most {MaxJsonBody} bytes"));

    private static string Clean(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
