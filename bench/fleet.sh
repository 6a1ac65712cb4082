#!/bin/bash
# Fleet (issue 22): N simulated hosts with one daemon each on one etcd, for N = 5, 20, 50; see
# bench/fleet.py for what it measures. usage: bench/fleet.sh [DNSD]
# env: FLEET_SIZES, FLEET_NETWORKS, FLEET_SANDBOXES, FLEET_RUNS, FLEET_IDLE_SECONDS, FLEET_ETCD_MEMBERS
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/fleet.sh needs root (network namespaces)"; exit 1; }
DNSD=${1:-.build/release/dnsd}
[ -x "$DNSD" ] || { echo "no dnsd binary at $DNSD (make release)"; exit 1; }
# 50 daemons, each with a metrics server and a watch per network, and etcd serving all of them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$(dirname "$0")/fleet.py" "$DNSD"
