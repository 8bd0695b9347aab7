using Microsoft.AspNetCore.Routing.Patterns;
using Stratus.Controller;
using Stratus.Controller.Identity;
using Stratus.Core.Identity;

namespace Stratus.Api;

/// <summary>What a route needs from its caller.</summary>
public enum Need
{
    /// <summary>No credential (health, login, the OpenAPI document; the agents' stream checks its own host tokens).</summary>
    Anyone,

    /// <summary>Any role in the caller's project: read that project's objects.</summary>
    Reader,

    /// <summary>member or admin in the caller's project: create and change that project's objects.</summary>
    Member,

    /// <summary>admin in the caller's project: its users and roles.</summary>
    ProjectAdmin,

    /// <summary>Any role in the admin project: read cloud-wide state (hosts, incidents, consolidation, energy).</summary>
    Operator,

    /// <summary>admin in the admin project: change the cloud (flavors, hosts, projects, quotas, migrations).</summary>
    CloudAdmin,
}

/// <summary>
/// Authorization, in one place: every route's need, written out. A route missing here is refused for
/// everyone (deny by default), and a test fails when a mapped route has no entry. Which objects a caller
/// sees within a route is the handler's part: other projects' objects answer 404, as if absent.
/// </summary>
public static class AccessPolicy
{
    public static readonly IReadOnlyDictionary<string, Need> Routes = new Dictionary<string, Need>(StringComparer.Ordinal)
    {
        ["GET /v1/health"] = Need.Anyone,
        ["GET /v1/openapi.json"] = Need.Anyone,
        ["POST /stratus.agent.v1.AgentChannel/Connect"] = Need.Anyone,

        // identity
        ["POST /v1/auth/login"] = Need.Anyone,
        ["POST /v1/auth/logout"] = Need.Reader,
        ["GET /v1/auth/whoami"] = Need.Reader,
        ["GET /v1/auth/keys"] = Need.Reader,
        ["POST /v1/auth/keys"] = Need.Reader,
        ["DELETE /v1/auth/keys/{id}"] = Need.Reader,
        ["GET /v1/projects"] = Need.Reader,
        ["POST /v1/projects"] = Need.CloudAdmin,
        ["GET /v1/projects/{reference}"] = Need.Reader,
        ["GET /v1/projects/{reference}/quota"] = Need.Reader,
        ["PUT /v1/projects/{reference}/quota"] = Need.CloudAdmin,
        ["GET /v1/users"] = Need.ProjectAdmin,
        ["POST /v1/users"] = Need.ProjectAdmin,
        ["GET /v1/users/{reference}"] = Need.ProjectAdmin,
        ["PUT /v1/users/{reference}/roles"] = Need.ProjectAdmin,

        // flavors: public ones for everyone, defined by cloud admins
        ["GET /v1/flavors"] = Need.Reader,
        ["POST /v1/flavors"] = Need.CloudAdmin,
        ["GET /v1/flavors/{reference}"] = Need.Reader,
        ["DELETE /v1/flavors/{reference}"] = Need.CloudAdmin,

        // images: registering a controller path is for cloud admins; tenants upload
        ["GET /v1/images"] = Need.Reader,
        ["POST /v1/images"] = Need.CloudAdmin,
        ["POST /v1/images/upload"] = Need.Member,
        ["GET /v1/images/{reference}"] = Need.Reader,
        ["DELETE /v1/images/{reference}"] = Need.Member,

        // servers
        ["GET /v1/servers"] = Need.Reader,
        ["POST /v1/servers"] = Need.Member,
        ["GET /v1/servers/{reference}"] = Need.Reader,
        ["DELETE /v1/servers/{reference}"] = Need.Member,
        ["POST /v1/servers/{reference}/actions"] = Need.Member,
        ["GET /v1/servers/{reference}/actions"] = Need.Reader,
        ["PUT /v1/servers/{reference}/ha"] = Need.Member,
        ["GET /v1/servers/{reference}/placement"] = Need.Operator,
        ["GET /v1/servers/{reference}/stats"] = Need.Reader,
        ["GET /v1/servers/{reference}/console"] = Need.Member,
        ["POST /v1/servers/{reference}/migrate"] = Need.CloudAdmin,
        ["POST /v1/servers/{reference}/migrate/abort"] = Need.CloudAdmin,
        ["POST /v1/servers/{reference}/resize"] = Need.Member,
        ["GET /v1/servers/{reference}/resize/plan"] = Need.Reader,
        ["POST /v1/servers/{reference}/resize/confirm"] = Need.Member,
        ["POST /v1/servers/{reference}/resize/revert"] = Need.Member,
        ["POST /v1/servers/{reference}/snapshots"] = Need.Member,
        ["GET /v1/servers/{reference}/snapshots"] = Need.Reader,
        ["POST /v1/servers/{reference}/snapshots/{name}/revert"] = Need.Member,
        ["DELETE /v1/servers/{reference}/snapshots/{name}"] = Need.Member,
        ["POST /v1/servers/{reference}/backups"] = Need.Member,
        ["GET /v1/backups"] = Need.Reader,
        ["GET /v1/backups/{reference}"] = Need.Reader,
        ["DELETE /v1/backups/{reference}"] = Need.Member,
        ["POST /v1/backups/{reference}/verify"] = Need.Member,
        ["GET /v1/servers/{reference}/backup-policy"] = Need.Reader,
        ["PUT /v1/servers/{reference}/backup-policy"] = Need.Member,
        ["POST /v1/backups/{reference}/restore"] = Need.Member,

        // server groups and keypairs: per project
        ["GET /v1/groups"] = Need.Reader,
        ["POST /v1/groups"] = Need.Member,
        ["GET /v1/groups/{reference}"] = Need.Reader,
        ["DELETE /v1/groups/{reference}"] = Need.Member,
        ["GET /v1/keypairs"] = Need.Reader,
        ["POST /v1/keypairs"] = Need.Member,
        ["GET /v1/keypairs/{reference}"] = Need.Reader,
        ["DELETE /v1/keypairs/{reference}"] = Need.Member,

        // scaling groups: per project; members are the project's servers
        ["GET /v1/scaling-groups"] = Need.Reader,
        ["POST /v1/scaling-groups"] = Need.Member,
        ["GET /v1/scaling-groups/{reference}"] = Need.Reader,
        ["PATCH /v1/scaling-groups/{reference}"] = Need.Member,
        ["DELETE /v1/scaling-groups/{reference}"] = Need.Member,
        ["GET /v1/scaling-groups/{reference}/policies"] = Need.Reader,
        ["PUT /v1/scaling-groups/{reference}/policies"] = Need.Member,
        ["GET /v1/scaling-groups/{reference}/members"] = Need.Reader,
        ["GET /v1/scaling-groups/{reference}/events"] = Need.Reader,

        // the physical cloud
        ["GET /v1/hosts"] = Need.Operator,
        ["GET /v1/hosts/{reference}"] = Need.Operator,
        ["GET /v1/hosts/{reference}/stats"] = Need.Operator,
        ["POST /v1/hosts/{reference}/maintenance"] = Need.CloudAdmin,
        ["POST /v1/hosts/{reference}/enable"] = Need.CloudAdmin,
        ["POST /v1/hosts/tokens"] = Need.CloudAdmin,
        ["PUT /v1/hosts/{reference}/traits"] = Need.CloudAdmin,
        ["GET /v1/aggregates"] = Need.Operator,
        ["POST /v1/aggregates"] = Need.CloudAdmin,
        ["GET /v1/aggregates/{reference}"] = Need.Operator,
        ["PATCH /v1/aggregates/{reference}"] = Need.CloudAdmin,
        ["DELETE /v1/aggregates/{reference}"] = Need.CloudAdmin,
        ["POST /v1/aggregates/{reference}/hosts"] = Need.CloudAdmin,
        ["DELETE /v1/aggregates/{reference}/hosts/{host}"] = Need.CloudAdmin,
        ["GET /v1/ha"] = Need.Operator,
        ["GET /v1/incidents"] = Need.Operator,
        ["GET /v1/incidents/{id}"] = Need.Operator,
        ["GET /v1/consolidation"] = Need.Operator,
        ["POST /v1/consolidation/pause"] = Need.CloudAdmin,
        ["POST /v1/consolidation/resume"] = Need.CloudAdmin,
        ["GET /v1/energy"] = Need.Operator,
        ["GET /v1/invoices"] = Need.Reader,
        ["GET /v1/usage"] = Need.Reader,
        ["GET /v1/usage/reconcile"] = Need.CloudAdmin,
        ["POST /v1/usage/reconcile"] = Need.CloudAdmin,
        ["GET /v1/prices"] = Need.Reader,
        ["GET /v1/prices/history"] = Need.Reader,
        ["PUT /v1/prices"] = Need.CloudAdmin,
        ["GET /v1/budgets"] = Need.Reader,
        ["PUT /v1/budgets"] = Need.ProjectAdmin,
        ["DELETE /v1/budgets"] = Need.ProjectAdmin,
        ["GET /v1/audit"] = Need.CloudAdmin,
        ["GET /v1/audit/verify"] = Need.CloudAdmin,
    };

