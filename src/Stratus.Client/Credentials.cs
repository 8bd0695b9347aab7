using System.Text.Json;
using System.Text.Json.Nodes;

namespace Stratus.Client;

/// <summary>
/// Where the CLI finds its bearer credential for a controller URL, in order: an explicit token
/// (--token), $STRATUS_TOKEN, the token `stratus login` kept for that URL, then the bootstrap admin
/// credential `stratus up` recorded for that URL. Both files live in the configuration directory
/// ($STRATUS_CONFIG_DIR, else ~/.config/stratus), mode 0600.
/// </summary>
public static class Credentials
{
    public static string ConfigDir =>
        Environment.GetEnvironmentVariable("STRATUS_CONFIG_DIR") is { Length: > 0 } c ? c
        : Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData) is { Length: > 0 } app ? Path.Combine(app, "stratus")
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "stratus");

    /// <summary>Tokens from `stratus login`, per controller URL.</summary>
    public static string LoginFile => Path.Combine(ConfigDir, "tokens.json");

    /// <summary>Bootstrap admin credentials recorded by `stratus up`, per controller URL.</summary>
    public static string BootstrapFile => Path.Combine(ConfigDir, "credentials.json");

    public static string? Resolve(Uri url, string? explicitToken = null)
    {
        if (!string.IsNullOrEmpty(explicitToken))
        {
            return explicitToken;
        }
        if (Environment.GetEnvironmentVariable("STRATUS_TOKEN") is { Length: > 0 } env)
        {
            return env;
        }
        return Read(LoginFile, Key(url)) ?? Read(BootstrapFile, Key(url));
    }

    /// <summary>Which of the four sources <see cref="Resolve"/> would use (for `whoami` and error messages).</summary>
    public static string Source(Uri url, string? explicitToken = null) =>
        !string.IsNullOrEmpty(explicitToken) ? "--token"
        : Environment.GetEnvironmentVariable("STRATUS_TOKEN") is { Length: > 0 } ? "STRATUS_TOKEN"
        : Read(LoginFile, Key(url)) is not null ? LoginFile
        : Read(BootstrapFile, Key(url)) is not null ? BootstrapFile
        : "none";

    public static void SaveLogin(Uri url, string token) => Write(LoginFile, Key(url), token);

    public static bool ForgetLogin(Uri url) => Write(LoginFile, Key(url), null);

    public static void SaveBootstrap(Uri url, string apiKey) => Write(BootstrapFile, Key(url), apiKey);

    /// <summary>The bootstrap admin's API key a controller wrote into its data directory, if readable.</summary>
    public static string? ReadBootstrapKey(string dataDir)
    {
        var file = Path.Combine(dataDir, "admin-credentials.json");
        try
        {
            return JsonNode.Parse(File.ReadAllText(file))?["api_key"]?.GetValue<string>();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string Key(Uri url) => url.GetLeftPart(UriPartial.Authority).TrimEnd('/').ToLowerInvariant();

    private static string? Read(string file, string key)
    {
        try
        {
            return File.Exists(file) ? JsonNode.Parse(File.ReadAllText(file))?[key]?["token"]?.GetValue<string>() : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Sets (or with null removes) the token for a URL; under a lock file, replaced atomically, mode 0600.</summary>
    private static bool Write(string file, string key, string? token)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        using var lk = Lock(file + ".lock");
        JsonObject root;
        try
        {
            root = File.Exists(file) ? JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? [] : [];
        }
        catch (JsonException)
        {
            root = [];
        }
        var had = root.Remove(key);
        if (token is not null)
        {
            root[key] = new JsonObject { ["token"] = token, ["saved_at"] = DateTimeOffset.UtcNow.ToString("O") };
        }
        var tmp = file + "." + Environment.ProcessId + ".tmp";
        File.WriteAllText(tmp, "");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.WriteAllText(tmp, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, file, true);
        return had;
    }

    private static FileStream Lock(string path)
    {
        for (var i = 0; ; i++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (i < 200)
            {
                Thread.Sleep(25);
            }
        }
    }
}
