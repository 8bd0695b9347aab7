#!/usr/bin/env bash
# Runs the crash-consistency scenario (SIGKILL of the controller during 50 concurrent creates,
# restart, client retries) N times (default 100) and prints the totals.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/env.sh"
"$ROOT/tools/build.sh" all
out="${2:-$ROOT/.build/crash-loop.txt}"
STRATUS_CRASH_ITERATIONS="${1:-100}" STRATUS_CRASH_SUMMARY="$out" \
  dotnet test "$ROOT/tests/Stratus.FunctionalTests" -c Release --no-build --filter "FullyQualifiedName~CrashConsistency" --logger "console;verbosity=normal"
cat "$out"