    /// <summary>"METHOD /pattern" of a routed endpoint, or null for endpoints that are not routes (405/404 answers).</summary>
    public static string? KeyOf(Endpoint endpoint, string method) =>
        endpoint is RouteEndpoint { RoutePattern.RawText: { } raw } ? $"{method} {Normalize(raw)}" : null;

    private static string Normalize(string raw) => raw.StartsWith('/') ? raw : "/" + raw;

    /// <summary>Whether a caller with <paramref name="p"/> may use a route that needs <paramref name="need"/>.</summary>
    public static bool Allows(Need need, Principal p) => need switch
    {
        Need.Anyone or Need.Reader => true,
        Need.Member => p.Role >= Role.Member,
        Need.ProjectAdmin => p.Role == Role.Admin,
        Need.Operator => p.IsOperator,
        Need.CloudAdmin => p.IsCloudAdmin,
        _ => false,
    };
}

/// <summary>The caller of the current request, set by <see cref="AccessMiddleware"/>.</summary>
public static class Caller
{
    private static readonly object Key = new();

    /// <summary>The authenticated caller (routes that need one always have one).</summary>
    public static Principal Of(HttpContext ctx) => (Principal)ctx.Items[Key]!;

    public static Principal? TryOf(HttpContext ctx) => ctx.Items.TryGetValue(Key, out var p) ? p as Principal : null;

