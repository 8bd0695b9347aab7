using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Stratus.Core.Wire;

namespace Stratus.Client;

/// <summary>A refused or failed API call: the problem the API answered, or a transport failure.</summary>
public sealed class StratusApiException(int status, string code, string message, ProblemDto? problem = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public ProblemDto? Problem { get; } = problem;
}

/// <summary>
/// The typed client of the /v1 REST API. The CLI goes through it and never around the API.
/// Every reference argument accepts a name or an id.
/// </summary>
public sealed class StratusClient(HttpClient http) : IDisposable
{
    /// <summary>The controller address: explicit, then STRATUS_URL, then http://127.0.0.1:7300.</summary>
    public static Uri ResolveUrl(string? explicitUrl)
    {
        var env = Environment.GetEnvironmentVariable("STRATUS_URL");
        var url = !string.IsNullOrEmpty(explicitUrl) ? explicitUrl : !string.IsNullOrEmpty(env) ? env : "http://127.0.0.1:7300";
        return new Uri(url.TrimEnd('/') + "/");
    }

    /// <summary>A client for <paramref name="baseUrl"/>; with a <paramref name="token"/>, every request carries it as a bearer credential.</summary>
    public static StratusClient Create(Uri baseUrl, TimeSpan? timeout = null, string? token = null)
    {
        var http = new HttpClient { BaseAddress = baseUrl, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        if (!string.IsNullOrEmpty(token))
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }
        return new StratusClient(http);
    }

    public Uri? BaseAddress => http.BaseAddress;

    public Task<HealthDto> HealthAsync(CancellationToken ct = default) => GetAsync<HealthDto>("v1/health", ct);

