#!/bin/bash
# DNS throughput and latency (DESIGN.md §6): dnsd's responder against dnsmasq serving the same
# names and a bare recvmmsg UDP echo (the machine's ceiling), all three inside one sandbox,
# driven by dnsperf in interleaved rounds. Prints per-round figures, paired ratios and medians.
# The names are dual stack (an IPv4 and an IPv6 address each): the rounds also run the same
# query mix as AAAA against dnsd, and the AAAA/A ratio shows IPv6 answers cost no more.
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
NSM=dnsdb-m$$
METRICS_PORT=${METRICS_PORT:-19153}
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$HERE/../scripts/cleanup.sh"
CLEANUP_NETNS+=("$NS" "$NSM")

gcc -O2 -o "$WORK/udp-echo" "$HERE/udp-echo.c"

# Names c000000..; addresses are answer data only (nothing is ever sent to them). Each name has
# an IPv4 and an IPv6 address: two records-file lines (one per family) and two hosts lines for
# dnsmasq. Queries: 45% name, 45% name.vnet, 10% missing names inside vnet; the same mix as A
# (PREFIX.queries) and as AAAA (PREFIX.queries6).
make_data() {  # COUNT PREFIX
    python3 - "$1" "$WORK/$2" <<'PY'
import random, sys
n, prefix = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(prefix + ".dnsd", "w") as a, open(prefix + ".dnsmasq", "w") as b:
    for i in range(n):
        ip = f"10.{i // 62500}.{(i // 250) % 250}.{i % 250 + 2}"
        ip6 = f"fd00::a:{i >> 16:x}:{i & 0xffff:x}"
        for address in (ip, ip6):
            a.write(f"{address} c{i:06d}\n")
            b.write(f"{address} c{i:06d} c{i:06d}.vnet\n")
for suffix, qtype in ((".queries", "A"), (".queries6", "AAAA")):
    random.seed(7)
    with open(prefix + suffix, "w") as q:
        for _ in range(200000):
            r, i = random.random(), random.randrange(n)
            q.write(f"c{i:06d} {qtype}\n" if r < 0.45 else f"c{i:06d}.vnet {qtype}\n" if r < 0.9 else f"missing{i:06d}.vnet {qtype}\n")
PY
}

start_servers() {  # PREFIX
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    "$DNSD" serve-dns --netns "$NS" --network vnet --records "$WORK/$1.dnsd" --log-level warning &
    PIDS+=($!)
    # The same responder with --metrics on, in a namespace of its own (metrics on and off in one run).
    ip netns add "$NSM"
    ip -n "$NSM" link set lo up
    "$DNSD" serve-dns --netns "$NSM" --network vnet --records "$WORK/$1.dnsd" --log-level warning --metrics "127.0.0.1:$METRICS_PORT" &
    PIDS+=($!)
    for _ in $(seq 100); do
        ip netns exec "$NSM" dig +short +time=1 +tries=1 @127.0.0.11 c000001.vnet >/dev/null 2>&1 && break
        sleep 0.1
    done
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
    stop_processes
    ip netns del "$NS"
    ip netns del "$NSM"
}

qps() {  # SERVER PREFIX -> queries per second ("metrics" is dnsd with --metrics, in its own namespace;
        # "aaaa" is dnsd asked the AAAA mix)
    if [ "$1" = aaaa ]; then
        ip netns exec "$NS" dnsperf -s 127.0.0.11 -d "$WORK/$2.queries6" -l "$SECONDS_PER_RUN" 2>&1 | awk '/Queries per second/ {print $4}'
        return
    fi
    if [ "$1" = metrics ]; then
        ip netns exec "$NSM" dnsperf -s 127.0.0.11 -d "$WORK/$2.queries" -l "$SECONDS_PER_RUN" 2>&1 | awk '/Queries per second/ {print $4}'
        return
    fi
    ip netns exec "$NS" dnsperf -s "$1" -d "$WORK/$2.queries" -l "$SECONDS_PER_RUN" 2>&1 \
        | awk '/Queries per second/ {print $4}'
}

latency() {  # SERVER PREFIX OUTFILE -> per-query latencies in microseconds, one per line
    ip netns exec "$NS" dnsperf -s "$1" -d "$WORK/$2.queries" -l "$SECONDS_PER_RUN" -Q "$LATENCY_QPS" -v 2>/dev/null \
        | awk '/^> / {printf "%.1f\n", $NF * 1e6}' > "$3"
}

