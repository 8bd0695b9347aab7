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
# The tiny guest every QEMU test boots (cached: seconds when nothing changed).
bash "$ROOT/tools/guest/build.sh" "$ROOT/tools/guest/out/tiny" >/dev/null || { echo "guest build failed"; exit 1; }
export STRATUS_TINY_GUEST_DIR="$ROOT/tools/guest/out/tiny" STRATUS_TINY_IMAGE="$ROOT/tools/guest/out/tiny"
mkdir -p .build/test-results
rm -f .build/test-results/*.log
# Unit and in-process projects run two at a time (2 cores); the projects that boot real VMs or
# start real processes run alone afterwards, so CPU-cap and timing checks are not starved.
heavy="tests/Stratus.Compute.Qemu.Tests/Stratus.Compute.Qemu.Tests.csproj tests/Stratus.FunctionalTests/Stratus.FunctionalTests.csproj"
light=$(ls tests/*/*.csproj | grep -v TestKit | grep -v -e Compute.Qemu.Tests -e FunctionalTests)
run_project='
  p="{}"; n=$(basename "$p" .csproj); t0=$(date +%s)
  dotnet test "$p" -c Release --no-build --nologo > ".build/test-results/$n.log" 2>&1
  echo "$?" > ".build/test-results/$n.rc"
  echo "[$n] $(grep -E "(Passed|Failed)! +- " ".build/test-results/$n.log" | tail -n 1 | sed -E "s/ - [^ ]+\.dll.*//") ($(( $(date +%s) - t0 )) s)"
'
printf '%s\n' $light | xargs -P 2 -I{} sh -c "$run_project"
printf '%s\n' $heavy | xargs -P 1 -I{} sh -c "$run_project"
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
