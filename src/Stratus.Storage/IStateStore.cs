using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Identity;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Storage;

/// <summary>A page of a list: the items and the marker to pass for the next page (null at the end).</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextMarker);

/// <summary>Filters and paging for listing servers. <see cref="Marker"/> is the id of the last item seen.</summary>
public sealed record InstanceQuery(int Limit = 100, string? Marker = null, string? Name = null, VmState? State = null, HostId? Host = null, bool IncludeDeleted = false, Guid? Project = null);

/// <summary>A row of the resource ledger: what one instance holds on one host.</summary>
public sealed record Allocation(InstanceId InstanceId, HostId HostId, ResourceVector Resources);

/// <summary>One host's part of a batch claim: the generation the decision saw and the summed demand.</summary>
public sealed record HostClaimRecord(HostId Host, long ExpectedGeneration, ResourceVector Total);

/// <summary>The group part of a claim: the group whose generation the placement saw.</summary>
public sealed record GroupClaim(Guid GroupId, long ExpectedGeneration);

/// <summary>A host as an agent registers it.</summary>
public sealed record HostRegistrationRecord(string Name, ResourceVector Total, ResourceVector Reserved, AllocationRatios Ratios, string Zone, string Accelerator, string Driver, int? AgentPid)
{
    /// <summary>Who the host's hypervisor processes run as, as its agent reports it (null: not reported).</summary>
    public string? HypervisorUser { get; init; }
}

/// <summary>How a compare-and-swap write ended.</summary>
public enum CasOutcome
{
    /// <summary>Written.</summary>
    Ok,
    /// <summary>The row changed since it was read (version or generation differs); re-read and retry.</summary>
    Conflict,
    /// <summary>The row does not exist.</summary>
    NotFound,
    /// <summary>The host has no room left for the claim under its ratios.</summary>
    NoCapacity,
    /// <summary>The owning project's quota would be exceeded (a resize's growth); nothing was written.</summary>
    QuotaExceeded,
}

/// <summary>A project's current use, for quotas.</summary>
public sealed record ProjectUsage(int Instances, int Vcpus, long RamMib, long DiskGib, int Snapshots, int Backups);

/// <summary>How creating a server ended.</summary>
public enum CreateStatus
{
    /// <summary>The project's quota would be exceeded; nothing was written.</summary>
    QuotaExceeded,

    /// <summary>A new row was written.</summary>
    Created,
    /// <summary>An earlier request with the same idempotency key created it; that server is returned.</summary>
    Existing,
    /// <summary>A live server already has this name; nothing was written.</summary>
    NameTaken,
    /// <summary>The HA admission generation moved since the caller checked: nothing was written; check again.</summary>
    AdmissionChanged,
}

/// <summary>What one server asks of the failover reserve: it holds an allocation or waits for one.</summary>
public sealed record ReservedServer(InstanceId Id, ResourceVector Resources, bool Ha);

/// <summary>Outcome of creating a server.</summary>
public sealed record CreateInstanceOutcome(Instance Instance, CreateStatus Status);

/// <summary>Closes the newest open action-log entry of a server in the same transaction as a state change.</summary>
/// <summary>A server being moved between hosts; the destination's claim is held until the move finishes.</summary>
/// <param name="Kind">"live" or "cold".</param>
/// <summary>A snapshot of a server, as the controller records it (the data lives in the VM's disk).</summary>
/// <param name="Status">"creating", "available", "reverting", "deleting", "error".</param>
public sealed record SnapshotRecord(InstanceId InstanceId, string Name, bool WithMemory, string Status, long VmStateBytes, DateTimeOffset CreatedAt);

