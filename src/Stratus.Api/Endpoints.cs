using System.Reflection;
using Stratus.Controller;
using Stratus.Controller.Identity;
using Stratus.Core.Identity;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Lifecycle;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api;

/// <summary>The native /v1 REST API. Handlers are thin: parse, call the controller, map.</summary>
public static class Endpoints
{
    private static readonly string Version = typeof(Endpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    public static void Map(WebApplication app)
    {
        var v1 = app.MapGroup("/v1");
        IdentityEndpoints.Map(v1);
        ScalingEndpoints.Map(v1);

        v1.MapGet("/health", async (IStateStore store, AgentHub hub, Reconciler rec, ControllerOptions co, StratusdOptions so, ListenEndpoints le, CancellationToken ct) =>
        {
            var hosts = await store.ListHostsAsync(ct);
            var up = hosts.Count(h => h.State == HostState.Up);
            var connected = hub.ConnectedHosts.Count;
            var ready = connected >= co.ExpectedHosts && hub.CompleteHosts >= co.ExpectedHosts && rec.Passes > 0;
            return Http.Json(new HealthDto("ok", Version, hosts.Count, up, co.ExpectedHosts, ready, so.Driver)
            {
                AgentEndpoint = le.AgentUrl,
                AgentSocket = le.AgentSocket,
                HostsConnected = connected,
            });
        });

        // ---- flavors
        v1.MapGet("/flavors", async (HttpContext ctx, IStateStore store, CancellationToken ct) =>
            Http.Json(new ListDto<FlavorDto>((await store.ListFlavorsAsync(ct)).Where(f => CloudService.FlavorVisible(f, Caller.Of(ctx).Scope)).Select(f => f.ToDto()).ToList(), null)));
        v1.MapPost("/flavors", async (HttpContext ctx, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<CreateFlavorRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.CreateFlavorAsync(req!, ctx.RequestAborted), f => f.ToDto(), 201);
        });
        v1.MapGet("/flavors/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var o = await cloud.GetFlavorAsync(reference, ctx.RequestAborted);
            return o.Ok && !CloudService.FlavorVisible(o.Value!, Caller.Of(ctx).Scope)
                ? Http.Problem(ctx, Problem.NotFound("flavor", reference))
                : Http.From(ctx, o, f => f.ToDto());
        });
        v1.MapDelete("/flavors/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var o = await cloud.DeleteFlavorAsync(reference, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });

        // ---- images
        v1.MapGet("/images", async (HttpContext ctx, IStateStore store, CancellationToken ct) =>
            Http.Json(new ListDto<ImageDto>((await store.ListImagesAsync(ct)).Where(i => CloudService.ImageVisible(i, Caller.Of(ctx).Scope)).Select(i => i.ToDto()).ToList(), null)));
        v1.MapPost("/images", async (HttpContext ctx, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<CreateImageRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.RegisterImageAsync(req!, ctx.RequestAborted), i => i.ToDto(), 201);
        });
        v1.MapPost("/images/upload", async (HttpContext ctx, ImageStore images) =>
        {
            var type = ctx.Request.ContentType?.Split(';')[0].Trim();
            if (!string.Equals(type, "application/octet-stream", StringComparison.OrdinalIgnoreCase))
            {
                return Http.Problem(ctx, new Problem("unsupported_media_type", 415, "Unsupported media type", "upload the image as application/octet-stream"));
            }
            if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = images.MaxBytes;
            }
            var q = ctx.Request.Query;
            var o = await images.ImportAsync(q["name"], ctx.Request.Body, ctx.Request.ContentLength, q["filename"], q["disk_format"], ctx.RequestAborted, Caller.Of(ctx).ProjectId);
            return Http.From(ctx, o, i => i.ToDto(), 201);
        });
        v1.MapGet("/images/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var o = await cloud.GetImageAsync(reference, ctx.RequestAborted);
            return o.Ok && !CloudService.ImageVisible(o.Value!, Caller.Of(ctx).Scope)
                ? Http.Problem(ctx, Problem.NotFound("image", reference))
                : Http.From(ctx, o, i => i.ToDto());
        });
        v1.MapDelete("/images/{reference}", async (HttpContext ctx, string reference, CloudService cloud, ImageStore images) =>
        {
            var found = await cloud.GetImageAsync(reference, ctx.RequestAborted);
            var scope = Caller.Of(ctx).Scope;
            if (found.Ok && !CloudService.ImageVisible(found.Value!, scope))
            {
                return Http.Problem(ctx, Problem.NotFound("image", reference));
            }
            if (found.Ok && !CloudService.Owns(scope, found.Value!.ProjectId))
            {
                return Http.Problem(ctx, new Problem("forbidden", 403, "Forbidden", $"image '{found.Value.Name}' is public and belongs to another project"));
            }
            var o = await cloud.DeleteImageAsync(reference, ctx.RequestAborted);
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            images.RemoveFile(found.Value);
            return Results.NoContent();
        });

        // ---- servers
        v1.MapGet("/servers", async (HttpContext ctx, IStateStore store) =>
        {
            var q = ctx.Request.Query;
            var errors = new List<FieldError>();
            var limit = 100;
            if (q.TryGetValue("limit", out var l) && (!int.TryParse(l, out limit) || limit is < 1 or > 1000))
            {
                errors.Add(new("limit", "out_of_range", "must be an integer between 1 and 1000"));
            }
            string? marker = q["marker"];
            if (marker is not null && !Guid.TryParse(marker, out _))
            {
                errors.Add(new("marker", "invalid", "must be a server id"));
            }
            VmState? state = null;
            if (q["state"] is { Count: > 0 } s && (state = Names.ParseVmState(s)) is null)
            {
                errors.Add(new("state", "invalid", "must be one of building, active, stopped, paused, error, deleted"));
            }
            HostId? host = null;
            if (q["host"] is { Count: > 0 } hs)
            {
                if (HostId.TryParse(hs, out var hid))
                {
                    host = hid;
                }
                else if (await store.FindHostAsync(hs!, ctx.RequestAborted) is { } found)
                {
                    host = found.Id;
                }
                else
                {
                    errors.Add(new("host", "not_found", $"no host named or with id '{hs}'"));
                }
            }
            var unknown = q.Keys.Except(["limit", "marker", "name", "state", "host"]).ToList();
            errors.AddRange(unknown.Select(k => new FieldError(k, "unknown", "is not a known filter")));
            if (errors.Count > 0)
            {
                return Http.Problem(ctx, Problem.Validation(errors));
            }
            var page = await store.ListInstancesAsync(new InstanceQuery(limit, marker, q["name"], state, host, Project: Caller.Of(ctx).Scope), ctx.RequestAborted);
            var names = await HostNamesAsync(store, ctx.RequestAborted);
            return Http.Json(new ListDto<ServerDto>(page.Items.Select(i => i.ToDto(Name(names, i))).ToList(), page.NextMarker));
        });
        v1.MapPost("/servers", async (HttpContext ctx, CloudService cloud, IStateStore store, Controller.Billing.BillingService billing) =>
        {
            var (req, err) = await Http.ReadAsync<CreateServerRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            if (await HostPortsProblemAsync(req!, store, ctx.RequestAborted) is { } portProblem)
            {
                return Http.Problem(ctx, portProblem);
            }
            string? key = ctx.Request.Headers["Idempotency-Key"];
            var o = await cloud.CreateServersAsync(req!, key, Caller.Of(ctx).Actor, ctx.RequestAborted, Caller.Of(ctx));
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            ctx.Response.Headers.Location = $"/v1/servers/{o.Value.Servers[0].Id}";
            var warning = await billing.BudgetWarningAsync(o.Value.Servers[0].Project, ctx.RequestAborted);
            return req!.Count is > 1
                ? Http.Json(new ListDto<ServerDto>(o.Value.Servers.Select(s => s.ToDto(null) with { BudgetWarning = warning }).ToList(), null), 202)
                : Http.Json(o.Value.Servers[0].ToDto(null) with { BudgetWarning = warning }, 202);
        });
        v1.MapGet("/servers/{reference}", async (HttpContext ctx, string reference, CloudService cloud, IStateStore store, Migrator migrator) =>
        {
            var o = await cloud.GetServerAsync(reference, ctx.RequestAborted);
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            var host = o.Value!.HostId is { } h ? await store.GetHostAsync(h, ctx.RequestAborted) : null;
            return Http.Json(o.Value.ToDto(host?.Name) with { Migration = migrator.View(o.Value.Id) });
        });
        v1.MapPost("/servers/{reference}/migrate", async (HttpContext ctx, string reference, Migrator migrator) =>
        {
            var (req, err) = await Http.ReadAsync<MigrateRequest>(ctx);
            return err ?? Http.From(ctx, await migrator.StartAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted), i => i.ToDto(null) with { Migration = migrator.View(i.Id) }, 202);
        });
        v1.MapPost("/servers/{reference}/resize", async (HttpContext ctx, string reference, Controller.Resize.Resizer resizer) =>
        {
            var (req, err) = await Http.ReadAsync<ResizeRequest>(ctx);
            return err ?? Http.From(ctx, await resizer.ResizeAsync(reference, req!, Caller.Of(ctx).Actor, Caller.Of(ctx).Scope, ctx.RequestAborted), r => r);
        });
        v1.MapGet("/servers/{reference}/resize/plan", async (HttpContext ctx, string reference, Controller.Resize.Resizer resizer) =>
        {
            var q = ctx.Request.Query;
            var unknown = q.Keys.Where(k => k is not ("flavor" or "mode")).Select(k => new FieldError(k, "unknown", "is not a known parameter")).ToList();
            if (unknown.Count > 0)
            {
                return Http.Problem(ctx, Problem.Validation(unknown));
            }
            return Http.From(ctx, await resizer.PlanAsync(reference, q["flavor"].FirstOrDefault(), q["mode"].FirstOrDefault(), Caller.Of(ctx).Scope, ctx.RequestAborted), p => p);
        });
        v1.MapPost("/servers/{reference}/resize/confirm", async (HttpContext ctx, string reference, Controller.Resize.Resizer resizer) =>
            Http.From(ctx, await resizer.ConfirmAsync(reference, Caller.Of(ctx).Actor, ctx.RequestAborted), r => r));
        v1.MapPost("/servers/{reference}/resize/revert", async (HttpContext ctx, string reference, Controller.Resize.Resizer resizer) =>
            Http.From(ctx, await resizer.RevertAsync(reference, Caller.Of(ctx).Actor, ctx.RequestAborted), r => r));
        v1.MapPut("/servers/{reference}/ha", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<HaRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.SetHaAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted), i => i.ToDto(null));
        });
        v1.MapGet("/ha", async (HttpContext ctx, HaAdmission admission, HaOptions ha, IStateStore store) =>
        {
            var q = ctx.Request.Query;
            var errors = q.Keys.Where(k => k != "tolerate").Select(k => new FieldError(k, "unknown", "is not a known parameter")).ToList();
            int? tolerate = null;
            if (q.TryGetValue("tolerate", out var t))
            {
                if (int.TryParse(t.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n <= 100)
                {
                    tolerate = n;
                }
                else
                {
                    errors.Add(new("tolerate", "out_of_range", "must be a whole number between 0 and 100"));
                }
            }
            if (errors.Count > 0)
            {
                return Http.Problem(ctx, Problem.Validation(errors));
            }
            var report = await admission.ReportAsync(tolerate, ctx.RequestAborted);
            var open = (await store.ListIncidentsAsync(ctx.RequestAborted)).Count(i => i.State == "open");
            return Http.Json(report.ToDto(admission.Enabled && report.Tolerate == admission.Tolerate, ha, open));
        });
        v1.MapGet("/incidents", async (IStateStore store, CancellationToken ct) =>
        {
            var hosts = (await store.ListHostsAsync(ct)).ToDictionary(h => h.Id, h => h.Name);
            return Http.Json(new ListDto<IncidentDto>([.. (await store.ListIncidentsAsync(ct)).Select(i => i.ToDto(hosts.GetValueOrDefault(i.HostId)))], null));
        });
        v1.MapGet("/incidents/{id}", async (HttpContext ctx, string id, IStateStore store) =>
        {
            var hosts = (await store.ListHostsAsync(ctx.RequestAborted)).ToDictionary(h => h.Id, h => h.Name);
            var i = (await store.ListIncidentsAsync(ctx.RequestAborted)).FirstOrDefault(x => x.Id.ToString("D") == id || x.Id.ToString("N").StartsWith(id, StringComparison.Ordinal));
            return i is null ? Http.Problem(ctx, Problem.NotFound("incident", id)) : Http.Json(i.ToDto(hosts.GetValueOrDefault(i.HostId)));
        });
        v1.MapPost("/servers/{reference}/migrate/abort", async (HttpContext ctx, string reference, Migrator migrator) =>
            Http.From(ctx, await migrator.AbortAsync(reference, ctx.RequestAborted), i => i.ToDto(null) with { Migration = migrator.View(i.Id) }, 202));
        v1.MapDelete("/servers/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
            Http.From(ctx, await cloud.DeleteServerAsync(reference, Caller.Of(ctx).Actor, ctx.RequestAborted), i => i.ToDto(null), 202));
        v1.MapPost("/servers/{reference}/snapshots", async (HttpContext ctx, string reference, DataProtection dp, CloudService cloud, QuotaGate quotas) =>
        {
            var (req, err) = await Http.ReadAsync<CreateSnapshotRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var owner = (await cloud.ResolveServerAsync(reference, ctx.RequestAborted))!.Project;
            return Http.From(ctx, await quotas.WithinAsync(owner, QuotaKind.Snapshots, () => dp.CreateSnapshotAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted), ctx.RequestAborted), s => s, 201);
        });
        v1.MapGet("/servers/{reference}/snapshots", async (HttpContext ctx, string reference, DataProtection dp) =>
            Http.From(ctx, await dp.ListSnapshotsAsync(reference, ctx.RequestAborted), s => s));
        v1.MapPost("/servers/{reference}/snapshots/{name}/revert", async (HttpContext ctx, string reference, string name, DataProtection dp) =>
            Http.From(ctx, await dp.RevertSnapshotAsync(reference, name, Caller.Of(ctx).Actor, ctx.RequestAborted), s => s));
        v1.MapDelete("/servers/{reference}/snapshots/{name}", async (HttpContext ctx, string reference, string name, DataProtection dp) =>
        {
            var o = await dp.DeleteSnapshotAsync(reference, name, Caller.Of(ctx).Actor, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });
        v1.MapPost("/servers/{reference}/backups", async (HttpContext ctx, string reference, DataProtection dp, CloudService cloud, QuotaGate quotas) =>
        {
            var req = new CreateBackupRequest(null);
            if (ctx.Request.ContentLength is > 0 || ctx.Request.ContentType is not null)
            {
                var (body, err) = await Http.ReadAsync<CreateBackupRequest>(ctx);
                if (err is not null)
                {
                    return err;
                }
                req = body!;
            }
            var owner = (await cloud.ResolveServerAsync(reference, ctx.RequestAborted))!.Project;
            return Http.From(ctx, await quotas.WithinAsync(owner, QuotaKind.Backups, () => dp.BackupAsync(reference, req, Caller.Of(ctx).Actor, ctx.RequestAborted), ctx.RequestAborted), b => b, 201);
        });
        v1.MapGet("/servers/{reference}/backup-policy", async (HttpContext ctx, string reference, DataProtection dp) =>
            Http.From(ctx, await dp.GetBackupPolicyAsync(reference, ctx.RequestAborted), p => p));
        v1.MapPut("/servers/{reference}/backup-policy", async (HttpContext ctx, string reference, DataProtection dp) =>
        {
            var (req, err) = await Http.ReadAsync<BackupPolicyDto>(ctx);
            return err ?? Http.From(ctx, await dp.SetBackupPolicyAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted), p => p);
        });
        v1.MapGet("/backups", async (HttpContext ctx, DataProtection dp, CloudService cloud, IStateStore store) =>
        {
            var p = Caller.Of(ctx);
            var server = ctx.Request.Query["server"].FirstOrDefault();
            if (!string.IsNullOrEmpty(server))
            {
                // Another project's server is as unknown as a missing one.
                var inst = await cloud.ResolveServerAsync(server, p.Scope, p.ProjectId, ctx.RequestAborted);
                server = inst?.Id.ToString() ?? server;
                if (inst is null)
                {
                    return Http.Problem(ctx, Problem.NotFound("server", ctx.Request.Query["server"].ToString()));
                }
            }
            var o = await dp.ListBackupsAsync(server, ctx.RequestAborted);
            if (!o.Ok || p.Scope is null)
            {
                return Http.From(ctx, o, l => l);
            }
            var own = (await store.ListInstancesAsync(new InstanceQuery(1000000, IncludeDeleted: true, Project: p.Scope), ctx.RequestAborted)).Items.Select(i => i.Id.ToString()).ToHashSet();
            return Http.Json(o.Value!.Where(b => own.Contains(b.ServerId)).ToList());
        });
        v1.MapGet("/backups/{reference}", async (HttpContext ctx, string reference, DataProtection dp) =>
            Http.From(ctx, await dp.GetBackupAsync(reference, ctx.RequestAborted), b => b));
        v1.MapDelete("/backups/{reference}", async (HttpContext ctx, string reference, DataProtection dp) =>
        {
            var o = await dp.DeleteBackupAsync(reference, Caller.Of(ctx).Actor, ctx.RequestAborted);
            return !o.Ok ? Http.Problem(ctx, o.Problem!) : o.Value is { } kept ? Results.Json(kept, WireJson.Options, statusCode: 202) : Results.NoContent();
        });
        v1.MapPost("/backups/{reference}/verify", async (HttpContext ctx, string reference, DataProtection dp) =>
            Http.From(ctx, await dp.VerifyBackupAsync(reference, Caller.Of(ctx).Actor, ctx.RequestAborted), v => v));
        v1.MapPost("/backups/{reference}/restore", async (HttpContext ctx, string reference, DataProtection dp, IStateStore store) =>
        {
            var (req, err) = await Http.ReadAsync<RestoreBackupRequest>(ctx);
            return err ?? Http.From(ctx, await dp.RestoreAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted, Caller.Of(ctx)), i => i.ToDto(null), 202);
        });
        v1.MapPost("/servers/{reference}/actions", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<ServerActionRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.ActAsync(reference, req!, Caller.Of(ctx).Actor, ctx.RequestAborted), i => i.ToDto(null), 202);
        });
        v1.MapGet("/servers/{reference}/actions", async (HttpContext ctx, string reference, CloudService cloud) =>
            Http.From(ctx, await cloud.ListActionsAsync(reference, ctx.RequestAborted), list => new ListDto<ActionDto>(list.Select(a => a.ToDto()).ToList(), null)));
        v1.MapGet("/servers/{reference}/placement", async (HttpContext ctx, string reference, CloudService cloud, IStateStore store) =>
        {
            var o = await cloud.GetServerAsync(reference, ctx.RequestAborted);
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            return await store.GetPlacementAsync(o.Value!.Id, ctx.RequestAborted) is { } d
                ? Results.Text(d.TraceJson, "application/json")
                : Http.Problem(ctx, new Problem("not_placed_yet", 404, "No placement decision yet", $"server '{o.Value.Name}' has not been through the scheduler yet"));
        });
        v1.MapGet("/servers/{reference}/stats", async (HttpContext ctx, string reference, CloudService cloud, MetricsService metrics, TimeProvider time) =>
        {
            var o = await cloud.GetServerAsync(reference, ctx.RequestAborted);
            return o.Ok
                ? await StatsAsync(ctx, MetricKind.Server, o.Value!.Id.Value, o.Value.Name, metrics, time)
                : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/servers/{reference}/console", async (HttpContext ctx, string reference, CloudService cloud, AgentHub hub) =>
        {
            var o = await cloud.GetServerAsync(reference, ctx.RequestAborted);
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            var s = o.Value!;
            var lines = 64 * 1024;
            if (s.HostId is not { } h || hub.Session(h) is not { } session)
            {
                return Http.Problem(ctx, Problem.Conflict("console_unavailable", $"server '{s.Name}' is not running on a connected host"));
            }
            try
            {
                return Http.Json(new ConsoleDto(s.Id.ToString(), await session.ReadConsoleAsync(s.Id, lines, ctx.RequestAborted)));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Http.Problem(ctx, Problem.Conflict("console_unavailable", $"the console of '{s.Name}' cannot be read now: {e.Message}"));
            }
        });

        // ---- server groups
        v1.MapGet("/groups", async (HttpContext ctx, IStateStore store, CancellationToken ct) =>
            Http.Json(new ListDto<ServerGroupDto>((await store.ListGroupsAsync(ct)).Where(g => CloudService.Owns(Caller.Of(ctx).Scope, g.ProjectId)).Select(g => g.ToDto()).ToList(), null)));
        v1.MapPost("/groups", async (HttpContext ctx, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<CreateGroupRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.CreateGroupAsync(req!, ctx.RequestAborted, Caller.Of(ctx).ProjectId), g => g.ToDto(), 201);
        });
        v1.MapGet("/groups/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
            Http.From(ctx, await cloud.GetGroupAsync(reference, ctx.RequestAborted), g => g.ToDto()));
        v1.MapDelete("/groups/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var o = await cloud.DeleteGroupAsync(reference, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });

        // ---- aggregates and traits
        v1.MapGet("/aggregates", async (IStateStore store, CancellationToken ct) =>
            Http.Json(new ListDto<AggregateDto>((await store.ListAggregatesAsync(ct)).Select(a => a.ToDto()).ToList(), null)));
        v1.MapPost("/aggregates", async (HttpContext ctx, InventoryService inv) =>
        {
            var (req, err) = await Http.ReadAsync<AggregateRequest>(ctx);
            return err ?? Http.From(ctx, await inv.CreateAggregateAsync(req!, ctx.RequestAborted), a => a.ToDto(), 201);
        });
        v1.MapGet("/aggregates/{reference}", async (HttpContext ctx, string reference, InventoryService inv) =>
            Http.From(ctx, await inv.GetAggregateAsync(reference, ctx.RequestAborted), a => a.ToDto()));
        v1.MapPatch("/aggregates/{reference}", async (HttpContext ctx, string reference, InventoryService inv) =>
        {
            var (req, err) = await Http.ReadAsync<AggregateRequest>(ctx);
            return err ?? Http.From(ctx, await inv.UpdateAggregateAsync(reference, req!, ctx.RequestAborted), a => a.ToDto());
        });
        v1.MapDelete("/aggregates/{reference}", async (HttpContext ctx, string reference, InventoryService inv) =>
        {
            var o = await inv.DeleteAggregateAsync(reference, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });
        v1.MapPost("/aggregates/{reference}/hosts", async (HttpContext ctx, string reference, InventoryService inv) =>
        {
            var (req, err) = await Http.ReadAsync<AggregateHostRequest>(ctx);
            return err ?? Http.From(ctx, await inv.SetHostAsync(reference, req!.Host, true, ctx.RequestAborted), a => a.ToDto());
        });
        v1.MapDelete("/aggregates/{reference}/hosts/{host}", async (HttpContext ctx, string reference, string host, InventoryService inv) =>
            Http.From(ctx, await inv.SetHostAsync(reference, host, false, ctx.RequestAborted), a => a.ToDto()));
        v1.MapPut("/hosts/{reference}/traits", async (HttpContext ctx, string reference, InventoryService inv) =>
        {
            var (req, err) = await Http.ReadAsync<TraitsRequest>(ctx);
            return err ?? Http.From(ctx, await inv.SetTraitsAsync(reference, req!, ctx.RequestAborted), h => h.ToDto(0));
        });

        // ---- keypairs
        v1.MapGet("/keypairs", async (HttpContext ctx, IStateStore store, CancellationToken ct) =>
            Http.Json(new ListDto<KeypairDto>((await store.ListKeypairsAsync(ct)).Where(k => CloudService.Owns(Caller.Of(ctx).Scope, k.ProjectId)).Select(k => k.ToDto()).ToList(), null)));
        v1.MapPost("/keypairs", async (HttpContext ctx, CloudService cloud) =>
        {
            var (req, err) = await Http.ReadAsync<ImportKeypairRequest>(ctx);
            return err ?? Http.From(ctx, await cloud.ImportKeypairAsync(req!, ctx.RequestAborted, Caller.Of(ctx).ProjectId), k => k.ToDto(), 201);
        });
        v1.MapGet("/keypairs/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
            Http.From(ctx, await cloud.GetKeypairAsync(reference, ctx.RequestAborted), k => k.ToDto()));
        v1.MapDelete("/keypairs/{reference}", async (HttpContext ctx, string reference, CloudService cloud) =>
        {
            var o = await cloud.DeleteKeypairAsync(reference, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });

        // ---- hosts
        v1.MapPost("/hosts/{reference}/maintenance", async (HttpContext ctx, string reference, Migrator migrator, IStateStore store) =>
            Http.From(ctx, await migrator.MaintenanceAsync(reference, ctx.RequestAborted), h => h.ToDto(0), 202));
        v1.MapPost("/hosts/{reference}/enable", async (HttpContext ctx, string reference, Migrator migrator) =>
            Http.From(ctx, await migrator.EnableAsync(reference, ctx.RequestAborted), h => h.ToDto(0)));
        v1.MapPost("/hosts/tokens", async (HttpContext ctx, AgentTokens tokens) =>
        {
            var (req, err) = await Http.ReadAsync<AgentTokenRequest>(ctx);
            return err ?? Http.From(ctx, await tokens.IssueAsync(req!.Host, ctx.RequestAborted), t => new AgentTokenDto(req.Host!, t), 201);
        });
        v1.MapGet("/hosts", async (IStateStore store, CancellationToken ct) =>
        {
            var hosts = await store.ListHostsAsync(ct);
            var aggregates = await store.ListAggregatesAsync(ct);
            var counts = (await store.ListAllocationsAsync(ct)).GroupBy(a => a.HostId).ToDictionary(g => g.Key, g => g.Count());
            return Http.Json(new ListDto<HostDto>(hosts.Select(h => h.ToDto(counts.GetValueOrDefault(h.Id), Mapping.ZoneOf(h, aggregates))).ToList(), null));
        });
        v1.MapGet("/hosts/{reference}", async (HttpContext ctx, string reference, IStateStore store) =>
        {
            var h = HostId.TryParse(reference, out var id) ? await store.GetHostAsync(id, ctx.RequestAborted) : await store.FindHostAsync(reference, ctx.RequestAborted);
            if (h is null)
            {
                return Http.Problem(ctx, Problem.NotFound("host", reference));
            }
            var servers = (await store.ListInstancesOnHostAsync(h.Id, ctx.RequestAborted)).Count;
            return Http.Json(h.ToDto(servers, Mapping.ZoneOf(h, await store.ListAggregatesAsync(ctx.RequestAborted))));
        });
        // ---- metering and billing
        BillingEndpoints.Map(v1);

        // ---- consolidation and energy
        v1.MapGet("/consolidation", async (IStateStore store, Controller.Consolidation.ConsolidationLoop loop, Controller.Consolidation.PowerManager power, CancellationToken ct) =>
            Http.Json(new ConsolidationStatusDto(loop.Options.Enabled, loop.Paused, loop.Options.Policy, power.Driver.Name, loop.Options.Interval.TotalSeconds,
                (await store.ListHostsAsync(ct)).Where(h => h.State == HostState.Standby).Select(h => h.Name).Order(StringComparer.Ordinal).ToList(), loop.Passes)));
        v1.MapPost("/consolidation/pause", (Controller.Consolidation.ConsolidationLoop loop) =>
        {
            loop.Pause();
            return Results.NoContent();
        });
        v1.MapPost("/consolidation/resume", (Controller.Consolidation.ConsolidationLoop loop) =>
        {
            loop.Resume();
            return Results.NoContent();
        });
        v1.MapGet("/energy", async (HttpContext ctx, Controller.Consolidation.EnergyReporter energy) =>
        {
            var day = energy.ParseDay(ctx.Request.Query.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value.ToString())));
            return day.Ok ? Http.Json(await energy.ReportAsync(day.Value, ctx.RequestAborted)) : Http.Problem(ctx, day.Problem!);
        });
        v1.MapGet("/hosts/{reference}/stats", async (HttpContext ctx, string reference, IStateStore store, MetricsService metrics, TimeProvider time) =>
        {
            var h = HostId.TryParse(reference, out var id) ? await store.GetHostAsync(id, ctx.RequestAborted) : await store.FindHostAsync(reference, ctx.RequestAborted);
            return h is null
                ? Http.Problem(ctx, Problem.NotFound("host", reference))
                : await StatsAsync(ctx, MetricKind.Host, h.Id.Value, h.Name, metrics, time);
        });
    }

    /// <summary>A stats answer: the window and resolution from the query (400 with every error), the series and the newest sample.</summary>
    private static async Task<IResult> StatsAsync(HttpContext ctx, MetricKind kind, Guid id, string name, MetricsService metrics, TimeProvider time)
    {
        var w = StatsQuery.Parse(ctx.Request.Query.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value.ToString())), time.GetUtcNow());
        if (!w.Ok)
        {
            return Http.Problem(ctx, w.Problem!);
        }
        var (since, until, resolution) = w.Value!;
        var series = await metrics.QueryAsync(kind, id, since, until, resolution, ctx.RequestAborted);
        var latest = await metrics.LatestAsync(kind, id, ctx.RequestAborted);
        return Http.Json(new StatsDto(kind == MetricKind.Host ? "host" : "server", id.ToString("D"), name, StatsQuery.Name(series.Resolution), since, until,
            series.Points.Select(p => p.ToDto(kind)).ToList(), latest?.ToDto(kind)));
    }

    /// <summary>
    /// All-in-one mode: every host is this machine, so a requested host port must be free here and
    /// not held by another live server (the agent checks again when it binds).
    /// </summary>
    private static async Task<Problem?> HostPortsProblemAsync(CreateServerRequest req, IStateStore store, CancellationToken ct)
    {
        var wanted = (req.Forwards ?? []).Where(f => f is not null && f.HostPort is >= 1024 and <= 65535).Select(f => f.HostPort).ToList();
        if (wanted.Count == 0)
        {
            return null;
        }
        string? marker = null;
        do
        {
            var page = await store.ListInstancesAsync(new InstanceQuery(1000, marker), ct);
            foreach (var i in page.Items)
            {
                if (i.Forwards?.FirstOrDefault(f => wanted.Contains(f.HostPort)) is { HostPort: > 0 } taken)
                {
                    return Problem.Conflict("port_in_use", $"host port {taken.HostPort} is already forwarded to server '{i.Name}'");
                }
            }
            marker = page.NextMarker;
        }
        while (marker is not null);
        foreach (var port in wanted)
        {
            try
            {
                using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
                l.Start();
            }
            catch (System.Net.Sockets.SocketException)
            {
                return Problem.Conflict("port_in_use", $"host port {port} is already in use on this host");
            }
        }
        return null;
    }

    private static async Task<Dictionary<HostId, string>> HostNamesAsync(IStateStore store, CancellationToken ct) =>
        (await store.ListHostsAsync(ct)).ToDictionary(h => h.Id, h => h.Name);

    private static string? Name(Dictionary<HostId, string> names, Instance i) =>
        i.HostId is { } h && names.TryGetValue(h, out var n) ? n : null;
}
