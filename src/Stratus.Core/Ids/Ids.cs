namespace Stratus.Core.Ids;

/// <summary>Parses and formats the 128-bit ids every Stratus object carries (lower-case UUID text).</summary>
public static class IdFormat
{
    /// <summary>Parses a UUID in any of .NET's accepted forms; false when <paramref name="text"/> is not one.</summary>
    public static bool TryParse(string? text, out Guid value) => Guid.TryParse(text, out value);
}

/// <summary>Identifies a cloud server (an instance). Stable for the server's whole life.</summary>
public readonly record struct InstanceId(Guid Value)
{
    public static InstanceId New() => new(Guid.CreateVersion7());
    public static bool TryParse(string? text, out InstanceId id) { var ok = Guid.TryParse(text, out var g); id = new(g); return ok; }
    public override string ToString() => Value.ToString("D");
}

/// <summary>Identifies a physical host (a resource provider).</summary>
public readonly record struct HostId(Guid Value)
{
    public static HostId New() => new(Guid.CreateVersion7());
    public static bool TryParse(string? text, out HostId id) { var ok = Guid.TryParse(text, out var g); id = new(g); return ok; }
    public override string ToString() => Value.ToString("D");
}

/// <summary>Identifies a flavor (a named resource size).</summary>
public readonly record struct FlavorId(Guid Value)
{
    public static FlavorId New() => new(Guid.CreateVersion7());
    public static bool TryParse(string? text, out FlavorId id) { var ok = Guid.TryParse(text, out var g); id = new(g); return ok; }
    public override string ToString() => Value.ToString("D");
}

/// <summary>Identifies a disk image.</summary>
public readonly record struct ImageId(Guid Value)
{
    public static ImageId New() => new(Guid.CreateVersion7());
    public static bool TryParse(string? text, out ImageId id) { var ok = Guid.TryParse(text, out var g); id = new(g); return ok; }
    public override string ToString() => Value.ToString("D");
}

/// <summary>Identifies one requested operation; retries of the same operation carry the same id.</summary>
public readonly record struct OperationId(Guid Value)
{
    public static OperationId New() => new(Guid.CreateVersion7());
    public override string ToString() => Value.ToString("D");
}
