#!/usr/bin/env bash
# Runs every PlanetLab scenario of this folder and prints one JSON result per line.
# SIMULATE is the command that runs one scenario and prints its JSON result, default the CLI:
#   SIMULATE="./stratus simulate" bench/scenarios/run-planetlab.sh [--data DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SIMULATE="${SIMULATE:-./stratus simulate}"
for day in 20110303 20110306 20110309 20110322 20110325; do
  for policy in lr-mmt thr-mmt stratus lr-mmt-realistic stratus-realistic; do
    $SIMULATE "$here/planetlab-$day-$policy.json" -o json "$@" | tr -d '\n' | tr -s ' '
    echo
  done
done