run_suite() {  # PREFIX LABEL
    local prefix=$1 label=$2
    echo
    echo "== $label: throughput, $ROUNDS interleaved rounds of ${SECONDS_PER_RUN}s (qps)"
    printf "%-6s %10s %10s %12s %10s %10s %12s %12s %14s %10s\n" round dnsd dnsd-AAAA dnsd+metrics dnsmasq echo dnsd/dnsmasq dnsd/echo metrics/plain AAAA/A
    local ratios_m=() ratios_e=() ratios_x=() ratios_6=() all_d=() all_6=() all_x=() all_m=() all_e=()
    for r in $(seq "$ROUNDS"); do
        # Rotate the order each round so no server always runs first (or last).
        local order=(127.0.0.11 aaaa metrics 127.0.0.12 127.0.0.13)
        order=("${order[@]:$((r % 5))}" "${order[@]:0:$((r % 5))}")
        declare -A got=()
        for s in "${order[@]}"; do got[$s]=$(qps "$s" "$prefix"); done
        local d=${got[127.0.0.11]} six=${got[aaaa]} x=${got[metrics]} m=${got[127.0.0.12]} e=${got[127.0.0.13]}
        local rm re rx r6
        rm=$(python3 -c "print(f'{$d/$m:.2f}')")
        re=$(python3 -c "print(f'{$d/$e:.2f}')")
        rx=$(python3 -c "print(f'{$x/$d:.2f}')")
        r6=$(python3 -c "print(f'{$six/$d:.2f}')")
        printf "%-6s %10.0f %10.0f %12.0f %10.0f %10.0f %12s %12s %14s %10s\n" "$r" "$d" "$six" "$x" "$m" "$e" "$rm" "$re" "$rx" "$r6"
        ratios_m+=("$rm"); ratios_e+=("$re"); ratios_x+=("$rx"); ratios_6+=("$r6")
        all_d+=("$d"); all_6+=("$six"); all_x+=("$x"); all_m+=("$m"); all_e+=("$e")
        unset got
    done
    python3 - "${all_d[*]}" "${all_6[*]}" "${all_x[*]}" "${all_m[*]}" "${all_e[*]}" "${ratios_m[*]}" "${ratios_e[*]}" "${ratios_x[*]}" "${ratios_6[*]}" <<'PY'
import statistics, sys
d, six, x, m, e, rm, re, rx, r6 = ([float(v) for v in a.split()] for a in sys.argv[1:])
med = statistics.median
print(f"{'median':<6} {med(d):10.0f} {med(six):10.0f} {med(x):12.0f} {med(m):10.0f} {med(e):10.0f} {med(rm):12.2f} {med(re):12.2f} {med(rx):14.2f} {med(r6):10.2f}")
print(f"bars: dnsd/dnsmasq >= 1.3: {'PASS' if med(rm) >= 1.3 else 'FAIL'}; dnsd/echo >= 0.8: {'PASS' if med(re) >= 0.8 else 'FAIL'}; "
      f"dnsd AAAA/A >= 0.95: {'PASS' if med(r6) >= 0.95 else 'FAIL'}; metrics on/off (no loss beyond noise): {med(rx):.2f}")
PY
    echo "queries counted by the metrics: $(curl -s -m 5 "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^dnsd_dns_queries_total/ {s += $NF} END {printf "%.0f", s}')"
    echo
    echo "== $label: latency at a fixed $LATENCY_QPS qps, ${SECONDS_PER_RUN}s per server, $ROUNDS rounds (microseconds)"
    for r in $(seq "$ROUNDS"); do
        if (( r % 2 )); then latency 127.0.0.11 "$prefix" "$WORK/lat-dnsd-$r"; latency 127.0.0.12 "$prefix" "$WORK/lat-dnsmasq-$r"
        else latency 127.0.0.12 "$prefix" "$WORK/lat-dnsmasq-$r"; latency 127.0.0.11 "$prefix" "$WORK/lat-dnsd-$r"; fi
    done
    # Per-round percentiles, then the p99 of all rounds' samples pooled: a single round's p99 at
    # 10k qps rests on ~500 samples and swings with scheduler noise on 2 cores.
    python3 - "$WORK" "$ROUNDS" <<'PY'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name, r): return sorted(float(x) for x in open(f"{work}/lat-{name}-{r}") if x.strip())
def pct(v, q): return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
print(f"{'round':<6} {'dnsd-p50':>9} {'dnsd-p99':>9} {'dnsmasq-p50':>12} {'dnsmasq-p99':>12}")
pooled = {"dnsd": [], "dnsmasq": []}
per_round = {"dnsd": [], "dnsmasq": []}
for r in range(1, rounds + 1):
    row = []
    for name in ("dnsd", "dnsmasq"):
        v = load(name, r)
        pooled[name] += v
        per_round[name].append(pct(v, 0.99))
        row += [pct(v, 0.5), pct(v, 0.99)]
    print(f"{r:<6} {row[0]:9.0f} {row[1]:9.0f} {row[2]:12.0f} {row[3]:12.0f}")
for name in pooled: pooled[name].sort()
d, m = pct(pooled["dnsd"], 0.99), pct(pooled["dnsmasq"], 0.99)
print(f"median of per-round p99: dnsd {statistics.median(per_round['dnsd']):.0f} us, dnsmasq {statistics.median(per_round['dnsmasq']):.0f} us")
print(f"pooled p50/p99 ({len(pooled['dnsd'])} and {len(pooled['dnsmasq'])} answers): dnsd {pct(pooled['dnsd'], .5):.0f}/{d:.0f} us, "
      f"dnsmasq {pct(pooled['dnsmasq'], .5):.0f}/{m:.0f} us; bar pooled p99 <= dnsmasq's: {'PASS' if d <= m else 'FAIL'}")
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
