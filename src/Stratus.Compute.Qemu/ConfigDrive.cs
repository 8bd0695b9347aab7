using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Stratus.Compute.Qemu;

/// <summary>
/// Builds a NoCloud config drive: a raw FAT image labelled <c>CIDATA</c> holding <c>/meta-data</c>
/// (<c>instance-id</c>, <c>local-hostname</c>, <c>public-keys</c> block list) and <c>/user-data</c>, the format
/// docs/guest.md specifies and cloud-init reads. Uses <c>mkfs.vfat</c> (dosfstools) and <c>mcopy</c> (mtools),
/// exec'd directly. Malformed public keys are refused with <c>invalid_public_key</c>, oversized user-data with
/// <c>user_data_too_large</c>.
/// </summary>
internal static partial class ConfigDrive
{
    [GeneratedRegex(@"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( [^\r\n""]*)?$")]
    private static partial Regex PublicKeyPattern();

    private static readonly DateTime FixedTime = new(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Checks the spec's metadata without touching the disk.</summary>
    public static void Validate(VmSpec spec, int maxUserDataBytes)
    {
        foreach (var key in spec.PublicKeys)
        {
            if (!PublicKeyPattern().IsMatch(key.Trim()))
            {
                throw new ComputeException("invalid_public_key", $"malformed public key: {key[..Math.Min(key.Length, 40)]}...");
            }
        }

        if (spec.UserData is { } ud && Encoding.UTF8.GetByteCount(ud) > maxUserDataBytes)
        {
            throw new ComputeException("user_data_too_large", $"user-data is {Encoding.UTF8.GetByteCount(ud)} bytes; the limit is {maxUserDataBytes}");
        }
    }

    /// <summary>The NoCloud meta-data document for <paramref name="spec"/>.</summary>
    public static string MetaData(VmSpec spec)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"instance-id: {spec.Id}\n");
        sb.Append(CultureInfo.InvariantCulture, $"local-hostname: {Hostname(spec.Name)}\n");
        if (spec.PublicKeys.Count > 0)
        {
            sb.Append("public-keys:\n");
            foreach (var key in spec.PublicKeys)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  - \"{key.Trim()}\"\n");
            }
        }

        return sb.ToString();
    }

    private static string Hostname(string name)
    {
        var cleaned = new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c == '-' ? c : '-').ToArray()).Trim('-');
        return cleaned.Length == 0 ? "stratus-guest" : cleaned[..Math.Min(cleaned.Length, 63)];
    }

    /// <summary>Writes the image to <paramref name="imagePath"/> (atomically: built beside it, then renamed).</summary>
    public static async Task BuildAsync(VmSpec spec, string imagePath, CancellationToken cancellationToken)
    {
        var dir = Path.GetDirectoryName(imagePath)!;
        var staging = Path.Combine(dir, "cidata.staging");
        Directory.CreateDirectory(staging);
        try
        {
            var meta = Path.Combine(staging, "meta-data");
            var user = Path.Combine(staging, "user-data");
            await File.WriteAllTextAsync(meta, MetaData(spec), cancellationToken);
            await File.WriteAllTextAsync(user, spec.UserData ?? "", cancellationToken);
            // Byte-identical for one spec (fixed volume id and timestamps): a migration destination on a local pool
            // rebuilds the drive the guest already read, and it must not change under the guest.
            File.SetLastWriteTimeUtc(meta, FixedTime);
            File.SetLastWriteTimeUtc(user, FixedTime);
            var bytes = new FileInfo(meta).Length + new FileInfo(user).Length;
            var kib = Math.Max(1024, ((bytes + 1023) / 1024) + 512);
            var tmp = imagePath + ".tmp";
            File.Delete(tmp);
            await RunAsync("mkfs.vfat", ["-C", "--invariant", "-n", "CIDATA", tmp, kib.ToString(CultureInfo.InvariantCulture)], cancellationToken);
            await RunAsync("mcopy", ["-m", "-i", tmp, meta, "::meta-data"], cancellationToken);
            await RunAsync("mcopy", ["-m", "-i", tmp, user, "::user-data"], cancellationToken);
            File.Move(tmp, imagePath, overwrite: true);
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private static async Task RunAsync(string tool, string[] args, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await ToolProcess.RunAsync(ToolProcess.Resolve(tool), args, "apt-get install dosfstools mtools", cancellationToken,
            new Dictionary<string, string> { ["MTOOLS_SKIP_CHECK"] = "1" });
        if (code != 0)
        {
            throw new ComputeException("hypervisor_error", $"{tool} failed: {stderr.Trim()}");
        }
    }
}
