using System.CommandLine;

namespace Stratus.Cli;

/// <summary>Local verbs that run parts of Stratus in this process (simulate, bench).</summary>
public static class Extensions
{
    public static IEnumerable<Command> Commands() => [];
}
