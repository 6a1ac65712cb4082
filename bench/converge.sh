#!/bin/bash
# Convergence (DESIGN.md §6); see bench/converge.py. usage: bench/converge.sh [DNSD] [COUNT]
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/converge.sh needs root (network namespaces)"; exit 1; }
exec python3 "$(dirname "$0")/converge.py" "${1:-.build/release/dnsd}" "${2:-100}"
