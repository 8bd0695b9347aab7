using System.Security.Cryptography;
using System.Text;
using Stratus.Core.Validation;
using Stratus.Core.Wire;
using Stratus.Storage;

namespace Stratus.Controller;

/// <summary>
/// Per-host agent tokens: 128-bit random values, shown once when issued and kept only as SHA-256,
/// so checking one costs a hash, and a stolen store does not let anyone pose as an agent.
/// A token is bound to its host name: it cannot register any other host.
/// </summary>
public sealed class AgentTokens(IStateStore store, TimeProvider time)
{
    /// <summary>Issues (replacing any previous) the token of <paramref name="hostName"/>.</summary>
    public async Task<Outcome<string>> IssueAsync(string? hostName, CancellationToken ct)
    {
        if (NameRules.Check(hostName) is { } error)
        {
            return Problem.Validation([new FieldError("host", "invalid_name", error)]);
        }
        var token = "sat_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        await store.SetAgentTokenAsync(hostName!, Hash(token), time.GetUtcNow(), ct);
        return token;
    }

    public async Task<bool> VerifyAsync(string hostName, string? token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token) || string.IsNullOrEmpty(hostName) || await store.GetAgentTokenAsync(hostName, ct) is not { } stored)
        {
            return false;
        }
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Hash(token)), Encoding.ASCII.GetBytes(stored));
    }

    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
