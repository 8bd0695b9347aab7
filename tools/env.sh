# Sourced by ./stratus, ./test.sh and tools/*.sh: a build environment independent of $HOME.
STRATUS_HOME="${STRATUS_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export STRATUS_HOME
export DOTNET_CLI_HOME="${DOTNET_CLI_HOME:-$STRATUS_HOME/.build/home}"
export NUGET_PACKAGES="${NUGET_PACKAGES:-$STRATUS_HOME/.build/nuget}"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=1 DOTNET_GENERATE_ASPNET_CERTIFICATE=false
export MSBUILDTERMINALLOGGER=off
mkdir -p "$DOTNET_CLI_HOME" "$NUGET_PACKAGES"
if ! command -v dotnet >/dev/null 2>&1; then
  echo "stratus: the .NET 10 SDK (dotnet) is required and not on PATH" >&2
  exit 1
fi
