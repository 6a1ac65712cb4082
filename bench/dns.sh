#!/bin/bash
# DNS throughput and latency (DESIGN.md §6): dnsd's responder against dnsmasq serving the same
# names and a bare recvmmsg UDP echo (the machine's ceiling), all three inside one sandbox,
# driven by dnsperf in interleaved rounds. Prints per-round figures, paired ratios and medians.
#
# usage: bench/dns.sh [DNSD_BINARY]     env: ROUNDS (5), SECONDS_PER_RUN (5), NAMES (10000),
#                                            LATENCY_QPS (10000), SCALE_NAMES (100000, 0 = skip)
set -euo pipefail
DNSD=${1:-.build/release/dnsd}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
NAMES=${NAMES:-10000}
LATENCY_QPS=${LATENCY_QPS:-10000}
SCALE_NAMES=${SCALE_NAMES:-100000}
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" = 0 ] || { echo "bench/dns.sh needs root (network namespaces)"; exit 1; }
[ -x "$DNSD" ] || { echo "no dnsd binary at $DNSD (make release)"; exit 1; }

NS=dnsdb-$$
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

gcc -O2 -o "$WORK/udp-echo" "$HERE/udp-echo.c"

# Names c000000..; addresses are answer data only (nothing is ever sent to them). Queries: 45% name, 45% name.vnet, 10% missing names inside vnet.
make_data() {  # COUNT PREFIX
    python3 - "$1" "$WORK/$2" <<'PY'
import random, sys
n, prefix = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(prefix + ".dnsd", "w") as a, open(prefix + ".dnsmasq", "w") as b:
    for i in range(n):
        ip = f"10.{i // 62500}.{(i // 250) % 250}.{i % 250 + 2}"
        a.write(f"{ip} c{i:06d}\n")
        b.write(f"{ip} c{i:06d} c{i:06d}.vnet\n")
with open(prefix + ".queries", "w") as q:
    for _ in range(200000):
        r, i = random.random(), random.randrange(n)
        q.write(f"c{i:06d} A\n" if r < 0.45 else f"c{i:06d}.vnet A\n" if r < 0.9 else f"missing{i:06d}.vnet A\n")
PY
}

start_servers() {  # PREFIX
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    "$DNSD" serve-dns --netns "$NS" --network vnet --records "$WORK/$1.dnsd" --log-level warning &
    PIDS+=($!)
    # dnsmasq answers the same names itself (--local: never forwards vnet), cache big enough.
    ip netns exec "$NS" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
        --addn-hosts="$WORK/$1.dnsmasq" --local=/vnet/ --listen-address=127.0.0.12 --bind-interfaces \
        --port=53 --user=root --pid-file= --cache-size=10000 --log-facility=/dev/null &
    PIDS+=($!)
    ip netns exec "$NS" "$WORK/udp-echo" 127.0.0.13 53 &
    PIDS+=($!)
    for server in 127.0.0.11 127.0.0.12 127.0.0.13; do
        for _ in $(seq 100); do
            ip netns exec "$NS" dig +short +time=1 +tries=1 "@$server" c000001.vnet >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
}

stop_servers() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    ip netns del "$NS"
}

qps() {  # SERVER PREFIX -> queries per second
    ip netns exec "$NS" dnsperf -s "$1" -d "$WORK/$2.queries" -l "$SECONDS_PER_RUN" 2>&1 \
        | awk '/Queries per second/ {print $4}'
}

latency() {  # SERVER PREFIX -> "p50_us p99_us lost"
    ip netns exec "$NS" dnsperf -s "$1" -d "$WORK/$2.queries" -l "$SECONDS_PER_RUN" -Q "$LATENCY_QPS" -v 2>/dev/null \
        | python3 -c '
import sys
lat = sorted(float(l.split()[-1]) for l in sys.stdin if l.startswith("> "))
pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print(f"{pick(0.5):.0f} {pick(0.99):.0f} {len(lat)}")'
}

