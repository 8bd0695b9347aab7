using Stratus.Controller;
using Stratus.Controller.Identity;
using Stratus.Core.Identity;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api;

/// <summary>/v1/auth, /v1/projects, /v1/users: login, API keys, tenants, quotas, users and roles.</summary>
public static class IdentityEndpoints
{
    public static void Map(RouteGroupBuilder v1)
    {
        v1.MapPost("/auth/login", async (HttpContext ctx, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<LoginRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await identity.LoginAsync(req!, Caller.Source(ctx), ctx.RequestAborted);
            if (!o.Ok && o.Problem!.Status == 429)
            {
                ctx.Response.Headers.RetryAfter = "1";
            }
            return Http.From(ctx, o, t => t, 201);
        });
        v1.MapPost("/auth/logout", async (HttpContext ctx, IdentityService identity) =>
        {
            var p = Caller.Of(ctx);
            if (!p.IsSession)
            {
                return Http.Problem(ctx, Problem.Conflict("not_a_session", "this credential is an API key, not a login session; revoke it with DELETE /v1/auth/keys/{id} (stratus apikey revoke)"));
            }
            var o = await identity.RevokeAsync(p, p.CredentialId.ToString("D"), ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/auth/whoami", (HttpContext ctx) =>
        {
            var p = Caller.Of(ctx);
            return Http.Json(new WhoAmIDto(p.UserId.ToString("D"), p.UserName, p.ProjectId.ToString("D"), p.ProjectName, Name(p.Role), p.IsCloudAdmin,
                p.CredentialId.ToString("D"), p.ExpiresAt));
        });
        v1.MapGet("/auth/keys", async (HttpContext ctx, IdentityService identity) =>
            Http.Json(new ListDto<CredentialDto>(await identity.ListCredentialsAsync(Caller.Of(ctx), ctx.RequestAborted), null)));
        v1.MapPost("/auth/keys", async (HttpContext ctx, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<CreateApiKeyRequest>(ctx);
            return err ?? Http.From(ctx, await identity.CreateApiKeyAsync(Caller.Of(ctx), req!, ctx.RequestAborted), t => t, 201);
        });
        v1.MapDelete("/auth/keys/{id}", async (HttpContext ctx, string id, IdentityService identity) =>
        {
            var o = await identity.RevokeAsync(Caller.Of(ctx), id, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });

        // ---- projects and quotas
        v1.MapGet("/projects", async (HttpContext ctx, IStateStore store) =>
        {
            var p = Caller.Of(ctx);
            var all = await store.ListProjectsAsync(ctx.RequestAborted);
            return Http.Json(new ListDto<ProjectDto>([.. all.Where(x => CloudService.Owns(p.Scope, x.Id)).Select(ToDto)], null));
        });
        v1.MapPost("/projects", async (HttpContext ctx, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<CreateProjectRequest>(ctx);
            return err ?? Http.From(ctx, await identity.CreateProjectAsync(req!, ctx.RequestAborted), ToDto, 201);
        });
        v1.MapGet("/projects/{reference}", async (HttpContext ctx, string reference, IStateStore store) =>
            await store.FindProjectAsync(reference, ctx.RequestAborted) is { } p ? Http.Json(ToDto(p)) : Http.Problem(ctx, Problem.NotFound("project", reference)));
        v1.MapGet("/projects/{reference}/quota", async (HttpContext ctx, string reference, IStateStore store) =>
        {
            if (await store.FindProjectAsync(reference, ctx.RequestAborted) is not { } p)
            {
                return Http.Problem(ctx, Problem.NotFound("project", reference));
            }
            var u = await store.GetProjectUsageAsync(p.Id, ctx.RequestAborted);
            return Http.Json(new QuotaUsageDto(p.Name, ToDto(p.Quotas), new QuotasDto(u.Instances, u.Vcpus, u.RamMib, u.DiskGib, u.Snapshots, u.Backups)));
        });
        v1.MapPut("/projects/{reference}/quota", async (HttpContext ctx, string reference, IStateStore store, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<QuotasDto>(ctx);
            if (err is not null)
            {
                return err;
            }
            if (await store.FindProjectAsync(reference, ctx.RequestAborted) is not { } p)
            {
                return Http.Problem(ctx, Problem.NotFound("project", reference));
            }
            return Http.From(ctx, await identity.SetQuotasAsync(p, req!, ctx.RequestAborted), x => ToDto(x.Quotas));
        });

        // ---- audit log
        v1.MapGet("/audit", async (HttpContext ctx, IStateStore store) =>
        {
            var q = ctx.Request.Query;
            var errors = new List<FieldError>();
            long after = 0;
            var limit = 100;
            if (q.TryGetValue("after", out var a) && (!long.TryParse(a, out after) || after < 0))
            {
                errors.Add(new("after", "invalid", "must be a sequence number (0 or more)"));
            }
            if (q.TryGetValue("limit", out var l) && (!int.TryParse(l, out limit) || limit is < 1 or > 1000))
            {
                errors.Add(new("limit", "out_of_range", "must be an integer between 1 and 1000"));
            }
            errors.AddRange(q.Keys.Except(["after", "limit"]).Select(k => new FieldError(k, "unknown", "is not a known parameter")));
            if (errors.Count > 0)
            {
                return Http.Problem(ctx, Problem.Validation(errors));
            }
            var items = await store.ListAuditAsync(after, limit, ctx.RequestAborted);
            return Http.Json(new ListDto<AuditEntryDto>([.. items.Select(x => new AuditEntryDto(x.Seq, x.At, x.Actor, x.Project, x.Method, x.Route, x.Target, x.Status, x.Source, x.Hash))],
                items.Count == limit ? items[^1].Seq.ToString(System.Globalization.CultureInfo.InvariantCulture) : null));
        });
        v1.MapGet("/audit/verify", async (HttpContext ctx, AuditLog audit) =>
        {
            var v = await audit.VerifyAsync(ctx.RequestAborted);
            return Http.Json(new AuditVerifyDto(v.Ok, v.Entries, v.HeadHash, v.FirstBadSeq, v.Problem));
        });

        // ---- users and roles
        v1.MapGet("/users", async (HttpContext ctx, IStateStore store, IdentityService identity) =>
        {
            var p = Caller.Of(ctx);
            var users = await store.ListUsersAsync(ctx.RequestAborted);
            var members = p.IsCloudAdmin ? null : (await store.ListRolesAsync(null, p.ProjectId, ctx.RequestAborted)).Select(r => r.UserId).ToHashSet();
            var list = new List<UserDto>();
            foreach (var u in users.Where(u => members is null || members.Contains(u.Id)))
            {
                var dto = await identity.ToDtoAsync(u, ctx.RequestAborted);
                list.Add(p.IsCloudAdmin ? dto : dto with { Roles = [.. dto.Roles.Where(r => r.ProjectId == p.ProjectId.ToString("D"))] });
            }
            return Http.Json(new ListDto<UserDto>(list, null));
        });
        v1.MapPost("/users", async (HttpContext ctx, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<CreateUserRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await identity.CreateUserAsync(Caller.Of(ctx), req!, ctx.RequestAborted);
            return o.Ok ? Http.Json(await identity.ToDtoAsync(o.Value!, ctx.RequestAborted), 201) : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/users/{reference}", async (HttpContext ctx, string reference, IStateStore store, IdentityService identity) =>
        {
            var p = Caller.Of(ctx);
            if (await store.FindUserAsync(reference, ctx.RequestAborted) is not { } u)
            {
                return Http.Problem(ctx, Problem.NotFound("user", reference));
            }
            var dto = await identity.ToDtoAsync(u, ctx.RequestAborted);
            return Http.Json(p.IsCloudAdmin ? dto : dto with { Roles = [.. dto.Roles.Where(r => r.ProjectId == p.ProjectId.ToString("D"))] });
        });
        v1.MapPut("/users/{reference}/roles", async (HttpContext ctx, string reference, IdentityService identity) =>
        {
            var (req, err) = await Http.ReadAsync<RoleRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await identity.SetRoleAsync(Caller.Of(ctx), reference, req!, ctx.RequestAborted);
            return o.Ok ? Http.Json(await identity.ToDtoAsync(o.Value!, ctx.RequestAborted)) : Http.Problem(ctx, o.Problem!);
        });
    }

    private static string Name(Role r) => r.ToString().ToLowerInvariant();

    public static ProjectDto ToDto(Project p) => new(p.Id.ToString("D"), p.Name, ToDto(p.Quotas), p.CreatedAt);

    public static QuotasDto ToDto(Quotas q) => new(q.Instances, q.Vcpus, q.RamMib, q.DiskGib, q.Snapshots, q.Backups);
}
