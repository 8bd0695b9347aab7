namespace Stratus.Core.Identity;

/// <summary>What a user may do in a project. Ordered: every role can do what the ones before it can.</summary>
public enum Role { Reader = 1, Member = 2, Admin = 3 }

/// <summary>Per-project limits; checked atomically with the claim of a new server.</summary>
public sealed record Quotas(int Instances, int Vcpus, long RamMib, long DiskGib, int Snapshots, int Backups)
{
    /// <summary>What a new project gets: enough for the README's commands and a small application.</summary>
    public static Quotas Default { get; } = new(10, 20, 50 * 1024, 1000, 50, 50);

    /// <summary>No practical limit (the admin project).</summary>
    public static Quotas Unlimited { get; } = new(int.MaxValue, int.MaxValue, long.MaxValue, long.MaxValue, int.MaxValue, int.MaxValue);
}

/// <summary>A tenant: owns servers, private images, keypairs, groups, backups, and pays for them.</summary>
public sealed record Project(Guid Id, string Name, Quotas Quotas, DateTimeOffset CreatedAt)
{
    /// <summary>The built-in project whose admins administer the whole cloud (hosts, flavors, every project).</summary>
    public static readonly Guid AdminId = new("00000000-0000-0000-0000-00000000000a");

    public const string AdminName = "admin";
}

/// <summary>A person or robot that logs in. The password is kept only as a slow salted hash.</summary>
public sealed record User(Guid Id, string Name, string? PasswordHash, DateTimeOffset CreatedAt, bool Disabled = false);

/// <summary>A user's role in one project.</summary>
public sealed record RoleAssignment(Guid UserId, Guid ProjectId, Role Role);

/// <summary>
/// A bearer credential: a login session token (expires) or an API key (until revoked), scoped to one
/// project. Only the SHA-256 of the secret is stored.
/// </summary>
public sealed record Credential(
    Guid Id, string Sha256, Guid UserId, Guid ProjectId, string Kind, string? Name,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt)
{
    public const string Session = "session";
    public const string ApiKey = "api_key";
}

/// <summary>Who is calling: the user, the project the credential is scoped to, and the role there.</summary>
public sealed record Principal(Guid UserId, string UserName, Guid ProjectId, string ProjectName, Role Role, Guid CredentialId, DateTimeOffset? ExpiresAt, bool IsSession = false)
{
    /// <summary>Admins of the admin project administer the cloud; its members and readers may read cloud-wide state.</summary>
    public bool IsCloudAdmin => ProjectId == Project.AdminId && Role == Role.Admin;

    /// <summary>Any role in the admin project may read cloud-wide state (hosts, incidents, consolidation).</summary>
    public bool IsOperator => ProjectId == Project.AdminId;

    /// <summary>Only cloud admins see and act on every project's objects.</summary>
    public bool SeesAll => IsCloudAdmin;

    /// <summary>The project whose objects this caller sees; null for every project.</summary>
    public Guid? Scope => SeesAll ? null : ProjectId;

    /// <summary>What the action log records as the requester.</summary>
    public string Actor => $"{UserName}@{ProjectName}";
}
