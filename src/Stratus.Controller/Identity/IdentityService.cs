using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Stratus.Core.Identity;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller.Identity;

/// <summary>Settings of identity: session lifetime, password hashing cost, brute-force slow-down.</summary>
public sealed class IdentityOptions
{
    /// <summary>How long a login session token lives. Default 12 h.</summary>
    public TimeSpan SessionLifetime { get; init; } = TimeSpan.FromHours(12);

    /// <summary>PBKDF2-HMAC-SHA256 iterations for new password hashes (OWASP 2023: 600 000).</summary>
    public int PasswordIterations { get; init; } = 600_000;

    /// <summary>Failed logins (per user name and per source address) allowed before each further attempt must wait.</summary>
    public int FreeFailures { get; init; } = 5;

    /// <summary>The wait after the first failure beyond the free ones; doubles with each further failure, up to <see cref="MaxLockout"/>.</summary>
    public TimeSpan FirstLockout { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxLockout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long an authenticated credential is remembered in memory (revocations through this controller take effect at once).</summary>
    public TimeSpan CacheFor { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Projects, users, roles and bearer credentials. Passwords are stored as PBKDF2-HMAC-SHA256 hashes
/// (slow, salted; for passwords only). Tokens and API keys are 128-bit random secrets stored only as
/// their SHA-256, so checking one is a hash and a lookup — microseconds once cached.
/// </summary>
public sealed partial class IdentityService(IStateStore store, IdentityOptions options, TimeProvider time, ILogger<IdentityService> log)
{
    /// <summary>Every secret starts with this, so leaked ones are easy to find (secret scanners) and garbage is refused before any lookup.</summary>
    public const string TokenPrefix = "stratus_";

    private const int SecretChars = 22; // 16 bytes, base64url without padding

    private readonly ConcurrentDictionary<string, (Principal Principal, DateTimeOffset CachedAt)> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int Failures, DateTimeOffset Until)> _failures = new(StringComparer.Ordinal);

    public IdentityOptions Options => options;

    // ---------- secrets and hashes ----------

    /// <summary>A new secret: the prefix and 128 random bits.</summary>
    public static string NewSecret() => TokenPrefix + Base64Url(RandomNumberGenerator.GetBytes(16));

    public static string Sha256Hex(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>True when the text has the shape of a Stratus secret (checked before any store lookup).</summary>
    public static bool LooksLikeSecret(string? s) =>
        s is { Length: TokenPrefixLength + SecretChars } && s.StartsWith(TokenPrefix, StringComparison.Ordinal) &&
        s.AsSpan(TokenPrefixLength).IndexOfAnyExcept("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") < 0;

    private const int TokenPrefixLength = 8;

    private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>"pbkdf2-sha256$ITERATIONS$SALT$HASH" (base64).</summary>
    public string HashPassword(string password)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, options.PasswordIterations, HashAlgorithmName.SHA256, 32);
        return $"pbkdf2-sha256${options.PasswordIterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    public static bool VerifyPassword(string password, string? stored)
    {
        var parts = stored?.Split('$');
        if (parts is not { Length: 4 } || parts[0] != "pbkdf2-sha256" || !int.TryParse(parts[1], out var iterations) || iterations < 1)
        {
            return false;
        }
        try
        {
            var salt = Convert.FromBase64String(parts[2]);
            var expected = Convert.FromBase64String(parts[3]);
            var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, expected.Length);
            return CryptographicOperations.FixedTimeEquals(actual, expected);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    // ---------- authentication ----------

    /// <summary>The caller behind a bearer secret, or null when it is unknown, malformed, expired or revoked (or its user lost the role).</summary>
    public async Task<Principal?> AuthenticateAsync(string? secret, CancellationToken ct)
    {
        if (!LooksLikeSecret(secret))
        {
            return null;
        }
        var sha = Sha256Hex(secret!);
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(sha, out var hit) && now - hit.CachedAt < options.CacheFor)
        {
            return hit.Principal.ExpiresAt is { } e && e <= now ? null : hit.Principal;
        }
        var cred = await store.FindCredentialAsync(sha, ct);
        if (cred is null || cred.RevokedAt is not null || cred.ExpiresAt is { } exp && exp <= now)
        {
            _cache.TryRemove(sha, out _);
            return null;
        }
        var principal = await PrincipalAsync(cred, ct);
        if (principal is null)
        {
            _cache.TryRemove(sha, out _);
            return null;
        }
        _cache[sha] = (principal, now);
        return principal;
    }

    private async Task<Principal?> PrincipalAsync(Credential cred, CancellationToken ct)
    {
        var user = await store.FindUserAsync(cred.UserId.ToString("D"), ct);
        var project = await store.GetProjectAsync(cred.ProjectId, ct);
        var role = (await store.ListRolesAsync(cred.UserId, cred.ProjectId, ct)).FirstOrDefault();
        return user is null || user.Disabled || project is null || role is null
            ? null
            : new Principal(user.Id, user.Name, project.Id, project.Name, role.Role, cred.Id, cred.ExpiresAt, cred.Kind == Credential.Session);
    }

    /// <summary>Forgets every remembered credential (after a change of roles, say).</summary>
    public void ForgetAll() => _cache.Clear();

    /// <summary>
    /// Password login → a session token scoped to a project. Failures are counted per user name and per
    /// source address; past <see cref="IdentityOptions.FreeFailures"/>, attempts are refused (429) until a
    /// doubling wait has passed, whether or not the password would be right.
    /// </summary>
    public async Task<Outcome<TokenDto>> LoginAsync(LoginRequest r, string source, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (string.IsNullOrEmpty(r.User) || r.User.Length > 128)
        {
            errors.Add(new("user", "required", "give the user name (at most 128 characters)"));
        }
        if (string.IsNullOrEmpty(r.Password) || r.Password.Length > 1024)
        {
            errors.Add(new("password", "required", "give the password (at most 1024 characters)"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var now = time.GetUtcNow();
        var keys = new[] { "user:" + r.User, "addr:" + source };
        foreach (var k in keys)
        {
            if (_failures.TryGetValue(k, out var f) && f.Until > now)
            {
                var wait = Math.Ceiling((f.Until - now).TotalSeconds);
                return new Problem("too_many_attempts", 429, "Too many failed logins",
                    $"too many failed logins for this {(k.StartsWith("user:", StringComparison.Ordinal) ? "user" : "address")}; try again in {wait:0} s");
            }
        }
        var user = await store.FindUserAsync(r.User!, ct);
        // Hash even for unknown users, so timing does not tell which names exist.
        var ok = VerifyPassword(r.Password!, user?.PasswordHash ?? DummyHash) && user is { Disabled: false };
        if (!ok)
        {
            foreach (var k in keys)
            {
                _failures.AddOrUpdate(k, _ => Fail(1, now), (_, f) => Fail(f.Failures + 1, now));
            }
            LogLoginFailed(log, r.User!, source);
            return new Problem("invalid_credentials", 401, "Login failed", "unknown user or wrong password");
        }
        foreach (var k in keys)
        {
            _failures.TryRemove(k, out _);
        }
        var roles = await store.ListRolesAsync(user!.Id, null, ct);
        RoleAssignment? role;
        if (r.Project is { Length: > 0 } pname)
        {
            var p = await store.FindProjectAsync(pname, ct);
            role = p is null ? null : roles.FirstOrDefault(x => x.ProjectId == p.Id);
            if (role is null)
            {
                return new Problem("no_role", 403, "No role in that project", $"user '{user.Name}' has no role in a project named or with id '{pname}'");
            }
        }
        else
        {
            role = roles.FirstOrDefault(x => x.ProjectId == Project.AdminId) ?? (roles.Count == 1 ? roles[0] : null);
            if (role is null)
            {
                return new Problem("project_required", 400, "Choose a project",
                    roles.Count == 0 ? $"user '{user.Name}' has no role in any project" : $"user '{user.Name}' has roles in {roles.Count} projects: give one");
            }
        }
        return await IssueAsync(user, role.ProjectId, Credential.Session, null, now + options.SessionLifetime, ct);
    }

    private (int, DateTimeOffset) Fail(int failures, DateTimeOffset now)
    {
        if (failures <= options.FreeFailures)
        {
            return (failures, DateTimeOffset.MinValue);
        }
        var wait = options.FirstLockout * Math.Pow(2, Math.Min(20, failures - options.FreeFailures - 1));
        return (failures, now + (wait > options.MaxLockout ? options.MaxLockout : wait));
    }

    private static readonly string DummyHash = "pbkdf2-sha256$600000$" + Convert.ToBase64String(new byte[16]) + "$" + Convert.ToBase64String(new byte[32]);

    private async Task<Outcome<TokenDto>> IssueAsync(User user, Guid project, string kind, string? name, DateTimeOffset? expires, CancellationToken ct)
    {
        var secret = NewSecret();
        var cred = new Credential(Guid.NewGuid(), Sha256Hex(secret), user.Id, project, kind, name, time.GetUtcNow(), expires, null);
        await store.CreateCredentialAsync(cred, ct);
        var p = await PrincipalAsync(cred, ct);
        return new TokenDto(cred.Id.ToString("D"), secret, kind, user.Name, p?.ProjectName ?? project.ToString("D"), p?.Role.ToString().ToLowerInvariant() ?? "", expires, name);
    }

    /// <summary>An API key for the caller, in the caller's project, with the caller's role there.</summary>
    public async Task<Outcome<TokenDto>> CreateApiKeyAsync(Principal caller, CreateApiKeyRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (r.Name is not null && NameRules.Check(r.Name) is { } why)
        {
            errors.Add(new("name", "invalid", why));
        }
        if (r.ExpiresInDays is { } d && (double.IsNaN(d) || d <= 0 || d > 3650))
        {
            errors.Add(new("expires_in_days", "out_of_range", "must be more than 0 and at most 3650"));
        }
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var user = await store.FindUserAsync(caller.UserId.ToString("D"), ct);
        if (user is null)
        {
            return Problem.NotFound("user", caller.UserName);
        }
        return await IssueAsync(user, caller.ProjectId, Credential.ApiKey, r.Name,
            r.ExpiresInDays is { } days ? time.GetUtcNow() + TimeSpan.FromDays(days) : null, ct);
    }

    public async Task<IReadOnlyList<CredentialDto>> ListCredentialsAsync(Principal caller, CancellationToken ct)
    {
        var projects = (await store.ListProjectsAsync(ct)).ToDictionary(p => p.Id, p => p.Name);
        return [.. (await store.ListCredentialsAsync(caller.UserId, ct)).Select(c => new CredentialDto(c.Id.ToString("D"), c.Kind, c.Name,
            projects.GetValueOrDefault(c.ProjectId, c.ProjectId.ToString("D")), c.CreatedAt, c.ExpiresAt, c.RevokedAt))];
    }

    /// <summary>Revokes one of the caller's credentials (cloud admins: anyone's). Takes effect at once.</summary>
    public async Task<Outcome<bool>> RevokeAsync(Principal caller, string id, CancellationToken ct)
    {
        if (!Guid.TryParse(id, out var gid))
        {
            return Problem.NotFound("credential", id);
        }
        var mine = (await store.ListCredentialsAsync(caller.UserId, ct)).Any(c => c.Id == gid);
        if (!mine && !caller.IsCloudAdmin)
        {
            return Problem.NotFound("credential", id);
        }
        if (!await store.RevokeCredentialAsync(gid, time.GetUtcNow(), ct))
        {
            return Problem.NotFound("credential", id);
        }
        ForgetAll();
        return true;
    }

    // ---------- projects, users, roles ----------

    public async Task<Outcome<Project>> CreateProjectAsync(CreateProjectRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (NameRules.Check(r.Name) is { } why)
        {
            errors.Add(new("name", "invalid", why));
        }
        var quotas = Merge(Quotas.Default, r.Quotas, errors);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        var p = new Project(Guid.NewGuid(), r.Name!, quotas, time.GetUtcNow());
        return await store.CreateProjectAsync(p, ct) ? p : Problem.Conflict("name_taken", $"a project named '{r.Name}' already exists");
    }

    public async Task<Outcome<Project>> SetQuotasAsync(Project p, QuotasDto q, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var quotas = Merge(p.Quotas, q, errors);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        await store.SetQuotasAsync(p.Id, quotas, ct);
        return p with { Quotas = quotas };
    }

    private static Quotas Merge(Quotas current, QuotasDto? q, List<FieldError> errors)
    {
        if (q is null)
        {
            return current;
        }
        void Check(string field, long? v)
        {
            if (v is < 0)
            {
                errors.Add(new($"quotas.{field}", "out_of_range", "must be 0 or more"));
            }
        }
        Check("instances", q.Instances);
        Check("vcpus", q.Vcpus);
        Check("ram_mib", q.RamMib);
        Check("disk_gib", q.DiskGib);
        Check("snapshots", q.Snapshots);
        Check("backups", q.Backups);
        return new Quotas(q.Instances ?? current.Instances, q.Vcpus ?? current.Vcpus, q.RamMib ?? current.RamMib, q.DiskGib ?? current.DiskGib,
            q.Snapshots ?? current.Snapshots, q.Backups ?? current.Backups);
    }

    /// <summary>A user with a role in one project. Cloud admins may create users anywhere; project admins in their own project.</summary>
    public async Task<Outcome<User>> CreateUserAsync(Principal caller, CreateUserRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        if (NameRules.Check(r.Name) is { } why)
        {
            errors.Add(new("name", "invalid", why));
        }
        if (r.Password is null || r.Password.Length < 8 || r.Password.Length > 1024)
        {
            errors.Add(new("password", "invalid", "must be 8 to 1024 characters"));
        }
        var role = ParseRole(r.Role, errors);
        var project = await ResolveProjectForAsync(caller, r.Project, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (project is null)
        {
            return Problem.NotFound("project", r.Project!);
        }
        if (!caller.IsCloudAdmin && !(caller.ProjectId == project.Id && caller.Role == Role.Admin))
        {
            return new Problem("forbidden", 403, "Forbidden", "only cloud admins and the project's admins may add users to it");
        }
        var user = new User(Guid.NewGuid(), r.Name!, HashPassword(r.Password!), time.GetUtcNow());
        return await store.CreateUserAsync(user, new RoleAssignment(user.Id, project.Id, role!.Value), ct)
            ? user
            : Problem.Conflict("name_taken", $"a user named '{r.Name}' already exists");
    }

    /// <summary>Gives (or takes away, with role null) a user's role in a project.</summary>
    public async Task<Outcome<User>> SetRoleAsync(Principal caller, string userRef, RoleRequest r, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        Role? role = r.Role is null ? null : ParseRole(r.Role, errors);
        var project = await ResolveProjectForAsync(caller, r.Project, errors, ct);
        if (errors.Count > 0)
        {
            return Problem.Validation(errors);
        }
        if (project is null)
        {
            return Problem.NotFound("project", r.Project!);
        }
        if (!caller.IsCloudAdmin && !(caller.ProjectId == project.Id && caller.Role == Role.Admin))
        {
            return new Problem("forbidden", 403, "Forbidden", "only cloud admins and the project's admins may change roles in it");
        }
        var user = await store.FindUserAsync(userRef, ct);
        if (user is null)
        {
            return Problem.NotFound("user", userRef);
        }
        if (user.Id == caller.UserId && project.Id == caller.ProjectId && role != Role.Admin && caller.Role == Role.Admin)
        {
            return Problem.Conflict("last_admin", "you cannot lower your own admin role; ask another admin");
        }
        await store.SetRoleAsync(user.Id, project.Id, role, ct);
        ForgetAll();
        return user;
    }

    private async Task<Project?> ResolveProjectForAsync(Principal caller, string? reference, List<FieldError> errors, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(reference))
        {
            errors.Add(new("project", "required", "give the project"));
            return null;
        }
        var p = await store.FindProjectAsync(reference, ct);
        // Other tenants' projects do not exist for a project admin.
        return p is not null && (caller.IsCloudAdmin || p.Id == caller.ProjectId) ? p : null;
    }

    private static Role? ParseRole(string? role, List<FieldError> errors)
    {
        if (Enum.TryParse<Role>(role, true, out var r) && Enum.IsDefined(r) && !int.TryParse(role, out _))
        {
            return r;
        }
        errors.Add(new("role", "invalid", "must be one of admin, member, reader"));
        return null;
    }

    public async Task<UserDto> ToDtoAsync(User u, CancellationToken ct)
    {
        var projects = (await store.ListProjectsAsync(ct)).ToDictionary(p => p.Id, p => p.Name);
        var roles = await store.ListRolesAsync(u.Id, null, ct);
        return new UserDto(u.Id.ToString("D"), u.Name, u.Disabled, u.CreatedAt,
            [.. roles.Select(r => new RoleDto(projects.GetValueOrDefault(r.ProjectId, "?"), r.ProjectId.ToString("D"), r.Role.ToString().ToLowerInvariant()))]);
    }

    /// <summary>
    /// On a new cloud: the user <c>admin</c> (admin of the admin project) with a random password and an
    /// API key, written to <paramref name="file"/> (mode 0600). Returns false when users already exist.
    /// </summary>
    public async Task<bool> BootstrapAdminAsync(string file, CancellationToken ct)
    {
        if (await store.CountUsersAsync(ct) > 0)
        {
            return false;
        }
        var password = Base64Url(RandomNumberGenerator.GetBytes(18));
        var user = new User(Guid.NewGuid(), "admin", HashPassword(password), time.GetUtcNow());
        if (!await store.CreateUserAsync(user, new RoleAssignment(user.Id, Project.AdminId, Role.Admin), ct))
        {
            return false;
        }
        var key = await IssueAsync(user, Project.AdminId, Credential.ApiKey, "bootstrap", null, ct);
        var json = System.Text.Json.JsonSerializer.Serialize(new BootstrapCredential("admin", password, Project.AdminName, key.Value!.Token), WireJson.Options);
        var tmp = file + ".tmp";
        await using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite); // before any secret is written
            }
            await fs.WriteAsync(Encoding.UTF8.GetBytes(json), ct);
            await fs.FlushAsync(ct);
        }
        File.Move(tmp, file, true);
        LogBootstrapped(log, file);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "failed login for '{User}' from {Source}")]
    private static partial void LogLoginFailed(ILogger logger, string user, string source);

    [LoggerMessage(Level = LogLevel.Information, Message = "bootstrap admin credential written to {File}")]
    private static partial void LogBootstrapped(ILogger logger, string file);
}

/// <summary>DATA_DIR/admin-credentials.json: the first admin's password and API key.</summary>
public sealed record BootstrapCredential(string User, string Password, string Project, string ApiKey);