/// <summary>A backup of a server in the backup store.</summary>
/// <param name="Kind">"full" or "incremental".</param>
/// <param name="ParentId">For an incremental: the backup it builds on.</param>
/// <param name="Status">"creating", "available", "error", or "expired" (deleted by request or retention; its files are kept
/// only because a kept incremental builds on it, and go with its last dependant).</param>
/// <param name="Directory">The backup's directory (holds manifest.json and the files it lists).</param>
/// <param name="ManifestSha256">SHA-256 of manifest.json when the backup finished (a changed manifest is refused at restore).</param>
/// <param name="SpecJson">What a restore re-creates besides the disk (key name, user data, forwards, storage pool), as JSON.</param>
public sealed record BackupRecord(
    Guid Id,
    InstanceId InstanceId,
    string InstanceName,
    FlavorId FlavorId,
    ImageId ImageId,
    string Kind,
    Guid? ParentId,
    string Status,
    string Directory,
    long SizeBytes,
    string? ManifestSha256,
    string SpecJson,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt,
    string? FullReason = null,
    string? ExpiredReason = null,
    DateTimeOffset? VerifiedAt = null,
    string? VerifyError = null);

/// <summary>A server's backup policy.</summary>
/// <param name="Keep">Restore points kept: the newest N backups that are not expired (1–1000).</param>
/// <param name="FullEvery">Longest chain: after this many backups in a chain (the full one included) the next automatic
/// backup is full again; null = <paramref name="Keep"/>.</param>
public sealed record BackupPolicy(int Keep, int? FullEvery);

public sealed record MigrationRecord(InstanceId InstanceId, HostId Source, HostId Destination, string Kind, ResourceVector Resources, DateTimeOffset StartedAt);

/// <summary>One step of an incident's timeline.</summary>
public sealed record IncidentEvent(DateTimeOffset At, string Kind, string Message, string? ServerId = null);

/// <summary>A host failure and what was done about it (detected → fenced → each server restarted).</summary>
/// <param name="State">"open" while servers remain to recover, "closed" when done or the host came back.</param>
public sealed record Incident(Guid Id, HostId HostId, string State, DateTimeOffset DetectedAt, DateTimeOffset? ClosedAt, IReadOnlyList<IncidentEvent> Timeline);

public sealed record ActionFinish(string Result, string? Message, DateTimeOffset At);

/// <summary>Outcome of a delete that may be refused because something still uses the object.</summary>
public enum DeleteOutcome { Deleted, NotFound, InUse }

