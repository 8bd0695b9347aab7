#!/usr/bin/env bash
# Repeats issue 7's fault injections with real processes and real VMs: each run of the HA scenario
# injects three faults (a host failure with 3 HA VMs: agent + every QEMU SIGKILLed; an agent crash
# alone; an agent cut off through a black-holing proxy) and appends its figures to a JSON-lines file.
# Usage: bench/ha-faults.sh [RUNS=34] [OUT=.build/ha-faults.jsonl]   (34 runs = 102 injections)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/env.sh"
"$ROOT/tools/build.sh" all >/dev/null || { echo "build failed" >&2; exit 1; }
bash "$ROOT/tools/guest/build.sh" "$ROOT/tools/guest/out/tiny" >/dev/null || { echo "guest build failed" >&2; exit 1; }
RUNS="${1:-34}"; OUT="${2:-$ROOT/.build/ha-faults.jsonl}"
: > "$OUT"
failed=0
for i in $(seq 1 "$RUNS"); do
  before=$(wc -l < "$OUT")
  if ! STRATUS_HA_FIGURES="$OUT" STRATUS_TINY_GUEST_DIR="$ROOT/tools/guest/out/tiny" STRATUS_TINY_IMAGE="$ROOT/tools/guest/out/tiny" \
      dotnet test "$ROOT/tests/Stratus.FunctionalTests" -c Release --no-build --nologo --filter "FullyQualifiedName~HaScenario" \
        --logger "console;verbosity=normal" >"$OUT.run-$i.log" 2>&1; then
    failed=$((failed+1)); echo "run $i: FAILED (log: $OUT.run-$i.log)" >&2
  elif [ "$(wc -l < "$OUT")" -le "$before" ]; then
    failed=$((failed+1)); echo "run $i: FAILED, no figures written: did the test run? (log: $OUT.run-$i.log)" >&2
  else
    rm -f "$OUT.run-$i.log"; echo "run $i: ok" >&2
  fi
done
python3 - "$OUT" "$RUNS" "$failed" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs, failed = int(sys.argv[2]), int(sys.argv[3])
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None
per_vm = [x for r in rows for x in r["recovered_vm_after_suspicion_s"]]
print(json.dumps({
  "runs": runs, "runs_failed": failed, "injections": 3 * len(rows),
  "declared_after_suspicion_s_median": statistics.median(r["host_failure_declared_after_suspicion_s"] for r in rows) if rows else None,
  "host_failure_all_active_s": {"median": statistics.median(r["host_failure_all_active_s"] for r in rows), "max": max(r["host_failure_all_active_s"] for r in rows)} if rows else None,
  "host_failure_all_answering_s": {"median": statistics.median(r["host_failure_all_answering_s"] for r in rows), "max": max(r["host_failure_all_answering_s"] for r in rows)} if rows else None,
  "recovery_per_vm_after_suspicion_s": {"median": statistics.median(per_vm), "p95": pct(per_vm, 95), "max": max(per_vm)} if per_vm else None,
  "cut_off_recovered_s": {"median": statistics.median(r["cut_off_recovered_s"] for r in rows), "max": max(r["cut_off_recovered_s"] for r in rows)} if rows else None,
  "vms_lost": sum(r["vms_lost"] for r in rows), "vms_run_twice": sum(r["vms_run_twice"] for r in rows),
}, indent=1))
PY
