#!/bin/bash
# The CNI plugin's cost (DESIGN.md §6 "CLI and plugins"): a CNI ADD of the dnsd plugin, its
# process start included, as a runtime executes it, against the reference `bridge` plugin of
# containernetworking-plugins (with host-local IPAM) doing the same attach (a veth from a fresh
# namespace to a bridge, an address) on the same host in the same run; then DEL of each. The
# dnsd daemon runs with the local store in a namespace of its own, which stands for the host;
# the driver runs there too, so both plugins make their bridge ports in it.
# Medians over ROUNDS fresh namespaces per plugin, interleaved.
# usage: bench/cni.sh [DNSD_BINARY]     env: ROUNDS (60)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DNSD=$(readlink -f "${1:-$HERE/../.build/release/dnsd}")
PLUGIN=$(dirname "$DNSD")/dnsd-cni   # what `dnsd cni install` links as the runtime's `dnsd` plugin
ROUNDS=${ROUNDS:-60}
REFERENCE=/usr/lib/cni/bridge
[ -x "$REFERENCE" ] || { echo "the reference plugin $REFERENCE is missing (package containernetworking-plugins)"; exit 1; }
NS=dnsdb-cni$$
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$HERE/../scripts/cleanup.sh"
P=cn$$
CLEANUP_NETNS+=("$NS" "${P}[dr][0-9]+" "cnibench-ov-.*")
SOCK=$WORK/dnsd.sock

ip netns add "$NS"
ip -n "$NS" link set lo up
nsenter --net=/run/netns/"$NS" "$DNSD" daemon --state-dir "$WORK/state" --sock "$SOCK" --host-id cnibench \
    --upstream 127.0.0.1:9 --log-level error > "$WORK/daemon.log" 2>&1 &
PIDS+=($!)
. "$HERE/../scripts/underlay.sh"
dnsd_wait "$DNSD" "$SOCK"
"$DNSD" network create --sock "$SOCK" --driver=bridge --subnet=10.77.0.0/16 cnibr >/dev/null
"$DNSD" network create --sock "$SOCK" --driver=overlay --subnet=10.78.0.0/16 cniov >/dev/null
for i in $(seq 0 $((ROUNDS - 1))); do ip netns add "${P}d$i"; ip netns add "${P}r$i"; done
for i in $(seq 0 $((ROUNDS / 4 - 1))); do ip netns add "${P}d$((ROUNDS + i))"; done

nsenter --net=/run/netns/"$NS" python3 - "$PLUGIN" "$SOCK" "$ROUNDS" "$P" "$WORK" "$REFERENCE" <<'PY'
import json, os, statistics, subprocess, sys, time
dnsd, sock, rounds, prefix, work, reference = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
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
results = {k: [] for k in ("dnsd ADD", "bridge ADD", "dnsd DEL", "bridge DEL", "dnsd ADD overlay", "dnsd VERSION")}
for i in range(rounds):
    pairs = [("dnsd ADD", lambda: timed(dnsd, "ADD", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf("cnibr"))),
             ("bridge ADD", lambda: timed(reference, "ADD", f"{prefix}r{i}", f"/run/netns/{prefix}r{i}", ref_conf))]
    for key, run in (pairs if i % 2 else pairs[::-1]): results[key].append(run())
    results["dnsd VERSION"].append(timed(dnsd, "VERSION", "v", "", dnsd_conf("cnibr")))
for i in range(rounds):
    pairs = [("dnsd DEL", lambda: timed(dnsd, "DEL", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf("cnibr"))),
             ("bridge DEL", lambda: timed(reference, "DEL", f"{prefix}r{i}", f"/run/netns/{prefix}r{i}", ref_conf))]
    for key, run in (pairs if i % 2 else pairs[::-1]): results[key].append(run())
for i in range(rounds, rounds + rounds // 4):
    results["dnsd ADD overlay"].append(timed(dnsd, "ADD", f"{prefix}d{i}", f"/run/netns/{prefix}d{i}", dnsd_conf("cniov")))
med = {k: statistics.median(v) for k, v in results.items()}
print(f"dnsd CNI benchmark: {os.cpu_count()} cores, {rounds} containers per plugin, local store; medians in ms, the plugin process included")
for k in ("dnsd ADD", "bridge ADD", "dnsd DEL", "bridge DEL", "dnsd ADD overlay", "dnsd VERSION"):
    print(f"{k:<17} {med[k]:7.2f}")
print(f"ADD: dnsd {med['dnsd ADD']:.1f} ms vs bridge {med['bridge ADD']:.1f} ms = {med['bridge ADD'] / med['dnsd ADD']:.2f}x faster "
      f"(bar 10 ms: {'PASS' if med['dnsd ADD'] <= 10 else 'FAIL'}); DEL: {med['bridge DEL'] / med['dnsd DEL']:.2f}x")
PY
