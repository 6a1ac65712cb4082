#!/bin/bash
# Attach (DESIGN.md §6): COUNT sandboxes attached to an overlay on one of three simulated hosts,
# each programmed as a peer on the other two — dnsd's netlink library against the same steps as
# ip/bridge commands, interleaved in one run; p50/p99, first 50 vs last 50; ROUNDS rounds (each
# on fresh simulated hosts) and their medians; then SCALE sandboxes on one host across four
# networks with kernel memory and full teardown.
# usage: bench/attach.sh [COUNT] [SCALE] [ROUNDS]      (defaults 200 1000 5)
set -euo pipefail
COUNT=${1:-200}
SCALE=${2:-1000}
ROUNDS=${3:-5}
[ "$(id -u)" = 0 ] || { echo "bench/attach.sh needs root (network namespaces)"; exit 1; }
BIN=.build/release/dnsd-bench
[ -x "$BIN" ] || swift build -c release --product dnsd-bench >/dev/null
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$(dirname "$0")/../scripts/cleanup.sh"
CLEANUP_NETNS+=("dnsdb-.*")
# The kernel's own floor for the namespace step, before and after: on this kernel it drifts
# upward with every namespace ever created (dnsd's and ip's alike), so compare within a run.
gcc -O2 -o "$WORK/netns-floor" "$(dirname "$0")/netns-floor.c"
mkdir -p /run/netns
echo "before: $("$WORK/netns-floor" "$COUNT" /run/netns "dnsdb-floor-$$-")"
"$BIN" attach "$COUNT" "$SCALE" "$ROUNDS"
echo "after:  $("$WORK/netns-floor" "$COUNT" /run/netns "dnsdb-floor-$$-")"
