#!/bin/bash
# The CNI plugin's cost (DESIGN.md §6 "CLI and plugins"): a CNI ADD of the dnsd plugin, its
# process start included, as a runtime executes it, against the reference `bridge` plugin of
# containernetworking-plugins (with host-local IPAM) doing the same attach (a veth from a fresh
# namespace to a bridge, an address) on the same host in the same run; then DEL of each.
# Medians over ROUNDS fresh namespaces per plugin, interleaved.
#
# STORE=etcd (the default, the figure DESIGN.md §6 asks for): etcd at 198.18.0.254:2379 and two
# simulated hosts on the underlay (scripts/underlay.sh), a dnsd daemon on each; h2 holds one
# sandbox on the overlay, so the overlay has a real peer. The ADDs run on h1 on the overlay
# network; a quarter as many on a bridge-driver network for comparison. Also the store requests
# per ADD and per DEL: etcd's gRPC counters (/metrics) read before and after each phase, from
# both daemons together, less those of an idle interval of equal length right after it, per
# counter and floored at 0 (idle, the watch streams make liveness checks, a range each after 3 s
# of silence, which a busy phase mostly does not make; lease keep-alives are not counted).
#
# STORE=local: one daemon with the local store in a namespace of its own, which stands for the
# host; the ADDs on a bridge-driver network, a quarter as many on an overlay for comparison.
#
# The driver runs in the host's namespace, so both plugins make their bridge ports there.
# usage: bench/cni.sh [DNSD_BINARY]     env: ROUNDS (60), STORE (etcd | local)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DNSD=$(readlink -f "${1:-$HERE/../.build/release/dnsd}")
PLUGIN=$(dirname "$DNSD")/dnsd-cni   # what `dnsd cni install` links as the runtime's `dnsd` plugin
ROUNDS=${ROUNDS:-60}
STORE=${STORE:-etcd}
REFERENCE=/usr/lib/cni/bridge
[ "$(id -u)" = 0 ] || { echo "bench/cni.sh needs root (network namespaces)"; exit 1; }
[ -x "$REFERENCE" ] || { echo "the reference plugin $REFERENCE is missing (package containernetworking-plugins)"; exit 1; }
case $STORE in
    local) ;;
    etcd) command -v etcd >/dev/null || { echo "etcd is missing (package etcd-server)"; exit 1; } ;;
    *) echo "STORE is etcd or local, not '$STORE'"; exit 1 ;;
esac
NS=dnsdb-cni$$
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$HERE/../scripts/cleanup.sh"
. "$HERE/../scripts/underlay.sh"
P=cn$$
# Container namespaces ${P}d<i> (dnsd) and ${P}r<i> (reference); on etcd the underlay, etcd's
# host, h1, h2, their overlay namespaces (HOSTID-ov-*) and h2's sandbox.
CLEANUP_NETNS+=("$NS" "${P}[dr][0-9]+" "cnibench-ov-.*" "${P}(ul|etcd|h[12]|h[12]-ov-.*|peer)")

if [ "$STORE" = local ]; then
    HOSTNS=$NS
    SOCK=$WORK/dnsd.sock
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    nsenter --net=/run/netns/"$NS" "$DNSD" daemon --state-dir "$WORK/state" --sock "$SOCK" --host-id cnibench \
        --upstream 127.0.0.1:9 --log-level error > "$WORK/daemon.log" 2>&1 &
    PIDS+=($!)
    dnsd_wait "$DNSD" "$SOCK"
    "$DNSD" network create --sock "$SOCK" --driver=bridge --subnet=10.77.0.0/16 cnibr >/dev/null
    "$DNSD" network create --sock "$SOCK" --driver=overlay --subnet=10.78.0.0/16 cniov >/dev/null
    PRIMARY=cnibr SECONDARY=cniov METRICS=""
