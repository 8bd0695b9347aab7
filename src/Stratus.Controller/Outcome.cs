using Stratus.Core.Wire;

namespace Stratus.Controller;

/// <summary>Why a request was refused: a stable code, an HTTP status, and every field error at once.</summary>
public sealed record Problem(string Code, int Status, string Title, string? Detail = null, IReadOnlyList<FieldError>? Errors = null)
{
    public static Problem NotFound(string what, string reference) => new("not_found", 404, $"{what} not found", $"no {what} named or with id '{reference}'");

    public static Problem Validation(IReadOnlyList<FieldError> errors) =>
        new("validation_failed", 400, "The request is invalid", string.Join("; ", errors.Select(e => $"{e.Field}: {e.Message}")), errors);

    public static Problem Conflict(string code, string detail) => new(code, 409, "The request conflicts with the current state", detail);
}

/// <summary>A value or the problem that prevented it. Expected outcomes are values, not exceptions.</summary>
public readonly record struct Outcome<T>(T? Value, Problem? Problem)
{
    public bool Ok => Problem is null;

    public static implicit operator Outcome<T>(T value) => new(value, null);

    public static implicit operator Outcome<T>(Problem problem) => new(default, problem);
}