    // flavors
    public async Task<IReadOnlyList<FlavorDto>> ListFlavorsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<FlavorDto>>("v1/flavors", ct)).Items;
    public Task<FlavorDto> GetFlavorAsync(string reference, CancellationToken ct = default) => GetAsync<FlavorDto>($"v1/flavors/{Esc(reference)}", ct);
    public Task<FlavorDto> CreateFlavorAsync(CreateFlavorRequest r, CancellationToken ct = default) => SendAsync<FlavorDto>(HttpMethod.Post, "v1/flavors", r, null, ct);
    public Task DeleteFlavorAsync(string reference, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/flavors/{Esc(reference)}", null, null, ct);

    // images
    public async Task<IReadOnlyList<ImageDto>> ListImagesAsync(CancellationToken ct = default) => (await GetAsync<ListDto<ImageDto>>("v1/images", ct)).Items;
    public Task<ImageDto> GetImageAsync(string reference, CancellationToken ct = default) => GetAsync<ImageDto>($"v1/images/{Esc(reference)}", ct);
    public Task<ImageDto> RegisterImageAsync(CreateImageRequest r, CancellationToken ct = default) => SendAsync<ImageDto>(HttpMethod.Post, "v1/images", r, null, ct);
    /// <summary>Uploads an image file (streamed); the controller detects the format from the content.</summary>
    public async Task<ImageDto> ImportImageAsync(string name, string path, CancellationToken ct = default)
    {
        await using var file = File.OpenRead(path);
        using var req = new HttpRequestMessage(HttpMethod.Post, $"v1/images/upload?name={Esc(name)}&filename={Esc(Path.GetFileName(path))}")
        {
            Content = new StreamContent(file, 1 << 16),
        };
        req.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        req.Content.Headers.ContentLength = file.Length;
        return await SendRawAsync<ImageDto>(req, ct);
    }

    public Task DeleteImageAsync(string reference, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/images/{Esc(reference)}", null, null, ct);

    // servers
    public Task<ListDto<ServerDto>> ListServersPageAsync(int? limit = null, string? marker = null, string? name = null, string? state = null, string? host = null, CancellationToken ct = default)
    {
        var q = new List<string>();
        if (limit is { } l) { q.Add($"limit={l}"); }
        if (marker is not null) { q.Add($"marker={Esc(marker)}"); }
        if (name is not null) { q.Add($"name={Esc(name)}"); }
        if (state is not null) { q.Add($"state={Esc(state)}"); }
        if (host is not null) { q.Add($"host={Esc(host)}"); }
        return GetAsync<ListDto<ServerDto>>("v1/servers" + (q.Count > 0 ? "?" + string.Join('&', q) : ""), ct);
    }

    /// <summary>Every server, following pages to the end.</summary>
    public async Task<IReadOnlyList<ServerDto>> ListServersAsync(string? name = null, string? state = null, string? host = null, CancellationToken ct = default)
    {
        var all = new List<ServerDto>();
        string? marker = null;
        do
        {
            var page = await ListServersPageAsync(1000, marker, name, state, host, ct);
            all.AddRange(page.Items);
            marker = page.NextMarker;
        }
        while (marker is not null);
        return all;
    }

    public Task<ServerDto> GetServerAsync(string reference, CancellationToken ct = default) => GetAsync<ServerDto>($"v1/servers/{Esc(reference)}", ct);

    public Task<ServerDto> CreateServerAsync(CreateServerRequest r, string? idempotencyKey = null, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Post, "v1/servers", r, idempotencyKey, ct);

    /// <summary>Creates NAME-1…NAME-N in one request (<paramref name="r"/>.Count &gt; 1).</summary>
    public async Task<IReadOnlyList<ServerDto>> CreateServersAsync(CreateServerRequest r, CancellationToken ct = default) =>
        (await SendAsync<ListDto<ServerDto>>(HttpMethod.Post, "v1/servers", r, null, ct)).Items;

    public Task<ServerDto> DeleteServerAsync(string reference, CancellationToken ct = default) => SendAsync<ServerDto>(HttpMethod.Delete, $"v1/servers/{Esc(reference)}", null, null, ct);

    public Task<ServerDto> ActAsync(string reference, string action, string? type = null, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/actions", new ServerActionRequest(action, type), null, ct);

    public async Task<IReadOnlyList<ActionDto>> ListActionsAsync(string reference, CancellationToken ct = default) =>
        (await GetAsync<ListDto<ActionDto>>($"v1/servers/{Esc(reference)}/actions", ct)).Items;

    public Task<PlacementDto> PlacementAsync(string reference, CancellationToken ct = default) => GetAsync<PlacementDto>($"v1/servers/{Esc(reference)}/placement", ct);

    /// <summary>A server's resource-use series. <paramref name="since"/>/<paramref name="until"/>: ISO 8601 or a duration before now (15m, 2h, 7d); <paramref name="resolution"/>: raw, 1m, 1h or auto.</summary>
    public Task<StatsDto> ServerStatsAsync(string reference, string? since = null, string? until = null, string? resolution = null, CancellationToken ct = default) =>
        GetAsync<StatsDto>($"v1/servers/{Esc(reference)}/stats" + StatsQuery(since, until, resolution), ct);

    public Task<ConsoleDto> ConsoleAsync(string reference, CancellationToken ct = default) => GetAsync<ConsoleDto>($"v1/servers/{Esc(reference)}/console", ct);

    // aggregates and traits
    public async Task<IReadOnlyList<AggregateDto>> ListAggregatesAsync(CancellationToken ct = default) => (await GetAsync<ListDto<AggregateDto>>("v1/aggregates", ct)).Items;
    public Task<AggregateDto> GetAggregateAsync(string reference, CancellationToken ct = default) => GetAsync<AggregateDto>($"v1/aggregates/{Esc(reference)}", ct);
    public Task<AggregateDto> CreateAggregateAsync(AggregateRequest r, CancellationToken ct = default) => SendAsync<AggregateDto>(HttpMethod.Post, "v1/aggregates", r, null, ct);
    public Task<AggregateDto> UpdateAggregateAsync(string reference, AggregateRequest r, CancellationToken ct = default) => SendAsync<AggregateDto>(HttpMethod.Patch, $"v1/aggregates/{Esc(reference)}", r, null, ct);
    public Task DeleteAggregateAsync(string reference, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/aggregates/{Esc(reference)}", null, null, ct);
    public Task<AggregateDto> AddAggregateHostAsync(string reference, string host, CancellationToken ct = default) =>
        SendAsync<AggregateDto>(HttpMethod.Post, $"v1/aggregates/{Esc(reference)}/hosts", new AggregateHostRequest(host), null, ct);
    public Task<AggregateDto> RemoveAggregateHostAsync(string reference, string host, CancellationToken ct = default) =>
        SendAsync<AggregateDto>(HttpMethod.Delete, $"v1/aggregates/{Esc(reference)}/hosts/{Esc(host)}", null, null, ct);
    public Task<HostDto> SetHostTraitsAsync(string host, IReadOnlyList<string> traits, CancellationToken ct = default) =>
        SendAsync<HostDto>(HttpMethod.Put, $"v1/hosts/{Esc(host)}/traits", new TraitsRequest(traits), null, ct);

    // server groups
    public async Task<IReadOnlyList<ServerGroupDto>> ListGroupsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<ServerGroupDto>>("v1/groups", ct)).Items;
    public Task<ServerGroupDto> GetGroupAsync(string reference, CancellationToken ct = default) => GetAsync<ServerGroupDto>($"v1/groups/{Esc(reference)}", ct);
    public Task<ServerGroupDto> CreateGroupAsync(CreateGroupRequest r, CancellationToken ct = default) => SendAsync<ServerGroupDto>(HttpMethod.Post, "v1/groups", r, null, ct);
    public Task DeleteGroupAsync(string reference, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/groups/{Esc(reference)}", null, null, ct);

    // scaling groups
    public async Task<IReadOnlyList<ScalingGroupDto>> ListScalingGroupsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<ScalingGroupDto>>("v1/scaling-groups", ct)).Items;
    public Task<ScalingGroupDto> GetScalingGroupAsync(string reference, CancellationToken ct = default) => GetAsync<ScalingGroupDto>($"v1/scaling-groups/{Esc(reference)}", ct);
    public Task<ScalingGroupDto> CreateScalingGroupAsync(CreateScalingGroupRequest r, CancellationToken ct = default) => SendAsync<ScalingGroupDto>(HttpMethod.Post, "v1/scaling-groups", r, null, ct);
    public Task<ScalingGroupDto> UpdateScalingGroupAsync(string reference, UpdateScalingGroupRequest r, CancellationToken ct = default) =>
        SendAsync<ScalingGroupDto>(HttpMethod.Patch, $"v1/scaling-groups/{Esc(reference)}", r, null, ct);
    public Task<ScalingGroupDto> DeleteScalingGroupAsync(string reference, CancellationToken ct = default) => SendAsync<ScalingGroupDto>(HttpMethod.Delete, $"v1/scaling-groups/{Esc(reference)}", null, null, ct);
    public Task<ScalingPoliciesDto> GetScalingPoliciesAsync(string reference, CancellationToken ct = default) => GetAsync<ScalingPoliciesDto>($"v1/scaling-groups/{Esc(reference)}/policies", ct);
    public Task<ScalingPoliciesDto> SetScalingPoliciesAsync(string reference, ScalingPoliciesRequest r, CancellationToken ct = default) =>
        SendAsync<ScalingPoliciesDto>(HttpMethod.Put, $"v1/scaling-groups/{Esc(reference)}/policies", r, null, ct);
    public async Task<IReadOnlyList<ScalingMemberDto>> ListScalingMembersAsync(string reference, CancellationToken ct = default) =>
        (await GetAsync<ListDto<ScalingMemberDto>>($"v1/scaling-groups/{Esc(reference)}/members", ct)).Items;
    public async Task<IReadOnlyList<ScalingEventDto>> ListScalingEventsAsync(string reference, CancellationToken ct = default) =>
        (await GetAsync<ListDto<ScalingEventDto>>($"v1/scaling-groups/{Esc(reference)}/events", ct)).Items;

    // keypairs
    public async Task<IReadOnlyList<KeypairDto>> ListKeypairsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<KeypairDto>>("v1/keypairs", ct)).Items;
    public Task<KeypairDto> GetKeypairAsync(string reference, CancellationToken ct = default) => GetAsync<KeypairDto>($"v1/keypairs/{Esc(reference)}", ct);
    public Task<KeypairDto> ImportKeypairAsync(ImportKeypairRequest r, CancellationToken ct = default) => SendAsync<KeypairDto>(HttpMethod.Post, "v1/keypairs", r, null, ct);
    public Task DeleteKeypairAsync(string reference, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/keypairs/{Esc(reference)}", null, null, ct);

    // hosts
    public async Task<IReadOnlyList<HostDto>> ListHostsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<HostDto>>("v1/hosts", ct)).Items;
    public Task<HostDto> GetHostAsync(string reference, CancellationToken ct = default) => GetAsync<HostDto>($"v1/hosts/{Esc(reference)}", ct);
    public Task<ServerDto> MigrateServerAsync(string reference, MigrateRequest r, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/migrate", r, null, ct);
    public Task<ResizeResultDto> ResizeServerAsync(string reference, ResizeRequest r, CancellationToken ct = default) =>
        SendAsync<ResizeResultDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/resize", r, null, ct);
    public Task<ResizePlanDto> PlanResizeAsync(string reference, string flavor, string? mode = null, CancellationToken ct = default) =>
        GetAsync<ResizePlanDto>($"v1/servers/{Esc(reference)}/resize/plan" + Query(("flavor", flavor), ("mode", mode)), ct);
    public Task<ResizeResultDto> ConfirmResizeAsync(string reference, CancellationToken ct = default) =>
        SendAsync<ResizeResultDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/resize/confirm", null, null, ct);
    public Task<ResizeResultDto> RevertResizeAsync(string reference, CancellationToken ct = default) =>
        SendAsync<ResizeResultDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/resize/revert", null, null, ct);
    public Task<SnapshotDto> CreateSnapshotAsync(string reference, CreateSnapshotRequest r, CancellationToken ct = default) =>
        SendAsync<SnapshotDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/snapshots", r, null, ct);
    public Task<List<SnapshotDto>> ListSnapshotsAsync(string reference, CancellationToken ct = default) =>
        SendAsync<List<SnapshotDto>>(HttpMethod.Get, $"v1/servers/{Esc(reference)}/snapshots", null, null, ct);
    public Task<SnapshotDto> RevertSnapshotAsync(string reference, string name, CancellationToken ct = default) =>
        SendAsync<SnapshotDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/snapshots/{Esc(name)}/revert", null, null, ct);
    public Task DeleteSnapshotAsync(string reference, string name, CancellationToken ct = default) =>
        SendAsync<object>(HttpMethod.Delete, $"v1/servers/{Esc(reference)}/snapshots/{Esc(name)}", null, null, ct);
    public Task<BackupDto> BackupServerAsync(string reference, CreateBackupRequest r, CancellationToken ct = default) =>
        SendAsync<BackupDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/backups", r, null, ct);
    public Task<List<BackupDto>> ListBackupsAsync(CancellationToken ct = default) =>
        SendAsync<List<BackupDto>>(HttpMethod.Get, "v1/backups", null, null, ct);
    public Task<List<BackupDto>> ListBackupsAsync(string? server, CancellationToken ct = default) =>
        SendAsync<List<BackupDto>>(HttpMethod.Get, server is null ? "v1/backups" : $"v1/backups?server={Esc(server)}", null, null, ct);
    public Task<BackupDto> GetBackupAsync(string backup, CancellationToken ct = default) =>
        SendAsync<BackupDto>(HttpMethod.Get, $"v1/backups/{Esc(backup)}", null, null, ct);
    /// <summary>Deletes a backup; returns null when it was removed, or the backup (status "expired") when newer
    /// incrementals build on it and its files stay until they go.</summary>
    public Task<BackupDto?> DeleteBackupAsync(string backup, CancellationToken ct = default) =>
        SendAsync<BackupDto?>(HttpMethod.Delete, $"v1/backups/{Esc(backup)}", null, null, ct);
    public Task<BackupVerificationDto> VerifyBackupAsync(string backup, CancellationToken ct = default) =>
        SendAsync<BackupVerificationDto>(HttpMethod.Post, $"v1/backups/{Esc(backup)}/verify", null, null, ct);
    public Task<BackupPolicyDto> GetBackupPolicyAsync(string reference, CancellationToken ct = default) =>
        SendAsync<BackupPolicyDto>(HttpMethod.Get, $"v1/servers/{Esc(reference)}/backup-policy", null, null, ct);
    public Task<BackupPolicyDto> SetBackupPolicyAsync(string reference, BackupPolicyDto r, CancellationToken ct = default) =>
        SendAsync<BackupPolicyDto>(HttpMethod.Put, $"v1/servers/{Esc(reference)}/backup-policy", r, null, ct);
    public Task<ServerDto> RestoreBackupAsync(string backup, RestoreBackupRequest r, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Post, $"v1/backups/{Esc(backup)}/restore", r, null, ct);
    public Task<ServerDto> AbortMigrationAsync(string reference, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Post, $"v1/servers/{Esc(reference)}/migrate/abort", null, null, ct);
    public Task<ServerDto> SetHaAsync(string reference, HaRequest r, CancellationToken ct = default) =>
        SendAsync<ServerDto>(HttpMethod.Put, $"v1/servers/{Esc(reference)}/ha", r, null, ct);
    /// <summary>HA admission control's failover reserve; with <paramref name="tolerate"/>, what it would be for that many host failures.</summary>
    public Task<HaStatusDto> HaStatusAsync(int? tolerate = null, CancellationToken ct = default) =>
        GetAsync<HaStatusDto>(tolerate is { } n ? $"v1/ha?tolerate={n.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "v1/ha", ct);

    public async Task<IReadOnlyList<IncidentDto>> ListIncidentsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<IncidentDto>>("v1/incidents", ct)).Items;
    public Task<IncidentDto> GetIncidentAsync(string id, CancellationToken ct = default) => GetAsync<IncidentDto>($"v1/incidents/{Esc(id)}", ct);
    public Task<HostDto> MaintenanceAsync(string host, CancellationToken ct = default) =>
        SendAsync<HostDto>(HttpMethod.Post, $"v1/hosts/{Esc(host)}/maintenance", null, null, ct);
    public Task<HostDto> EnableHostAsync(string host, CancellationToken ct = default) =>
        SendAsync<HostDto>(HttpMethod.Post, $"v1/hosts/{Esc(host)}/enable", null, null, ct);
    public Task<AgentTokenDto> IssueAgentTokenAsync(string host, CancellationToken ct = default) =>
        SendAsync<AgentTokenDto>(HttpMethod.Post, "v1/hosts/tokens", new AgentTokenRequest(host), null, ct);

    /// <summary>A host's resource-use series (arguments as <see cref="ServerStatsAsync"/>).</summary>
    // consolidation and energy
    public Task<ConsolidationStatusDto> ConsolidationAsync(CancellationToken ct = default) => GetAsync<ConsolidationStatusDto>("v1/consolidation", ct);
    public Task PauseConsolidationAsync(CancellationToken ct = default) => SendAsync<object>(HttpMethod.Post, "v1/consolidation/pause", null, null, ct);
    public Task ResumeConsolidationAsync(CancellationToken ct = default) => SendAsync<object>(HttpMethod.Post, "v1/consolidation/resume", null, null, ct);
    public Task<EnergyReportDto> EnergyReportAsync(string? day = null, CancellationToken ct = default) =>
        GetAsync<EnergyReportDto>("v1/energy" + (day is null ? "" : $"?day={Esc(day)}"), ct);

    public Task<StatsDto> HostStatsAsync(string reference, string? since = null, string? until = null, string? resolution = null, CancellationToken ct = default) =>
        GetAsync<StatsDto>($"v1/hosts/{Esc(reference)}/stats" + StatsQuery(since, until, resolution), ct);

    // metering and billing (project: a project id; null means the admin project)
    /// <summary>A project's invoice: for [<paramref name="from"/>, <paramref name="to"/>) (YYYY-MM-DD or ISO 8601 with a zone), a <paramref name="month"/> (YYYY-MM), or the current month.</summary>
    public Task<InvoiceDto> InvoiceAsync(string? project = null, string? from = null, string? to = null, string? month = null, CancellationToken ct = default) =>
        GetAsync<InvoiceDto>("v1/invoices" + Query(("project", project), ("from", from), ("to", to), ("month", month)), ct);

    /// <summary>The same invoice as CSV (the API's text, unchanged).</summary>
    public Task<string> InvoiceCsvAsync(string? project = null, string? from = null, string? to = null, string? month = null, CancellationToken ct = default) =>
        GetAsync<string>("v1/invoices" + Query(("project", project), ("from", from), ("to", to), ("month", month), ("format", "csv")), ct);

    public Task<UsageDto> UsageAsync(string? project = null, CancellationToken ct = default) => GetAsync<UsageDto>("v1/usage" + Query(("project", project)), ct);

    /// <summary>Checks the meter against the allocations ledger; with <paramref name="repair"/>, sets it right from now.</summary>
    public Task<UsageReconciliationDto> ReconcileUsageAsync(bool repair, CancellationToken ct = default) =>
        SendAsync<UsageReconciliationDto>(repair ? HttpMethod.Post : HttpMethod.Get, "v1/usage/reconcile", null, null, ct);

    public Task<PriceSheetDto> PricesAsync(CancellationToken ct = default) => GetAsync<PriceSheetDto>("v1/prices", ct);
    public async Task<IReadOnlyList<PriceSheetDto>> PriceHistoryAsync(CancellationToken ct = default) => (await GetAsync<ListDto<PriceSheetDto>>("v1/prices/history", ct)).Items;
    public Task<PriceSheetDto> SetPricesAsync(PriceSheetRequest r, CancellationToken ct = default) => SendAsync<PriceSheetDto>(HttpMethod.Put, "v1/prices", r, null, ct);

    public Task<BudgetDto> GetBudgetAsync(string? project = null, CancellationToken ct = default) => GetAsync<BudgetDto>("v1/budgets" + Query(("project", project)), ct);
    public Task<BudgetDto> SetBudgetAsync(BudgetRequest r, CancellationToken ct = default) => SendAsync<BudgetDto>(HttpMethod.Put, "v1/budgets", r, null, ct);
    public Task DeleteBudgetAsync(string? project = null, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, "v1/budgets" + Query(("project", project)), null, null, ct);

    private static string Query(params (string Key, string? Value)[] pairs)
    {
        var q = pairs.Where(p => p.Value is not null).Select(p => $"{p.Key}={Esc(p.Value!)}").ToList();
        return q.Count > 0 ? "?" + string.Join('&', q) : "";
    }

    private static string StatsQuery(string? since, string? until, string? resolution)
    {
        var q = new List<string>();
        if (since is not null) { q.Add($"since={Esc(since)}"); }
        if (until is not null) { q.Add($"until={Esc(until)}"); }
        if (resolution is not null) { q.Add($"resolution={Esc(resolution)}"); }
        return q.Count > 0 ? "?" + string.Join('&', q) : "";
    }

    // identity, projects, quotas
    public Task<TokenDto> LoginAsync(LoginRequest r, CancellationToken ct = default) => SendAsync<TokenDto>(HttpMethod.Post, "v1/auth/login", r, null, ct);
    public Task LogoutAsync(CancellationToken ct = default) => SendAsync<object>(HttpMethod.Post, "v1/auth/logout", null, null, ct);
    public Task<WhoAmIDto> WhoAmIAsync(CancellationToken ct = default) => GetAsync<WhoAmIDto>("v1/auth/whoami", ct);
    public async Task<IReadOnlyList<CredentialDto>> ListKeysAsync(CancellationToken ct = default) => (await GetAsync<ListDto<CredentialDto>>("v1/auth/keys", ct)).Items;
    public Task<TokenDto> CreateKeyAsync(CreateApiKeyRequest r, CancellationToken ct = default) => SendAsync<TokenDto>(HttpMethod.Post, "v1/auth/keys", r, null, ct);
    public Task RevokeKeyAsync(string id, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"v1/auth/keys/{Esc(id)}", null, null, ct);
    public async Task<IReadOnlyList<ProjectDto>> ListProjectsAsync(CancellationToken ct = default) => (await GetAsync<ListDto<ProjectDto>>("v1/projects", ct)).Items;
    public Task<ProjectDto> CreateProjectAsync(CreateProjectRequest r, CancellationToken ct = default) => SendAsync<ProjectDto>(HttpMethod.Post, "v1/projects", r, null, ct);
    public Task<ProjectDto> GetProjectAsync(string reference, CancellationToken ct = default) => GetAsync<ProjectDto>($"v1/projects/{Esc(reference)}", ct);
    public Task<QuotaUsageDto> GetQuotaAsync(string project, CancellationToken ct = default) => GetAsync<QuotaUsageDto>($"v1/projects/{Esc(project)}/quota", ct);
    public Task<QuotasDto> SetQuotaAsync(string project, QuotasDto q, CancellationToken ct = default) => SendAsync<QuotasDto>(HttpMethod.Put, $"v1/projects/{Esc(project)}/quota", q, null, ct);
    public async Task<IReadOnlyList<UserDto>> ListUsersAsync(CancellationToken ct = default) => (await GetAsync<ListDto<UserDto>>("v1/users", ct)).Items;
    public Task<UserDto> CreateUserAsync(CreateUserRequest r, CancellationToken ct = default) => SendAsync<UserDto>(HttpMethod.Post, "v1/users", r, null, ct);
    public Task<UserDto> SetRoleAsync(string user, RoleRequest r, CancellationToken ct = default) => SendAsync<UserDto>(HttpMethod.Put, $"v1/users/{Esc(user)}/roles", r, null, ct);
    public Task<ListDto<AuditEntryDto>> ListAuditAsync(long after = 0, int limit = 100, CancellationToken ct = default) =>
        GetAsync<ListDto<AuditEntryDto>>($"v1/audit?after={after}&limit={limit}", ct);
    public Task<AuditVerifyDto> VerifyAuditAsync(CancellationToken ct = default) => GetAsync<AuditVerifyDto>("v1/audit/verify", ct);

    // plumbing
    private Task<T> GetAsync<T>(string path, CancellationToken ct) => SendAsync<T>(HttpMethod.Get, path, null, null, ct);

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, string? idempotencyKey, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            req.Content = JsonContent.Create(body, body.GetType(), options: WireJson.Options);
        }
        if (idempotencyKey is not null)
        {
            req.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        return await SendRawAsync<T>(req, ct);
    }

    private async Task<T> SendRawAsync<T>(HttpRequestMessage req, CancellationToken ct)
    {
        HttpResponseMessage resp;
        try
        {
            resp = await http.SendAsync(req, ct);
        }
        catch (HttpRequestException e)
        {
            throw new StratusApiException(0, "unreachable", $"cannot reach the controller at {http.BaseAddress}: {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new StratusApiException(0, "timeout", $"the controller at {http.BaseAddress} did not answer in time");
        }
        using (resp)
        {
            if (!resp.IsSuccessStatusCode)
            {
                ProblemDto? problem = null;
                try
                {
                    problem = await resp.Content.ReadFromJsonAsync<ProblemDto>(Lenient, ct);
                }
                catch (JsonException)
                {
                }
                var message = problem?.Detail ?? problem?.Title ?? $"HTTP {(int)resp.StatusCode} {resp.ReasonPhrase}";
                throw new StratusApiException((int)resp.StatusCode, problem?.Code ?? "http_" + (int)resp.StatusCode, message, problem);
            }
            if (resp.StatusCode == HttpStatusCode.NoContent || typeof(T) == typeof(object))
            {
                return default!;
            }
            if (typeof(T) == typeof(string))
            {
                return (T)(object)await resp.Content.ReadAsStringAsync(ct); // a text answer (CSV), as sent
            }
            return (await resp.Content.ReadFromJsonAsync<T>(Lenient, ct))!;
        }
    }

    /// <summary>Reading answers tolerates fields newer servers add.</summary>
    private static readonly JsonSerializerOptions Lenient = new(WireJson.Options) { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Skip };

    private static string Esc(string s) => Uri.EscapeDataString(s);

    public void Dispose() => http.Dispose();
}
