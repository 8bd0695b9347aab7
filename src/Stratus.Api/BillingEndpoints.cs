using Stratus.Controller;
using Stratus.Controller.Billing;
using Stratus.Core.Wire;

namespace Stratus.Api;

/// <summary>
/// /v1/invoices, /v1/usage, /v1/prices, /v1/budgets. A project's data is named by its id (<c>project</c>, in the query or
/// the body; absent means the admin project): each handler reads it on one line and passes it on, which is where access
/// scoping goes.
/// </summary>
public static class BillingEndpoints
{
    public static void Map(RouteGroupBuilder v1)
    {
        v1.MapGet("/invoices", async (HttpContext ctx, BillingService billing) =>
        {
            var q = ctx.Request.Query;
            if (Unknown(ctx, "project", "from", "to", "month", "format") is { } bad)
            {
                return bad;
            }
            string? format = q["format"];
            var csv = format == "csv" || (format is null && ctx.Request.Headers.Accept.Any(a => a?.Contains("text/csv", StringComparison.OrdinalIgnoreCase) == true));
            if (format is not null and not ("csv" or "json"))
            {
                return Http.Problem(ctx, Problem.Validation([new("format", "invalid", "must be json or csv")]));
            }
            var (project, foreign) = await ScopedAsync(ctx, q["project"]);
            if (foreign is not null)
            {
                return foreign;
            }
            var o = await billing.InvoiceAsync(project, q["from"], q["to"], q["month"], ctx.RequestAborted);
            if (!o.Ok)
            {
                return Http.Problem(ctx, o.Problem!);
            }
            return csv ? Results.Text(o.Value!.ToCsv(), "text/csv; charset=utf-8") : Http.Json(o.Value!.ToDto());
        });

        v1.MapGet("/usage", async (HttpContext ctx, BillingService billing) =>
        {
            if (Unknown(ctx, "project") is { } bad)
            {
                return bad;
            }
            var (project, foreign) = await ScopedAsync(ctx, ctx.Request.Query["project"]);
            if (foreign is not null)
            {
                return foreign;
            }
            return Http.From(ctx, await billing.UsageAsync(project, ctx.RequestAborted), u => u);
        });
        v1.MapGet("/usage/reconcile", async (HttpContext ctx, BillingService billing) =>
            Http.Json(await billing.ReconcileAsync(repair: false, ctx.RequestAborted)));
        v1.MapPost("/usage/reconcile", async (HttpContext ctx, BillingService billing) =>
            Http.Json(await billing.ReconcileAsync(repair: true, ctx.RequestAborted)));

        v1.MapGet("/prices", async (HttpContext ctx, BillingService billing) => Http.Json((await billing.CurrentPricesAsync(ctx.RequestAborted)).ToDto()));
        v1.MapGet("/prices/history", async (HttpContext ctx, BillingService billing) =>
            Http.Json(new ListDto<PriceSheetDto>([.. (await billing.PriceHistoryAsync(ctx.RequestAborted)).Select(s => s.ToDto())], null)));
        v1.MapPut("/prices", async (HttpContext ctx, BillingService billing) =>
        {
            var (req, err) = await Http.ReadAsync<PriceSheetRequest>(ctx);
            return err ?? Http.From(ctx, await billing.SetPricesAsync(req!, ctx.RequestAborted), s => s.ToDto());
        });

        v1.MapGet("/budgets", async (HttpContext ctx, BillingService billing) =>
        {
            if (Unknown(ctx, "project") is { } bad)
            {
                return bad;
            }
            var (project, foreign) = await ScopedAsync(ctx, ctx.Request.Query["project"]);
            if (foreign is not null)
            {
                return foreign;
            }
            return Http.From(ctx, await billing.GetBudgetAsync(project, ctx.RequestAborted), b => b.ToDto());
        });
        v1.MapPut("/budgets", async (HttpContext ctx, BillingService billing) =>
        {
            var (req, err) = await Http.ReadAsync<BudgetRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var (project, foreign) = await ScopedAsync(ctx, req!.Project);
            return foreign ?? Http.From(ctx, await billing.SetBudgetAsync(req with { Project = project }, ctx.RequestAborted), b => b.ToDto());
        });
        v1.MapDelete("/budgets", async (HttpContext ctx, BillingService billing) =>
        {
            if (Unknown(ctx, "project") is { } bad)
            {
                return bad;
            }
            var (project, foreign) = await ScopedAsync(ctx, ctx.Request.Query["project"]);
            if (foreign is not null)
            {
                return foreign;
            }
            var o = await billing.DeleteBudgetAsync(project, ctx.RequestAborted);
            return o.Ok ? Results.NoContent() : Http.Problem(ctx, o.Problem!);
        });
    }

    /// <summary>
    /// The project a billing request is about, as an id: a name is looked up; without one, the caller's own project (cloud
    /// admins: the admin project). Anyone but a cloud admin naming another project gets exactly the answer an unknown
    /// project gets, so other tenants' projects cannot be told from missing ones.
    /// </summary>
    private static async Task<(string? Project, IResult? Refusal)> ScopedAsync(HttpContext ctx, string? requested)
    {
        var caller = Caller.Of(ctx);
        if (string.IsNullOrEmpty(requested))
        {
            return (caller.SeesAll ? null : caller.ProjectId.ToString("D"), null);
        }
        var store = ctx.RequestServices.GetRequiredService<Storage.IStateStore>();
        var found = await store.FindProjectAsync(requested, ctx.RequestAborted);
        if (found is not null && CloudService.Owns(caller.Scope, found.Id))
        {
            return (found.Id.ToString("D"), null);
        }
        if (found is null && caller.SeesAll && Guid.TryParse(requested, out _))
        {
            return (requested, null); // the billing service reports the unknown id
        }
        var error = Guid.TryParse(requested, out _)
            ? new FieldError("project", "not_found", $"no project with id '{requested}'")
            : new FieldError("project", "not_found", $"no project named '{requested}'");
        return (null, Http.Problem(ctx, Problem.Validation([error])));
    }

    /// <summary>400 naming every query parameter the endpoint does not know, or null.</summary>
    private static IResult? Unknown(HttpContext ctx, params string[] known)
    {
        var unknown = ctx.Request.Query.Keys.Except(known, StringComparer.Ordinal).Select(k => new FieldError(k, "unknown", "is not a known parameter")).ToList();
        return unknown.Count > 0 ? Http.Problem(ctx, Problem.Validation(unknown)) : null;
    }
}
