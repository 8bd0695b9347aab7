#!/usr/bin/env bash
# Builds Stratus in Release once, under a lock; later calls return at once unless a source changed.
# Usage: tools/build.sh [cli|all]   (cli: the executables ./stratus runs; all: the whole solution)
# Build output goes to stderr.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"
what="${1:-cli}"
cd "$STRATUS_HOME"
mkdir -p .build
exec 9>".build/build.lock"
flock 9
stamp=".build/stamp-$what"
newer() {
  [ ! -f "$stamp" ] && return 0
  [ -n "$(find src tests bench Directory.Build.props Directory.Packages.props global.json Stratus.slnx NuGet.Config \
    -newer "$stamp" -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.sql' -o -name '*.json' -o -name '*.slnx' -o -name '*.proto' -o -name '*.Config' \) \
    -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]
}
if newer; then
  touch ".build/stamp-next"
  if [ "$what" = all ]; then
    dotnet build Stratus.slnx -c Release -nologo -v:q -clp:NoSummary 1>&2
  else
    dotnet build src/Stratus.Api/Stratus.Api.csproj -c Release -nologo -v:q -clp:NoSummary 1>&2
    dotnet build src/Stratus.Agent/Stratus.Agent.csproj -c Release -nologo -v:q -clp:NoSummary 1>&2
    dotnet build src/Stratus.Cli/Stratus.Cli.csproj -c Release -nologo -v:q -clp:NoSummary 1>&2
  fi
  mv ".build/stamp-next" "$stamp"
  [ "$what" = all ] && cp "$stamp" ".build/stamp-cli"
fi
exit 0
