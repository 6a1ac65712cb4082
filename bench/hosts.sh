#!/bin/bash
# Hosts-file updates (issue 3): 500 sandboxes on one network with 1000 peers; time and bytes
# written when one peer is added and removed across all their files, against a naive writer
# that re-renders and rewrites each whole file, in the same run.
# usage: bench/hosts.sh [SANDBOXES] [PEERS] [ROUNDS]
set -euo pipefail
SANDBOXES=${1:-500}
PEERS=${2:-1000}
ROUNDS=${3:-21}
BIN=.build/release/dnsd-bench
[ -x "$BIN" ] || swift build -c release --product dnsd-bench >/dev/null
# On the root filesystem, where /etc/netns lives, not on a tmpfs.
WORK=$(mktemp -d /var/tmp/dnsd-hosts-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
"$BIN" hosts "$WORK" "$SANDBOXES" "$PEERS" "$ROUNDS"