    internal static void Set(HttpContext ctx, Principal p) => ctx.Items[Key] = p;

    /// <summary>Where the request came from (for login throttling and the audit log).</summary>
    public static string Source(HttpContext ctx) => ctx.Connection.RemoteIpAddress?.ToString() ?? "local";
}

/// <summary>
/// Authenticates the bearer credential and applies <see cref="AccessPolicy"/> to the chosen route:
/// 401 without a valid credential, 403 without the role, 403 for a route without a policy.
/// </summary>
public sealed class AccessMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext ctx, IdentityService identity)
    {
        var endpoint = ctx.GetEndpoint();
        if (endpoint is null)
        {
            await next(ctx); // no route: 404 (or 405) follows, nothing to protect
            return;
        }
        var key = AccessPolicy.KeyOf(endpoint, ctx.Request.Method);
        if (key is null)
        {
            await next(ctx);
            return;
        }
        if (!AccessPolicy.Routes.TryGetValue(key, out var need))
        {
            await Deny(ctx, 403, "forbidden", "Forbidden", "this route has no access policy, so it is refused");
            return;
        }
        var secret = Bearer(ctx);
        Principal? principal = null;
        if (secret is not null)
        {
            principal = await identity.AuthenticateAsync(secret, ctx.RequestAborted);
        }
        if (principal is not null)
        {
            Caller.Set(ctx, principal);
        }
        if (need == Need.Anyone)
        {
            await next(ctx);
            return;
        }
        if (principal is null)
        {
            ctx.Response.Headers.WWWAuthenticate = secret is null ? "Bearer" : "Bearer error=\"invalid_token\"";
            await Deny(ctx, 401, "unauthorized", "Authentication required",
                secret is null ? "send 'Authorization: Bearer <token>' (stratus login, or an API key)" : "the token is invalid, expired or revoked");
            return;
        }
        if (!AccessPolicy.Allows(need, principal))
        {
            await Deny(ctx, 403, "forbidden", "Forbidden", $"this needs {Describe(need)}; you are {principal.Role.ToString().ToLowerInvariant()} in project '{principal.ProjectName}'");
            return;
        }
        await next(ctx);
    }

    private static string Describe(Need need) => need switch
    {
        Need.Member => "the member or admin role",
        Need.ProjectAdmin => "the admin role in your project",
        Need.Operator => "a role in the admin project",
        Need.CloudAdmin => "the admin role in the admin project",
        _ => "a role",
    };

    private static string? Bearer(HttpContext ctx)
    {
        var h = ctx.Request.Headers.Authorization.ToString();
        return h.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? h[7..].Trim() : h.Length > 0 ? h : null;
    }

    private static Task Deny(HttpContext ctx, int status, string code, string title, string detail) =>
        Http.Problem(ctx, new Problem(code, status, title, detail)).ExecuteAsync(ctx);
}

