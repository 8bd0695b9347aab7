using System.CommandLine;
using Stratus.Cli;

return await Commands.Build().Parse(args).InvokeAsync();
