#!/usr/bin/env bash
# Hollow fleet: one stratus-agent process registers N simulated hosts (default 500) with a real
# stratusd over the gRPC agent endpoint; the script waits until all are connected, lets them
# heartbeat (1 s interval) for a measurement window, and prints the controller's CPU use during it
# (utime+stime from /proc, in cores) and its RSS, plus the agent process's CPU.
# Usage: bench/hollow-fleet.sh [HOSTS=500] [SECONDS=60] [PORT=7460]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/env.sh"
"$ROOT/tools/build.sh" cli
N="${1:-500}"; WINDOW="${2:-60}"; PORT="${3:-7460}"
DATA="$(mktemp -d /tmp/stratus-hollow-XXXXXX)"
STRATUSD="$ROOT/src/Stratus.Api/bin/Release/net10.0/stratusd"
AGENT="$ROOT/src/Stratus.Agent/bin/Release/net10.0/stratus-agent"
cleanup() { kill "${APID:-}" "${CPID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
"$STRATUSD" --data-dir "$DATA" --port "$PORT" --hosts 0 --expect-hosts "$N" --driver simulated >"$DATA/stratusd.log" 2>&1 &
CPID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null && [ -s "$DATA/admin-credentials.json" ] && break; sleep 0.1; done
AUTH="Authorization: Bearer $(sed -E 's/.*"api_key": *"([^"]+)".*/\1/' "$DATA/admin-credentials.json")"
# One token per hollow host, issued through the API (each host name gets its own).
for i in $(seq 1 "$N"); do
  tok=$(curl -sf -X POST -H "$AUTH" -H 'content-type: application/json' -d "{\"host\":\"hollow-$i\"}" "http://127.0.0.1:$PORT/v1/hosts/tokens" | sed -E 's/.*"token":"([^"]+)".*/\1/')
  echo "hollow-$i $tok"
done >"$DATA/tokens"
t0=$(date +%s.%N)
"$AGENT" --controller "unix:$DATA/agent.sock" --data-dir "$DATA/agent" --name hollow --hollow "$N" --driver simulated \
  --token-file "$DATA/tokens" --sim-delay-scale 0 >"$DATA/agent.log" 2>&1 &
APID=$!
while :; do
  c=$(curl -sf "http://127.0.0.1:$PORT/v1/health" | sed -E 's/.*"hosts_connected":([0-9]+).*/\1/')
  [ "$c" = "$N" ] && break
  sleep 0.2
done
t1=$(date +%s.%N)
sleep 5 # let registration settle into steady heartbeats
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks "$CPID"); a0=$(ticks "$APID"); s0=$(date +%s.%N)
sleep "$WINDOW"
c1=$(ticks "$CPID"); a1=$(ticks "$APID"); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' "/proc/$CPID/status")
curl -sf -H "$AUTH" "http://127.0.0.1:$PORT/v1/hosts" >"$DATA/hosts.json"
python3 - "$N" "$DATA/hosts.json" "$t0" "$t1" "$c0" "$c1" "$a0" "$a1" "$s0" "$s1" "$hz" "$rss" <<'PY'
import json, sys, datetime
n, hosts_file, t0, t1, c0, c1, a0, a1, s0, s1, hz, rss = sys.argv[1:]
el = float(s1) - float(s0)
items = json.load(open(hosts_file))["items"]
now = datetime.datetime.now(datetime.timezone.utc)
fresh = sum(1 for h in items if h.get("last_heartbeat") and (now - datetime.datetime.fromisoformat(h["last_heartbeat"])).total_seconds() < 3)
hosts = len(items)
print(json.dumps({
  "hosts": int(n), "hosts_registered": hosts, "heartbeat_within_3s": fresh, "connect_all_s": round(float(t1) - float(t0), 2),
  "window_s": round(el, 1),
  "controller_cores": round((int(c1) - int(c0)) / int(hz) / el, 3),
  "agent_process_cores": round((int(a1) - int(a0)) / int(hz) / el, 3),
  "controller_rss_mib": round(int(rss) / 1024),
  "heartbeats_per_s": int(n),
}))
PY