else
    HOSTNS=${P}h1
    SOCK=$WORK/h1.sock
    underlay_create
    underlay_addhost "${P}etcd" 198.18.0.254
    underlay_etcd "${P}etcd" > "$WORK/etcd.log" 2>&1
    for n in 1 2; do underlay_dnsd_host "$n" "$DNSD"; done
    dnsd_wait "$DNSD" "$WORK/h1.sock"
    dnsd_wait "$DNSD" "$WORK/h2.sock"
    "$DNSD" network create --sock "$SOCK" --driver=overlay --subnet=10.78.0.0/16 cniov >/dev/null
    "$DNSD" network create --sock "$SOCK" --driver=bridge --subnet=10.77.0.0/16 cnibr >/dev/null
    for _ in $(seq 50); do "$DNSD" network ls --sock "$WORK/h2.sock" 2>/dev/null | grep -qw cniov && break; sleep 0.1; done
    "$DNSD" run --sock "$WORK/h2.sock" --name "${P}peer" --net cniov >/dev/null
    PRIMARY=cniov SECONDARY=cnibr METRICS=http://198.18.0.254:2379/metrics
fi
for i in $(seq 0 $((ROUNDS - 1))); do ip netns add "${P}d$i"; ip netns add "${P}r$i"; done
for i in $(seq 0 $((ROUNDS / 4 - 1))); do ip netns add "${P}d$((ROUNDS + i))"; done

nsenter --net=/run/netns/"$HOSTNS" python3 - "$PLUGIN" "$SOCK" "$ROUNDS" "$P" "$WORK" "$REFERENCE" "$STORE" "$PRIMARY" "$SECONDARY" "$METRICS" <<'PY'
import json, os, re, statistics, subprocess, sys, time, urllib.request
dnsd, sock, rounds, prefix, work, reference, store, primary, secondary, metrics_url = sys.argv[1:11]
rounds = int(rounds)
dnsd_conf = lambda net: json.dumps({"cniVersion": "1.0.0", "name": net, "type": "dnsd", "socket": sock})
ref_conf = json.dumps({"cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "cniref0", "isGateway": True,
                       "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": work + "/ipam"}})
def timed(binary, command, cid, netns, conf):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={cid}", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    time.sleep(0.02)  # one container at a time, as a runtime starts them
    s = time.perf_counter()
    r = subprocess.run([binary], input=conf.encode(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = (time.perf_counter() - s) * 1000
    if r.returncode != 0: sys.exit(f"{binary} {command} {cid}: {r.stdout.decode().strip()} {r.stderr.decode().strip()}")
    return t

# The store's requests, as etcd counts them (etcd 3.4 /metrics): gRPC calls started per method
# (through the JSON gateway each HTTP request is one call), and the mvcc operations they did
# (a transaction's puts and ranges are counted there too). LeaseKeepAlive is left out.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SAMPLE = re.compile(r'^(grpc_server_started_total|etcd_debugging_mvcc_(?:put|range|delete)_total)(?:\{([^}]*)\})? (\S+)$')
def store_counters():
    counts = {}
    for line in opener.open(metrics_url, timeout=5).read().decode().splitlines():
        m = SAMPLE.match(line)
        if not m: continue
        name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))
        if name == "grpc_server_started_total":
            method = labels.get("grpc_method", "")
            if method == "LeaseKeepAlive" or labels.get("grpc_service") not in ("etcdserverpb.KV", "etcdserverpb.Lease", "etcdserverpb.Watch"):
                continue
            counts["rpc " + method] = counts.get("rpc " + method, 0) + value
        else:
            counts["op " + name.split("_")[3]] = value
    return counts
def delta(a, b): return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
store_use = {}   # phase -> per operation: (counters less the background, the background, the counters)
def counted(phase, operations, run):
    """Runs a phase; its store requests less those of an idle interval of equal length after it."""
    if not metrics_url: return run()
    before, started = store_counters(), time.monotonic()
    out = run()
    time.sleep(0.3)  # anything the daemons do right after the last request belongs to the phase
    after = store_counters(); length = time.monotonic() - started
    time.sleep(length)
    idle = delta(after, store_counters())
    busy = delta(before, after)
    # Per counter, floored at 0: the idle interval's requests are the watch streams' liveness
    # checks, made only after 3 s of silence, which a busy phase mostly does not make.
    store_use[phase] = ({k: max(0.0, busy[k] - idle.get(k, 0)) / operations for k in busy}, {k: v / operations for k, v in idle.items()},
                        {k: v / operations for k, v in busy.items()})
    return out