run_suite() {  # PREFIX LABEL
    local prefix=$1 label=$2
    echo
    echo "== $label: throughput, $ROUNDS interleaved rounds of ${SECONDS_PER_RUN}s (qps)"
    printf "%-6s %10s %10s %10s %12s %12s\n" round dnsd dnsmasq echo dnsd/dnsmasq dnsd/echo
    local ratios_m=() ratios_e=() all_d=() all_m=() all_e=()
    for r in $(seq "$ROUNDS"); do
        # Rotate the order each round so no server always runs first (or last).
        local order=(127.0.0.11 127.0.0.12 127.0.0.13)
        order=("${order[@]:$((r % 3))}" "${order[@]:0:$((r % 3))}")
        declare -A got=()
        for s in "${order[@]}"; do got[$s]=$(qps "$s" "$prefix"); done
        local d=${got[127.0.0.11]} m=${got[127.0.0.12]} e=${got[127.0.0.13]}
        local rm re
        rm=$(python3 -c "print(f'{$d/$m:.2f}')")
        re=$(python3 -c "print(f'{$d/$e:.2f}')")
        printf "%-6s %10.0f %10.0f %10.0f %12s %12s\n" "$r" "$d" "$m" "$e" "$rm" "$re"
        ratios_m+=("$rm"); ratios_e+=("$re"); all_d+=("$d"); all_m+=("$m"); all_e+=("$e")
        unset got
    done
    python3 - "${all_d[*]}" "${all_m[*]}" "${all_e[*]}" "${ratios_m[*]}" "${ratios_e[*]}" <<'PY'
import statistics, sys
d, m, e, rm, re = ([float(x) for x in a.split()] for a in sys.argv[1:])
med = statistics.median
print(f"{'median':<6} {med(d):10.0f} {med(m):10.0f} {med(e):10.0f} {med(rm):12.2f} {med(re):12.2f}")
print(f"bars: dnsd/dnsmasq >= 1.3: {'PASS' if med(rm) >= 1.3 else 'FAIL'}; dnsd/echo >= 0.8: {'PASS' if med(re) >= 0.8 else 'FAIL'}")
PY
    echo
    echo "== $label: latency at a fixed $LATENCY_QPS qps, ${SECONDS_PER_RUN}s per server, $ROUNDS rounds (microseconds)"
    printf "%-6s %10s %10s %10s %10s\n" round dnsd-p50 dnsd-p99 dnsmasq-p50 dnsmasq-p99
    local p99d=() p99m=()
    for r in $(seq "$ROUNDS"); do
        local ld lm
        if (( r % 2 )); then ld=$(latency 127.0.0.11 "$prefix"); lm=$(latency 127.0.0.12 "$prefix")
        else lm=$(latency 127.0.0.12 "$prefix"); ld=$(latency 127.0.0.11 "$prefix"); fi
        read -r d50 d99 _ <<<"$ld"; read -r m50 m99 _ <<<"$lm"
        printf "%-6s %10s %10s %10s %10s\n" "$r" "$d50" "$d99" "$m50" "$m99"
        p99d+=("$d99"); p99m+=("$m99")
    done
    python3 - "${p99d[*]}" "${p99m[*]}" <<'PY'
import statistics, sys
d, m = ([float(x) for x in a.split()] for a in sys.argv[1:])
md, mm = statistics.median(d), statistics.median(m)
print(f"median p99: dnsd {md:.0f} us, dnsmasq {mm:.0f} us; bar p99 <= dnsmasq's: {'PASS' if md <= mm else 'FAIL'}")
PY
}

echo "dnsd DNS benchmark: $(nproc) cores, $(uname -r), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'), $(dnsmasq --version | head -1)"
make_data "$NAMES" small
start_servers small
run_suite small "$NAMES names"
stop_servers
if [ "$SCALE_NAMES" != 0 ]; then
    make_data "$SCALE_NAMES" large
    start_servers large
    ROUNDS=$(( ROUNDS < 3 ? ROUNDS : 3 )) run_suite large "$SCALE_NAMES names"
    rss=$(ps -o rss= -p "${PIDS[0]}")
    echo "dnsd RSS with $SCALE_NAMES names: $((rss / 1024)) MiB"
    stop_servers
fi
