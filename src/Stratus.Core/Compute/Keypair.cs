using System.Security.Cryptography;

namespace Stratus.Core.Compute;

/// <summary>An SSH public key a server's guest accepts (the private key never reaches Stratus).</summary>
public sealed record Keypair(Guid Id, string Name, string PublicKey, string Fingerprint, DateTimeOffset CreatedAt, Guid? ProjectId = null);

/// <summary>Parses and checks OpenSSH public keys ("type base64 [comment]").</summary>
public static class SshPublicKey
{
    private static readonly HashSet<string> Types = new(StringComparer.Ordinal)
    {
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    };

    /// <summary>Largest accepted key text, characters.</summary>
    public const int MaxLength = 16 * 1024;

    /// <summary>
    /// Returns the normalised key ("type base64 comment") and its SHA256 fingerprint as OpenSSH
    /// prints it, or why the text is not a public key.
    /// </summary>
    public static (string? Key, string? Fingerprint, string? Error) Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return (null, null, "is empty");
        }
        if (text.Length > MaxLength)
        {
            return (null, null, $"is longer than {MaxLength} characters");
        }
        var line = text.Trim();
        if (line.Contains('\n', StringComparison.Ordinal) || line.Any(c => char.IsControl(c)))
        {
            return (null, null, "must be a single line without control characters");
        }
        if (line.StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            return (null, null, "looks like a private key; give the public key (the .pub file)");
        }
        var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || !Types.Contains(parts[0]))
        {
            return (null, null, $"must start with a key type ({string.Join(", ", Types.Order(StringComparer.Ordinal))})");
        }
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(parts[1]);
        }
        catch (FormatException)
        {
            return (null, null, "the key data is not valid base64");
        }
        if (blob.Length < 4)
        {
            return (null, null, "the key data is truncated");
        }
        var len = (blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3];
        if (len <= 0 || len > blob.Length - 4 || System.Text.Encoding.ASCII.GetString(blob, 4, len) != parts[0])
        {
            return (null, null, "the key data does not match its type");
        }
        var minimum = parts[0] == "ssh-rsa" ? 200 : parts[0].Contains("ed25519", StringComparison.Ordinal) ? 51 : 100;
        if (blob.Length < minimum)
        {
            return (null, null, "the key data is truncated");
        }
        var fp = "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');
        var normalised = parts.Length == 3 ? $"{parts[0]} {parts[1]} {parts[2]}" : $"{parts[0]} {parts[1]}";
        return (normalised, fp, null);
    }
}
