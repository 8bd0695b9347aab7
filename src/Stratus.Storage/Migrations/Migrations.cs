using System.Reflection;

namespace Stratus.Storage;

/// <summary>Schema migrations, embedded as numbered SQL files per vendor (Migrations/&lt;Vendor&gt;/NNNN_name.sql), applied in order.</summary>
public static class Migrations
{
    public static IEnumerable<(string Id, string Sql)> For(string vendor)
    {
        var asm = typeof(Migrations).Assembly;
        var prefix = $"{asm.GetName().Name}.Migrations.{vendor}.";
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var s = asm.GetManifestResourceStream(name)!;
            using var r = new StreamReader(s);
            yield return (name[prefix.Length..^4], r.ReadToEnd());
        }
    }
}
