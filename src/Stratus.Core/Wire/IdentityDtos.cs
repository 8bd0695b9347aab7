namespace Stratus.Core.Wire;

/// <summary>POST /v1/auth/login. Without a project, the user's only project (or the admin project, if the user has a role there).</summary>
public sealed record LoginRequest(string? User, string? Password, string? Project);

/// <summary>A new bearer credential; the secret is shown once and never stored.</summary>
public sealed record TokenDto(string Id, string Token, string Kind, string User, string Project, string Role, DateTimeOffset? ExpiresAt, string? Name);

/// <summary>GET /v1/auth/whoami.</summary>
public sealed record WhoAmIDto(string UserId, string User, string ProjectId, string Project, string Role, bool CloudAdmin, string CredentialId, DateTimeOffset? ExpiresAt);

/// <summary>POST /v1/auth/keys: an API key for automation, scoped to the caller's project.</summary>
public sealed record CreateApiKeyRequest(string? Name, double? ExpiresInDays);

/// <summary>An API key or session as listed (never the secret).</summary>
public sealed record CredentialDto(string Id, string Kind, string? Name, string Project, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt);

/// <summary>A project's limits.</summary>
public sealed record QuotasDto(int? Instances, int? Vcpus, long? RamMib, long? DiskGib, int? Snapshots, int? Backups);

/// <summary>A tenant.</summary>
public sealed record ProjectDto(string Id, string Name, QuotasDto Quotas, DateTimeOffset CreatedAt);

/// <summary>POST /v1/projects.</summary>
public sealed record CreateProjectRequest(string? Name, QuotasDto? Quotas);

/// <summary>GET /v1/projects/{p}/quota: limit and use of each resource.</summary>
public sealed record QuotaUsageDto(string Project, QuotasDto Limits, QuotasDto Usage);

/// <summary>A user and their roles.</summary>
public sealed record UserDto(string Id, string Name, bool Disabled, DateTimeOffset CreatedAt, IReadOnlyList<RoleDto> Roles);

/// <summary>A role in a project.</summary>
public sealed record RoleDto(string Project, string ProjectId, string Role);

/// <summary>POST /v1/users.</summary>
public sealed record CreateUserRequest(string? Name, string? Password, string? Project, string? Role);

/// <summary>PUT /v1/users/{u}/roles: give (or with role null, take away) a role in a project.</summary>
public sealed record RoleRequest(string? Project, string? Role);

/// <summary>An audit log entry.</summary>
public sealed record AuditEntryDto(long Seq, DateTimeOffset At, string Actor, string? Project, string Method, string Route, string? Target, int Status, string Source, string Hash);

/// <summary>GET /v1/audit/verify: whether the chain is intact, and where it first breaks.</summary>
public sealed record AuditVerifyDto(bool Ok, long Entries, string HeadHash, long? FirstBadSeq, string? Problem);