/// <summary>
/// The state store: desired state of the whole cloud. Every mutable row has a version; writes
/// compare-and-swap on it. Implementations: SQLite (embedded) and later PostgreSQL; both pass
/// the conformance suite in Stratus.TestKit.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>Applies pending schema migrations. Idempotent.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    // Flavors
    /// <summary>Inserts a flavor; false when the name is taken (nothing written).</summary>
    Task<bool> CreateFlavorAsync(Flavor flavor, CancellationToken cancellationToken);
    Task<Flavor?> GetFlavorAsync(FlavorId id, CancellationToken cancellationToken);
    Task<Flavor?> FindFlavorAsync(string name, CancellationToken cancellationToken);
    Task<IReadOnlyList<Flavor>> ListFlavorsAsync(CancellationToken cancellationToken);
    /// <summary>Deletes a flavor unless a live server uses it (checked in the same transaction).</summary>
    Task<DeleteOutcome> DeleteFlavorAsync(FlavorId id, CancellationToken cancellationToken);

    // Images
    Task<bool> CreateImageAsync(Image image, CancellationToken cancellationToken);
    Task<Image?> GetImageAsync(ImageId id, CancellationToken cancellationToken);
    Task<Image?> FindImageAsync(string name, CancellationToken cancellationToken);
    Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken cancellationToken);
    Task<DeleteOutcome> DeleteImageAsync(ImageId id, CancellationToken cancellationToken);

    // Hosts
    /// <summary>Creates the host on first registration, else refreshes its inventory, pid and heartbeat (keeping id, generation, epoch, state unless Down).</summary>
    Task<Host> RegisterHostAsync(HostRegistrationRecord registration, DateTimeOffset now, CancellationToken cancellationToken);
    Task<Host?> GetHostAsync(HostId id, CancellationToken cancellationToken);
    Task<Host?> FindHostAsync(string name, CancellationToken cancellationToken);
    Task<IReadOnlyList<Host>> ListHostsAsync(CancellationToken cancellationToken);
    Task HeartbeatAsync(HostId id, DateTimeOffset now, CancellationToken cancellationToken);
    Task<CasOutcome> SetHostStateAsync(HostId id, HostState state, long expectedGeneration, CancellationToken cancellationToken);

    // Instances
    /// <summary>Inserts a server (and the first action-log entry). With an idempotency key already used, returns the existing server instead; a live server with the same name refuses it.</summary>
    Task<CreateInstanceOutcome> CreateInstanceAsync(Instance instance, InstanceAction firstAction, CancellationToken cancellationToken) =>
        CreateInstanceAsync(instance, firstAction, null, cancellationToken);

    /// <summary>
    /// As above; with <paramref name="admissionGeneration"/>, the HA admission generation must still be that one (and is
    /// bumped in the same transaction), else <see cref="CreateStatus.AdmissionChanged"/> and nothing is written. An
    /// idempotency key already used still returns the existing server first.
    /// </summary>
    Task<CreateInstanceOutcome> CreateInstanceAsync(Instance instance, InstanceAction firstAction, long? admissionGeneration, CancellationToken cancellationToken);

    /// <summary>Inserts several servers (a batch) in one transaction: all or none (a taken name refuses the whole batch).</summary>
    Task<CreateStatus> CreateInstancesAsync(IReadOnlyList<(Instance Instance, InstanceAction FirstAction)> batch, CancellationToken cancellationToken) =>
        CreateInstancesAsync(batch, null, cancellationToken);

    /// <summary>As above, with the HA admission generation compare-and-swapped as for <see cref="CreateInstanceAsync(Instance, InstanceAction, long?, CancellationToken)"/>.</summary>
    Task<CreateStatus> CreateInstancesAsync(IReadOnlyList<(Instance Instance, InstanceAction FirstAction)> batch, long? admissionGeneration, CancellationToken cancellationToken);

    /// <summary>
    /// Claims a whole batch in one transaction: per host one compare-and-swap on the generation the
    /// decision saw, capacity re-checked for the host's summed demand, every allocation inserted and
    /// every server CAS-updated. Nothing changes on any failure.
    /// </summary>
    Task<CasOutcome> ClaimBatchAsync(IReadOnlyList<Instance> updated, IReadOnlyList<HostClaimRecord> hosts, IReadOnlyList<GroupClaim> groups, CancellationToken cancellationToken);

    Task<Instance?> GetInstanceAsync(InstanceId id, CancellationToken cancellationToken);
    /// <summary>The server an earlier create with this idempotency key made (deleted or not), or null.</summary>
    Task<Instance?> FindInstanceByIdempotencyKeyAsync(string key, CancellationToken cancellationToken);
    Task<Instance?> FindInstanceAsync(string name, CancellationToken cancellationToken);

    /// <summary>A live server by name within one project (names are unique per project).</summary>
    Task<Instance?> FindInstanceAsync(string name, Guid project, CancellationToken cancellationToken);
    Task<Page<Instance>> ListInstancesAsync(InstanceQuery query, CancellationToken cancellationToken);
    /// <summary>Servers that have a task in progress (the reconciler's work list).</summary>
    Task<IReadOnlyList<Instance>> ListInstancesWithTaskAsync(InstanceTask? task, int limit, CancellationToken cancellationToken);
    /// <summary>Live servers placed on a host.</summary>
    Task<IReadOnlyList<Instance>> ListInstancesOnHostAsync(HostId host, CancellationToken cancellationToken);
    /// <summary>Replaces a server row if its version is still <c>updated.Version</c>; the stored version becomes +1. Optionally appends an action.</summary>
    Task<CasOutcome> UpdateInstanceAsync(Instance updated, InstanceAction? action, CancellationToken cancellationToken) =>
        UpdateInstanceAsync(updated, action, null, cancellationToken);

    /// <summary>As above, and closes the newest open action-log entry with <paramref name="finish"/> in the same transaction.</summary>
    Task<CasOutcome> UpdateInstanceAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken) =>
        UpdateInstanceAsync(updated, action, finish, null, cancellationToken);

    /// <summary>As above; with <paramref name="admissionGeneration"/>, the HA admission generation is compare-and-swapped too (Conflict when it moved).</summary>
    Task<CasOutcome> UpdateInstanceAsync(Instance updated, InstanceAction? action, ActionFinish? finish, long? admissionGeneration, CancellationToken cancellationToken);

    /// <summary>
    /// Claims <paramref name="resources"/> on a host for an instance, in one transaction: the host's
    /// generation must still be <paramref name="expectedHostGeneration"/> and the claim must fit its
    /// capacity; the instance row is CAS-updated to <paramref name="updated"/>. Nothing changes on any failure.
    /// </summary>
    Task<CasOutcome> ClaimAsync(Instance updated, HostId host, long expectedHostGeneration, ResourceVector resources, CancellationToken cancellationToken) =>
        ClaimAsync(updated, host, expectedHostGeneration, resources, null, cancellationToken);

    /// <summary>As above; with <paramref name="group"/>, the server group's generation must also still be the one planned on (and is bumped).</summary>
    Task<CasOutcome> ClaimAsync(Instance updated, HostId host, long expectedHostGeneration, ResourceVector resources, GroupClaim? group, CancellationToken cancellationToken);

    // Server groups
    /// <summary>Inserts a group; false when the name is taken.</summary>
    Task<bool> CreateGroupAsync(ServerGroup group, CancellationToken cancellationToken);
    Task<ServerGroup?> FindGroupAsync(string nameOrId, CancellationToken cancellationToken);
    Task<IReadOnlyList<ServerGroup>> ListGroupsAsync(CancellationToken cancellationToken);
    /// <summary>Deletes a group unless live servers belong to it.</summary>
    Task<DeleteOutcome> DeleteGroupAsync(Guid id, CancellationToken cancellationToken);
    /// <summary>Live members of a group placed on each host.</summary>
    Task<IReadOnlyDictionary<HostId, int>> GroupMembersPerHostAsync(Guid groupId, CancellationToken cancellationToken);

    // Scaling groups
    /// <summary>Inserts a scaling group; false when its project already has one of that name.</summary>
    Task<bool> CreateScalingGroupAsync(ScalingGroup group, CancellationToken cancellationToken);
    Task<ScalingGroup?> GetScalingGroupAsync(Guid id, CancellationToken cancellationToken);
    /// <summary>A scaling group by name or id within <paramref name="project"/>.</summary>
    Task<ScalingGroup?> FindScalingGroupAsync(string nameOrId, Guid project, CancellationToken cancellationToken);
    Task<IReadOnlyList<ScalingGroup>> ListScalingGroupsAsync(CancellationToken cancellationToken);
    /// <summary>Writes spec and state if the row still has <see cref="ScalingGroup.Version"/> (then bumps it).</summary>
    Task<CasOutcome> UpdateScalingGroupAsync(ScalingGroup group, CancellationToken cancellationToken);
    /// <summary>Removes the row if it still has <paramref name="expectedVersion"/>.</summary>
    Task<bool> DeleteScalingGroupAsync(Guid id, long expectedVersion, CancellationToken cancellationToken);

    /// <summary>Releases the instance's allocation (if any) and CAS-updates the instance row, in one transaction.</summary>
    Task<CasOutcome> ReleaseAsync(Instance updated, InstanceAction? action, CancellationToken cancellationToken) =>
        ReleaseAsync(updated, action, null, cancellationToken);

    /// <summary>As above, and closes the newest open action-log entry with <paramref name="finish"/> in the same transaction.</summary>
    Task<CasOutcome> ReleaseAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken);

    Task<IReadOnlyList<Allocation>> ListAllocationsAsync(CancellationToken cancellationToken);

    // Placement decisions
    /// <summary>Keeps the latest placement decision trace (JSON) of a server, for `server placement`.</summary>
    Task RecordPlacementAsync(InstanceId id, string traceJson, DateTimeOffset at, CancellationToken cancellationToken);
    Task<(string TraceJson, DateTimeOffset At)?> GetPlacementAsync(InstanceId id, CancellationToken cancellationToken);

    // Host traits and aggregates
    /// <summary>Replaces a host's traits.</summary>
    Task<bool> SetHostTraitsAsync(HostId id, IReadOnlyList<string> traits, CancellationToken cancellationToken);
    /// <summary>Inserts an aggregate; false when the name is taken.</summary>
    Task<bool> CreateAggregateAsync(Aggregate aggregate, CancellationToken cancellationToken);
    Task<Aggregate?> FindAggregateAsync(string nameOrId, CancellationToken cancellationToken);
    Task<IReadOnlyList<Aggregate>> ListAggregatesAsync(CancellationToken cancellationToken);
    /// <summary>Replaces an aggregate's zone and metadata.</summary>
    Task<bool> UpdateAggregateAsync(Guid id, string? zone, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken);
    /// <summary>Adds or removes a host; idempotent.</summary>
    Task SetAggregateHostAsync(Guid id, HostId host, bool member, CancellationToken cancellationToken);
    Task<bool> DeleteAggregateAsync(Guid id, CancellationToken cancellationToken);

    // Keypairs
    /// <summary>Inserts a keypair; false when the name is taken.</summary>
    Task<bool> CreateKeypairAsync(Keypair keypair, CancellationToken cancellationToken);
    Task<Keypair?> FindKeypairAsync(string name, CancellationToken cancellationToken);
    Task<IReadOnlyList<Keypair>> ListKeypairsAsync(CancellationToken cancellationToken);
    Task<bool> DeleteKeypairAsync(Guid id, CancellationToken cancellationToken);

    // Action log
    Task<IReadOnlyList<InstanceAction>> ListActionsAsync(InstanceId id, CancellationToken cancellationToken);
    /// <summary>Finishes the newest unfinished action of an instance.</summary>
    Task FinishActionAsync(InstanceId id, string result, string? message, DateTimeOffset at, CancellationToken cancellationToken);

    // Agents
    /// <summary>Stores (replacing) the SHA-256 of a host's agent token.</summary>
    Task SetAgentTokenAsync(string hostName, string tokenSha256, DateTimeOffset now, CancellationToken cancellationToken);
    Task<string?> GetAgentTokenAsync(string hostName, CancellationToken cancellationToken);

    // High availability
    /// <summary>
    /// The HA admission generation: read it <i>before</i> reading what admission control decides on, and pass it to the
    /// write; every write admission control checked bumps it, so a decision on stale state cannot commit.
    /// </summary>
    Task<long> GetAdmissionGenerationAsync(CancellationToken cancellationToken);

    /// <summary>Every live server that holds an allocation (any host, any state) or waits for one (task scheduling).</summary>
    Task<IReadOnlyList<ReservedServer>> ListReservedServersAsync(CancellationToken cancellationToken);

    /// <summary>Declares a host failed: state 'failed' and its epoch (fencing token) bumped, compare-and-swap on the epoch read.</summary>
    Task<CasOutcome> DeclareHostFailedAsync(HostId id, long expectedEpoch, CancellationToken cancellationToken);
    Task SaveIncidentAsync(Incident incident, CancellationToken cancellationToken);
    Task<IReadOnlyList<Incident>> ListIncidentsAsync(CancellationToken cancellationToken);

    // Migrations
    /// <summary>
    /// Starts a move in one transaction: claims the server's resources on the destination (generation
    /// compare-and-swap, capacity and state 'up' checked), records the migration, updates the server
    /// (task migrating) and opens its action. NoCapacity / Conflict / NotFound change nothing.
    /// </summary>
    Task<CasOutcome> BeginMigrationAsync(Instance updated, MigrationRecord migration, long expectedDestinationGeneration, InstanceAction action, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a move in one transaction: when <paramref name="moved"/> the allocation moves to the
    /// destination and the source's resources are given back, otherwise the destination's claim is
    /// given back; the server is updated and its action closed.
    /// </summary>
    Task<CasOutcome> FinishMigrationAsync(Instance updated, bool moved, ActionFinish finish, CancellationToken cancellationToken);

    Task<IReadOnlyList<MigrationRecord>> ListMigrationsAsync(CancellationToken cancellationToken);


    // Snapshots and backups
    /// <summary>Appends an entry to a server's action log as given (already finished, or open).</summary>
    Task RecordActionAsync(InstanceAction action, CancellationToken cancellationToken);
    /// <summary>Inserts or replaces a snapshot row (key: server and name).</summary>
    Task UpsertSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken);
    Task<IReadOnlyList<SnapshotRecord>> ListSnapshotsAsync(InstanceId id, CancellationToken cancellationToken);
    Task DeleteSnapshotRecordAsync(InstanceId id, string name, CancellationToken cancellationToken);

    /// <summary>Inserts or replaces a backup row (key: id).</summary>
    Task UpsertBackupAsync(BackupRecord backup, CancellationToken cancellationToken);
    Task<BackupRecord?> GetBackupAsync(Guid id, CancellationToken cancellationToken);
    /// <summary>Backups oldest first; of one server when <paramref name="instance"/> is set.</summary>
    Task<IReadOnlyList<BackupRecord>> ListBackupsAsync(InstanceId? instance, CancellationToken cancellationToken);
    Task DeleteBackupAsync(Guid id, CancellationToken cancellationToken);
    /// <summary>Per-server backup policy (retention and chain length).</summary>
    Task SetBackupPolicyAsync(InstanceId id, BackupPolicy policy, CancellationToken cancellationToken);
    Task<BackupPolicy?> GetBackupPolicyAsync(InstanceId id, CancellationToken cancellationToken);

    // Metrics (time series)
    /// <summary>
    /// Appends one host report — the host's row and one row per server — in one transaction with one
    /// batched insert. A sample with the same object and time as a stored one replaces it, so a retried
    /// report is not counted twice. Hot path: called once per host per sampling interval.
    /// </summary>
    Task AppendMetricsAsync(HostMetricsRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// The points of one object with <c>From ≤ at &lt; To</c>, oldest first. A minute or hour query also folds in the
    /// finer tiers that have not been compacted yet (weighted by sample count), so every resolution sees all data.
    /// <see cref="MetricResolution.Auto"/> picks the finest tier that covers the range: hour when hour points exist in
    /// it, else minute when minute points do, else raw.
    /// </summary>
    Task<MetricSeries> QueryMetricsAsync(MetricSeriesQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// One compaction pass at <paramref name="now"/>: raw rows older than the raw retention (boundary floored to the
    /// minute) are averaged into minute points and deleted; minute points older than the minute retention (floored to
    /// the hour) into hour points; hour points older than the hour retention are deleted. Each tier's aggregate and
    /// delete is one transaction, and points landing in an existing bucket are merged by sample count, so running it
    /// twice, or again after a crash, never counts a sample twice.
    /// </summary>
    Task<MetricsCompaction> CompactMetricsAsync(DateTimeOffset now, MetricsRetention retention, CancellationToken cancellationToken);

    // Metering and billing
    // Every write above that changes a server row or its allocation (UpdateInstance, Claim, ClaimBatch, Release,
    // Begin/FinishMigration, Resize) also brings the server's open usage interval in line with Metering's rule, in the
    // same transaction, at the server's UpdatedAt: close the open one when what is billed changed, open the next.

    /// <summary>
    /// Resizes a server in place, in one transaction: the host's used resources change by the difference (refused with
    /// NoCapacity when the growth does not fit the host's ratios; QuotaExceeded when it would take the owning project past
    /// its quota — both checked inside the transaction), the allocation takes <c>updated.Resources</c>, the server
    /// row is CAS-updated, and the usage interval is split at <c>updated.UpdatedAt</c>. NotFound when the server holds no
    /// allocation. Nothing changes on any failure.
    /// </summary>
    Task<CasOutcome> ResizeAsync(Instance updated, InstanceAction? action, ActionFinish? finish, CancellationToken cancellationToken);

    /// <summary>Usage intervals overlapping [<paramref name="from"/>, <paramref name="to"/>), of one project or all (null), oldest first.</summary>
    Task<IReadOnlyList<UsageInterval>> ListUsageAsync(Guid? project, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);

    /// <summary>Every usage interval of one server, oldest first.</summary>
    Task<IReadOnlyList<UsageInterval>> ListServerUsageAsync(InstanceId id, CancellationToken cancellationToken);

    /// <summary>
    /// Compares the open usage intervals with the allocations ledger (<see cref="UsageLedgerCheck"/>) on one consistent
    /// view. With <paramref name="repair"/>, in the same transaction, each server found is set right at <paramref name="now"/>:
    /// its open intervals are closed and the one the ledger calls for is opened. Time already counted is not rewritten.
    /// </summary>
    Task<IReadOnlyList<UsageDiscrepancy>> ReconcileUsageAsync(DateTimeOffset now, bool repair, CancellationToken cancellationToken);

    /// <summary>Every price sheet, by <see cref="PriceSheet.EffectiveFrom"/> (the migration seeds <see cref="PriceSheet.Default"/>).</summary>
    Task<IReadOnlyList<PriceSheet>> ListPriceSheetsAsync(CancellationToken cancellationToken);

    /// <summary>Adds a sheet, replacing one with the same effective time.</summary>
    Task SavePriceSheetAsync(PriceSheet sheet, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>True once any usage has been recorded (the currency can no longer change).</summary>
    Task<bool> AnyUsageAsync(CancellationToken cancellationToken);

    Task<Budget?> GetBudgetAsync(Guid project, CancellationToken cancellationToken);
    Task<IReadOnlyList<Budget>> ListBudgetsAsync(CancellationToken cancellationToken);
    /// <summary>Sets (inserts or replaces) a project's budget.</summary>
    Task SetBudgetAsync(Budget budget, CancellationToken cancellationToken);
    /// <summary>Removes a project's budget; false when it had none.</summary>
    Task<bool> DeleteBudgetAsync(Guid project, CancellationToken cancellationToken);

    /// <summary>A deterministic text dump of every row of every table (less the heartbeat timestamps and the metric time series, which change with time), for tests that prove a request changed nothing.</summary>
    Task<string> DumpAsync(CancellationToken cancellationToken);

    // ---------- identity ----------

    Task<bool> CreateProjectAsync(Project project, CancellationToken cancellationToken);
    Task<Project?> GetProjectAsync(Guid id, CancellationToken cancellationToken);
    Task<Project?> FindProjectAsync(string nameOrId, CancellationToken cancellationToken);
    Task<IReadOnlyList<Project>> ListProjectsAsync(CancellationToken cancellationToken);
    Task<bool> SetQuotasAsync(Guid project, Quotas quotas, CancellationToken cancellationToken);

    /// <summary>What a project uses now: live servers and their resources, snapshots, backups.</summary>
    Task<ProjectUsage> GetProjectUsageAsync(Guid project, CancellationToken cancellationToken);

    Task<bool> CreateUserAsync(User user, RoleAssignment? role, CancellationToken cancellationToken);
    Task<User?> FindUserAsync(string nameOrId, CancellationToken cancellationToken);
    Task<IReadOnlyList<User>> ListUsersAsync(CancellationToken cancellationToken);
    Task<int> CountUsersAsync(CancellationToken cancellationToken);
    Task SetPasswordHashAsync(Guid user, string hash, CancellationToken cancellationToken);
    Task SetRoleAsync(Guid user, Guid project, Role? role, CancellationToken cancellationToken);
    Task<IReadOnlyList<RoleAssignment>> ListRolesAsync(Guid? user, Guid? project, CancellationToken cancellationToken);

    Task CreateCredentialAsync(Credential credential, CancellationToken cancellationToken);
    Task<Credential?> FindCredentialAsync(string sha256, CancellationToken cancellationToken);
    Task<IReadOnlyList<Credential>> ListCredentialsAsync(Guid user, CancellationToken cancellationToken);

    // ---------- audit ----------

    /// <summary>Appends an entry, chaining it to the last one (sequence and hashes are assigned here, under the single writer).</summary>
    Task<Stratus.Core.Audit.AuditEntry> AppendAuditAsync(DateTimeOffset at, string actor, string? project, string method, string route, string? target, int status, string source, CancellationToken cancellationToken);

    /// <summary>Entries with seq greater than <paramref name="after"/>, oldest first.</summary>
    Task<IReadOnlyList<Stratus.Core.Audit.AuditEntry>> ListAuditAsync(long after, int limit, CancellationToken cancellationToken);

    /// <summary>Marks a credential revoked (idempotent); false when there is none with that id.</summary>
    Task<bool> RevokeCredentialAsync(Guid id, DateTimeOffset at, CancellationToken cancellationToken);
}
