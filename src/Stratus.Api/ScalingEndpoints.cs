using Stratus.Controller;
using Stratus.Controller.Scaling;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Api;

/// <summary>/v1/scaling-groups: groups of servers from one template kept at a desired count by <see cref="ScalingLoop"/>.
/// <c>{reference}</c> arrives resolved to the group's id within the caller's project (<see cref="ScopeMiddleware"/>).</summary>
public static class ScalingEndpoints
{
    public static void Map(RouteGroupBuilder v1)
    {
        v1.MapGet("/scaling-groups", async (HttpContext ctx, IStateStore store, ScalingService scaling, CancellationToken ct) =>
        {
            var scope = Caller.Of(ctx).Scope;
            var list = new List<ScalingGroupDto>();
            foreach (var g in await store.ListScalingGroupsAsync(ct))
            {
                if (CloudService.Owns(scope, g.ProjectId))
                {
                    list.Add(await scaling.ToDtoAsync(g, ct));
                }
            }
            return Http.Json(new ListDto<ScalingGroupDto>(list, null));
        });
        v1.MapPost("/scaling-groups", async (HttpContext ctx, ScalingService scaling) =>
        {
            var (req, err) = await Http.ReadAsync<CreateScalingGroupRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await scaling.CreateAsync(req!, Caller.Of(ctx), ctx.RequestAborted);
            return o.Ok ? Http.Json(await scaling.ToDtoAsync(o.Value!, ctx.RequestAborted), 201) : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/scaling-groups/{reference}", (HttpContext ctx, string reference, IStateStore store, ScalingService scaling) =>
            WithGroupAsync(ctx, reference, store, async g => Http.Json(await scaling.ToDtoAsync(g, ctx.RequestAborted))));
        v1.MapPatch("/scaling-groups/{reference}", async (HttpContext ctx, string reference, ScalingService scaling) =>
        {
            var (req, err) = await Http.ReadAsync<UpdateScalingGroupRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await scaling.UpdateAsync(Guid.Parse(reference), req!, Caller.Of(ctx).Actor, ctx.RequestAborted);
            return o.Ok ? Http.Json(await scaling.ToDtoAsync(o.Value!, ctx.RequestAborted)) : Http.Problem(ctx, o.Problem!);
        });
        v1.MapDelete("/scaling-groups/{reference}", async (HttpContext ctx, string reference, ScalingService scaling) =>
        {
            var o = await scaling.DeleteAsync(Guid.Parse(reference), Caller.Of(ctx).Actor, ctx.RequestAborted);
            return o.Ok ? Http.Json(await scaling.ToDtoAsync(o.Value!, ctx.RequestAborted), 202) : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/scaling-groups/{reference}/policies", (HttpContext ctx, string reference, IStateStore store, ScalingService scaling) =>
            WithGroupAsync(ctx, reference, store, g => Task.FromResult(Http.Json(scaling.PoliciesDto(g)))));
        v1.MapPut("/scaling-groups/{reference}/policies", async (HttpContext ctx, string reference, ScalingService scaling) =>
        {
            var (req, err) = await Http.ReadAsync<ScalingPoliciesRequest>(ctx);
            if (err is not null)
            {
                return err;
            }
            var o = await scaling.SetPoliciesAsync(Guid.Parse(reference), req!, Caller.Of(ctx).Actor, ctx.RequestAborted);
            return o.Ok ? Http.Json(scaling.PoliciesDto(o.Value!)) : Http.Problem(ctx, o.Problem!);
        });
        v1.MapGet("/scaling-groups/{reference}/members", (HttpContext ctx, string reference, IStateStore store, ScalingService scaling) =>
            WithGroupAsync(ctx, reference, store, async g => Http.Json(new ListDto<ScalingMemberDto>(await scaling.MembersAsync(g, ctx.RequestAborted), null))));
        v1.MapGet("/scaling-groups/{reference}/events", (HttpContext ctx, string reference, IStateStore store) =>
            WithGroupAsync(ctx, reference, store, g => Task.FromResult(Http.Json(new ListDto<ScalingEventDto>(
                [.. g.State.Events.Reverse().Select(e => new ScalingEventDto(e.At, e.Kind, e.Message))], null)))));
    }

    private static async Task<IResult> WithGroupAsync(HttpContext ctx, string reference, IStateStore store, Func<Core.Compute.ScalingGroup, Task<IResult>> answer) =>
        Guid.TryParse(reference, out var id) && await store.GetScalingGroupAsync(id, ctx.RequestAborted) is { } g
            ? await answer(g)
            : Http.Problem(ctx, Problem.NotFound("scaling group", reference));
}
