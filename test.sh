#!/usr/bin/env bash
# Runs every test of Stratus: installs what the tests need (from the distribution's packages),
# builds in Release, runs all test projects, and prints one summary line "N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
export STRATUS_HOME="$ROOT"
source "$ROOT/tools/env.sh"
cd "$ROOT"
start=$(date +%s)
"$ROOT/tools/install-deps.sh" test || exit 1
"$ROOT/tools/build.sh" all || { echo "build failed"; exit 1; }
mkdir -p .build/test-results
rm -f .build/test-results/*.log
projects=$(ls tests/*/*.csproj | grep -v TestKit)
# Test projects run two at a time (2 cores); each project's own tests run in parallel inside it.
printf '%s\n' $projects | xargs -P 2 -I{} sh -c '
  p="{}"; n=$(basename "$p" .csproj)
  dotnet test "$p" -c Release --no-build --nologo > ".build/test-results/$n.log" 2>&1
  echo "$?" > ".build/test-results/$n.rc"
  tail -n 3 ".build/test-results/$n.log" | grep -E "Passed!|Failed!|error" | sed "s/^/[$n] /"
'
passed=0; failed=0; skipped=0; bad=0
for log in .build/test-results/*.log; do
  n=$(basename "$log" .log)
  line=$(grep -E "(Passed|Failed)! +- Failed: " "$log" | tail -n 1)
  if [ -z "$line" ]; then
    if grep -q "No test is available" "$log"; then echo "[$n] has no tests yet"; continue; fi
    echo "[$n] produced no test summary:"; tail -n 40 "$log"; bad=$((bad+1)); continue
  fi
  f=$(echo "$line" | sed -E 's/.*Failed: *([0-9]+).*/\1/')
  p=$(echo "$line" | sed -E 's/.*Passed: *([0-9]+).*/\1/')
  s=$(echo "$line" | sed -E 's/.*Skipped: *([0-9]+).*/\1/')
  passed=$((passed+p)); failed=$((failed+f)); skipped=$((skipped+s))
  if [ "$f" != 0 ] || [ "$(cat ".build/test-results/$n.rc")" != 0 ]; then
    echo "---- failures in $n:"; grep -E -A 25 "^\s+Failed " "$log" | head -n 120
  fi
done
[ "$bad" -gt 0 ] && failed=$((failed+bad))
echo "suite time: $(( $(date +%s) - start )) s"
echo "Total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
