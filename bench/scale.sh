#!/bin/bash
# Scale (DESIGN.md §6): one daemon with SANDBOXES local sandboxes over four overlay networks and
# RECORDS endpoints cluster-wide (the rest written into etcd as another host's), then the
# daemon's RSS, how long it took to project them, its cluster cache, and dnsperf inside one of
# its sandboxes against 127.0.0.11 (names drawn from all the records).
# usage: bench/scale.sh [DNSD_BINARY]     env: SANDBOXES (1000), RECORDS (10000), SECONDS_PER_RUN (5)
set -euo pipefail
DNSD=${1:-.build/release/dnsd}
SANDBOXES=${SANDBOXES:-1000}
RECORDS=${RECORDS:-10000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh needs root (network namespaces)"; exit 1; }
[ -x "$DNSD" ] || { echo "no dnsd binary at $DNSD (make release)"; exit 1; }

. "$(dirname "$0")/../scripts/underlay.sh"
P=dnsdb-sc$$-
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$(dirname "$0")/../scripts/cleanup.sh"
CLEANUP_NETNS+=("${P}.*")

# Underlay, etcd at .254, the host at .1.
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_addhost "${P}h1" 198.18.0.1
underlay_etcd "${P}etcd" --quota-backend-bytes 4294967296
SOCK=$WORK/h1.sock
nsenter --net=/run/netns/${P}h1 "$DNSD" daemon --store etcd://198.18.0.254:2379 --advertise 198.18.0.1 --host-id "${P}h1" \
    --state-dir "$WORK/state" --sock "$SOCK" --upstream 127.0.0.1:9 --log-level warning 2> "$WORK/daemon.log" &
DAEMON=$!
PIDS+=($DAEMON)
client() { DNSD_SOCK=$SOCK "$DNSD" "$@"; }
for _ in $(seq 100); do client ps >/dev/null 2>&1 && break; sleep 0.1; done
for n in 0 1 2 3; do client network create --subnet="10.$((130 + n)).0.0/16" "snet$n" >/dev/null; done

echo "dnsd scale benchmark: $(nproc) cores, $(uname -r); $SANDBOXES local sandboxes over 4 overlay networks, $RECORDS endpoints cluster-wide"
start=$(date +%s.%N)
for i in $(seq 0 $((SANDBOXES - 1))); do client run --name="${P}s$i" --net="snet$((i % 4))" >/dev/null; done
end=$(date +%s.%N)
echo "started $SANDBOXES sandboxes with dnsd run in $(python3 -c "print(f'{$end - $start:.1f}')") s"

# The other endpoints: a host h9 that never ran (its endpoints written straight into etcd, no lease).
REMOTE=$((RECORDS - SANDBOXES))
ip netns exec "${P}etcd" python3 - "$REMOTE" <<'PY'
import base64, http.client, json, sys
n = int(sys.argv[1])
c = http.client.HTTPConnection("198.18.0.254", 2379)
def b64(s): return base64.b64encode(s.encode()).decode()
ops = []
for i in range(n):
    net = f"snet{i % 4}"
    ip = f"10.{130 + i % 4}.{100 + (i // 4) // 250}.{(i // 4) % 250 + 2}"
    eid = f"h9-r{i}"
    mac = "02:42:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
    value = json.dumps({"aliases": [], "host": "h9", "id": eid, "ipv4": ip, "mac": mac, "name": f"r{i}",
                        "network": net, "vtep": "198.18.0.9"}, sort_keys=True)
    ops.append({"request_put": {"key": b64(f"dnsd/v1/endpoints/{net}/{eid}"), "value": b64(value)}})
    if len(ops) == 100 or i == n - 1:
        c.request("POST", "/v3/kv/txn", json.dumps({"success": ops}))
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        ops = []
PY
written=$(date +%s.%N)
LAST="r$((REMOTE - 1)).snet$(((REMOTE - 1) % 4))"
PROBE="${P}s$(((REMOTE - 1) % 4))"
for _ in $(seq 600); do
    ip netns exec "$PROBE" dig +short +time=1 +tries=1 @127.0.0.11 "$LAST" | grep -q . && break
    sleep 0.05
done
seen=$(date +%s.%N)
echo "$REMOTE remote endpoints written into etcd; the last one answered in a local sandbox $(python3 -c "print(f'{($seen - $written) * 1000:.0f}')") ms after the write finished"
echo "daemon RSS: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$DAEMON/status) once DNS answers everything"
# Every local sandbox's hosts file: the standard lines, its own line, one line per endpoint on its network.
# Each batch reaches every file before the next, so poll the last sandbox of each network, then check all.
PER_NET=$((RECORDS / 4))
lines_in() { grep -c '^[0-9]' "/etc/netns/${P}s$1/hosts" 2>/dev/null || true; }
for _ in $(seq 2400); do
    done_nets=0
    for n in 0 1 2 3; do [ "$(lines_in $((SANDBOXES - 4 + n)))" -ge $((PER_NET + 2)) ] && done_nets=$((done_nets + 1)); done
    [ $done_nets = 4 ] && break
    sleep 0.05
done
filled=$(date +%s.%N)
short=$(for i in $(seq 0 $((SANDBOXES - 1))); do echo "/etc/netns/${P}s$i/hosts"; done | xargs awk -v want=$((PER_NET + 2)) \
    'FNR == 1 && NR > 1 && n < want {short++} FNR == 1 {n = 0} /^[0-9]/ {n++} END {if (n < want) short++; print short + 0}')
lines=$(cat /etc/netns/${P}s*/hosts | grep -c '^[0-9]')
[ "$short" = 0 ] && state="complete" || state="NOT complete ($short files short)"
echo "hosts files $state $(python3 -c "print(f'{$filled - $written:.1f}')") s after the write: $lines lines in $SANDBOXES files"
sleep 2  # the cluster cache is written at most once a second
echo "daemon RSS: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$DAEMON/status) with every hosts file complete (bar < 100 MB); cluster cache $(du -k "$WORK/state/cluster-cache.json" | cut -f1) KiB"

# DNS in the sandbox: names of every kind, 45% name, 45% name.net, 10% missing.
python3 - "$REMOTE" "$SANDBOXES" "$P" > "$WORK/queries" <<'PY'
import random, sys
remote, local, p = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
random.seed(5)
for _ in range(100000):
    r = random.random()
    if r < 0.9:
        # Only names on snet0, the probe sandbox's network (the others are not its to resolve).
        if random.random() < 0.5:
            i = random.randrange(0, remote, 4); name = f"r{i}"
        else:
            i = random.randrange(0, local, 4); name = f"{p}s{i}"
        print(f"{name} A" if r < 0.45 else f"{name}.snet0 A")
    else:
        print(f"missing{random.randrange(10**6)}.snet0 A")
PY
ip netns exec "${P}s0" dnsperf -s 127.0.0.11 -d "$WORK/queries" -l "$SECONDS_PER_RUN" 2>&1 | grep -E "Queries per second|Queries lost|Average Latency" | sed 's/^ */dnsperf in s0: /'
echo "daemon RSS after the DNS run: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$DAEMON/status) ($(awk '/^Anonymous/ {printf "%.0f MiB anonymous", $2 / 1024}' /proc/$DAEMON/smaps_rollup), $(ls /proc/$DAEMON/task | wc -l) threads, $(ls /proc/$DAEMON/fd | wc -l) fds)"
# (grep -c exits 1 on an empty log: not a failure of the benchmark)
echo "daemon log lines (warnings and errors): $(grep -c . "$WORK/daemon.log" || true)"
