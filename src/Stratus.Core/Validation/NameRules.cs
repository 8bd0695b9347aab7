namespace Stratus.Core.Validation;

/// <summary>Rules for user-chosen names (servers, flavors, images, hosts).</summary>
public static class NameRules
{
    /// <summary>Longest accepted name, in characters.</summary>
    public const int MaxLength = 64;

    /// <summary>
    /// Returns null when <paramref name="name"/> is acceptable, otherwise why not. Names are 1–64
    /// characters of letters, digits, '-', '_' and '.', start with a letter or digit, and cannot be
    /// a UUID (so a reference is never ambiguous between a name and an id).
    /// </summary>
    public static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "must not be empty";
        }
        if (name.Length > MaxLength)
        {
            return $"must be at most {MaxLength} characters (got {name.Length})";
        }
        foreach (var c in name)
        {
            if (char.IsControl(c))
            {
                return "must not contain control characters";
            }
            if (c is '/' or '\\')
            {
                return "must not contain path separators";
            }
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return $"may contain only letters, digits, '-', '_' and '.' (found '{c}')";
            }
        }
        if (!char.IsAsciiLetterOrDigit(name[0]))
        {
            return "must start with a letter or digit";
        }
        if (Guid.TryParse(name, out _))
        {
            return "must not be a UUID";
        }
        return null;
    }
}
