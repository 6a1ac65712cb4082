#!/bin/bash
# Attach (DESIGN.md §6): COUNT sandboxes attached to an overlay on one of three simulated hosts,
# each programmed as a peer on the other two — dnsd's netlink library against the same steps as
# ip/bridge commands, interleaved in one run; p50/p99, first 50 vs last 50; then SCALE
# sandboxes on one host across four networks with kernel memory and full teardown.
# usage: bench/attach.sh [COUNT] [SCALE]
set -euo pipefail
COUNT=${1:-200}
SCALE=${2:-1000}
[ "$(id -u)" = 0 ] || { echo "bench/attach.sh needs root (network namespaces)"; exit 1; }
BIN=.build/release/dnsd-bench
[ -x "$BIN" ] || swift build -c release --product dnsd-bench >/dev/null
cleanup() {
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^dnsdb-" || true); do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
"$BIN" attach "$COUNT" "$SCALE"