/// <summary>
/// Tenant isolation of object routes, in one place: the <c>{reference}</c> of a server, backup, keypair,
/// group, scaling group, project or user route is resolved within the caller's project (cloud admins: every project)
/// and replaced by the object's id, so the handler acts on exactly that object; an object of another
/// project answers 404, the same as one that does not exist.
/// </summary>
public sealed class ScopeMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext ctx, CloudService cloud, Storage.IStateStore store, Controller.Scaling.ScalingService scaling)
    {
        if (ctx.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } raw } && Caller.TryOf(ctx) is { } p
            && ctx.Request.RouteValues.TryGetValue("reference", out var value) && value is string reference)
        {
            var ct = ctx.RequestAborted;
            var kind = raw.TrimStart('/').Split('/') is { Length: > 1 } parts ? parts[1] : "";
            string? id = kind switch
            {
                "servers" => (await cloud.ResolveServerAsync(reference, p.Scope, p.ProjectId, ct))?.Id.ToString(),
                "backups" => Guid.TryParse(reference, out var b) && await store.GetBackupAsync(b, ct) is { } backup
                    && await store.GetInstanceAsync(backup.InstanceId, ct) is { } owner && CloudService.Owns(p.Scope, owner.ProjectId) ? reference : null,
                "keypairs" => await store.FindKeypairAsync(reference, ct) is { } k && CloudService.Owns(p.Scope, k.ProjectId) ? k.Id.ToString("D") : null,
                "groups" => await store.FindGroupAsync(reference, ct) is { } g && CloudService.Owns(p.Scope, g.ProjectId) ? g.Id.ToString("D") : null,
                "scaling-groups" => (await scaling.ResolveAsync(reference, p, ct))?.Id.ToString("D"),
                "projects" => await store.FindProjectAsync(reference, ct) is { } pr && CloudService.Owns(p.Scope, pr.Id) ? pr.Id.ToString("D") : null,
                "users" => await VisibleUserAsync(store, p, reference, raw, ct),
                _ => reference,
            };
            if (id is null)
            {
                var what = kind switch { "groups" => "server group", "scaling-groups" => "scaling group", "users" => "user", _ => kind.TrimEnd('s') };
                await Http.Problem(ctx, Problem.NotFound(what, reference)).ExecuteAsync(ctx);
                return;
            }
            ctx.Request.RouteValues["reference"] = id;
        }
        await next(ctx);
    }

    /// <summary>Project admins see the users with a role in their project (and may give a role to any user by name).</summary>
    private static async Task<string?> VisibleUserAsync(Storage.IStateStore store, Principal p, string reference, string route, CancellationToken ct)
    {
        var u = await store.FindUserAsync(reference, ct);
        if (u is null)
        {
            return null;
        }
        if (p.IsCloudAdmin || route.EndsWith("/roles", StringComparison.Ordinal))
        {
            return u.Id.ToString("D");
        }
        return (await store.ListRolesAsync(u.Id, p.ProjectId, ct)).Count > 0 ? u.Id.ToString("D") : null;
    }
}

/// <summary>
/// Appends every state-changing request (POST, PUT, PATCH, DELETE — refused ones too) to the audit log:
/// who, what (method and route), target, result (status), source address.
/// </summary>
public sealed partial class AuditMiddleware(RequestDelegate next, ILogger<AuditMiddleware> log)
{
    public async Task InvokeAsync(HttpContext ctx, Storage.IStateStore store, TimeProvider time)
    {
        var method = ctx.Request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method)
            || ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
        {
            await next(ctx);
            return;
        }
        var status = 500;
        try
        {
            await next(ctx);
            status = ctx.Response.StatusCode;
        }
        finally
        {
            var route = ctx.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } raw } ? raw : ctx.Request.Path.ToString();
            var target = ctx.Request.RouteValues.TryGetValue("reference", out var r) ? r as string
                : ctx.Request.RouteValues.TryGetValue("id", out var i) ? i as string : null;
            var p = Caller.TryOf(ctx);
            try
            {
                await store.AppendAuditAsync(time.GetUtcNow(), p?.Actor ?? "anonymous", p?.ProjectId.ToString("D"), method, route[..Math.Min(route.Length, 512)],
                    target?[..Math.Min(target.Length, 256)], status, Caller.Source(ctx), CancellationToken.None);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogAuditFailed(log, e, method, route);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "could not append {Method} {Route} to the audit log")]
    private static partial void LogAuditFailed(ILogger logger, Exception e, string method, string route);
}