results = {k: [] for k in ("dnsd ADD", "bridge ADD", "dnsd DEL", "bridge DEL", "dnsd ADD " + secondary, "dnsd VERSION")}
def add_phase():
    for i in range(rounds):
        pairs = [("dnsd ADD", lambda: timed(dnsd, "ADD", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf(primary))),
                 ("bridge ADD", lambda: timed(reference, "ADD", f"{prefix}r{i}", f"/run/netns/{prefix}r{i}", ref_conf))]
        for key, run in (pairs if i % 2 else pairs[::-1]): results[key].append(run())
        results["dnsd VERSION"].append(timed(dnsd, "VERSION", "v", "", dnsd_conf(primary)))
def del_phase():
    for i in range(rounds):
        pairs = [("dnsd DEL", lambda: timed(dnsd, "DEL", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf(primary))),
                 ("bridge DEL", lambda: timed(reference, "DEL", f"{prefix}r{i}", f"/run/netns/{prefix}r{i}", ref_conf))]
        for key, run in (pairs if i % 2 else pairs[::-1]): results[key].append(run())
def secondary_phase():
    for i in range(rounds, rounds + rounds // 4):
        results["dnsd ADD " + secondary].append(timed(dnsd, "ADD", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf(secondary)))
counted("ADD", rounds, add_phase)
counted("DEL", rounds, del_phase)
counted("ADD " + secondary, rounds // 4, secondary_phase)

med = {k: statistics.median(v) for k, v in results.items()}
kind = {"cniov": "overlay", "cnibr": "bridge network"}
where = ("etcd, 2 simulated hosts (ADDs on h1, a peer sandbox on h2)" if store == "etcd" else "local store")
print(f"dnsd CNI benchmark: {os.cpu_count()} cores, {rounds} containers per plugin, {where}; medians in ms, the plugin process included")
print(f"dnsd ADD/DEL on the {kind[primary]} ({primary}); dnsd ADD {secondary}: {rounds // 4} more on the {kind[secondary]}")
for k in ("dnsd ADD", "bridge ADD", "dnsd DEL", "bridge DEL", "dnsd ADD " + secondary, "dnsd VERSION"):
    print(f"{k:<17} {med[k]:7.2f}")
if store == "local":
    print(f"ADD: dnsd {med['dnsd ADD']:.1f} ms vs bridge {med['bridge ADD']:.1f} ms = {med['bridge ADD'] / med['dnsd ADD']:.2f}x faster "
          f"(bar 10 ms: {'PASS' if med['dnsd ADD'] <= 10 else 'FAIL'}); DEL: {med['bridge DEL'] / med['dnsd DEL']:.2f}x")
    sys.exit(0)
def rpc_line(per):
    rpc = {k[4:]: v for k, v in per.items() if k.startswith("rpc ")}
    names = {"Txn": "txn", "Range": "range", "Put": "put", "DeleteRange": "delete"}
    parts = [f"{names[m]} {rpc.get(m, 0):.1f}" for m in names]
    parts += [f"{m} {v:.1f}" for m, v in sorted(rpc.items()) if m not in names and abs(v) >= 0.05]
    return sum(rpc.values()), ", ".join(parts)
for phase, (per, background, raw) in store_use.items():
    total, parts = rpc_line(per)
    ops = ", ".join(f"{op} {per.get('op ' + op, 0):.1f}" for op in ("put", "range", "delete"))
    print(f"store requests per {phase}: {total:.1f} ({parts}); etcd mvcc operations in them: {ops}; "
          f"before subtracting the idle background: {rpc_line(raw)[0]:.2f}, background {rpc_line(background)[0]:.2f}")
print(f"ADD: ratio (reference/dnsd) {med['bridge ADD'] / med['dnsd ADD']:.2f}x: dnsd {med['dnsd ADD']:.1f} ms vs bridge {med['bridge ADD']:.1f} ms "
      f"(bar >= 1.0x, one store transaction per ADD); DEL: ratio (reference/dnsd) {med['bridge DEL'] / med['dnsd DEL']:.2f}x")
PY
