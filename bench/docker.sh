#!/bin/bash
# Docker figures (issue 14): `docker run --rm --network NET IMAGE true` on a dnsd network against
# the same on Docker's built-in bridge driver (one host, same dockerd, same run, interleaved), and
# cross-host name convergence: from `docker run -d` starting on h1 until a sandbox on h2 gets the
# name from dnsd at 127.0.0.11 (and from `docker run -d` returning). Two simulated hosts with etcd.
# Compare with Docker 20.10's classic overlay (DESIGN.md §6): ~400 ms run, ~65 ms cross-host answer.
# usage: bench/docker.sh [DNSD_BINARY]     env: ROUNDS (20)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DNSD=$(readlink -f "${1:-$HERE/../.build/release/dnsd}")
ROUNDS=${ROUNDS:-20}
cd "$HERE/../scripts"
. ./underlay.sh
. ./runtimes.sh
P=bdk$$
WORK=$(mktemp -d /tmp/dnsdb-docker-XXXXXX)
DOCKER1=/tmp/dnsdb-dd1-$$ DOCKER2=/tmp/dnsdb-dd2-$$
. ./cleanup.sh
CLEANUP_NETNS+=("${P}.*" "b[12]$$-ov-.*")
SHARED=$WORK/shared-missing
rt_shared_begin "$SHARED"
trap 'set +e; rt_dockerd_clean "$DOCKER1"; rt_dockerd_clean "$DOCKER2"; rt_shared_end "$SHARED"; cleanup' EXIT INT TERM

underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd" --election-timeout 200 --heartbeat-interval 20 >/dev/null
mkdir -p "$WORK/image"; rt_image "$WORK/image"
for n in 1 2; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    D=$DOCKER1; [ $n = 2 ] && D=$DOCKER2
    nsenter --net=/run/netns/${P}h$n "$DNSD" daemon --store etcd://198.18.0.254:2379 --advertise "198.18.0.$n" \
        --host-id "b$n$$" --state-dir "$WORK/state-h$n" --sock "$WORK/h$n.sock" --lease-ttl 3 --upstream 127.0.0.1:9 \
        --docker-plugin "$D/plugins/dnsd.sock" --docker-api "$D/docker.sock" --log-level error > "$WORK/daemon-h$n.log" 2>&1 &
    PIDS+=($!)
    rt_dockerd_start "$D" "${P}h$n"
    rt_docker "$D" load -q -i "$WORK/image/image.tar" >/dev/null
done
rt_docker "$DOCKER1" network create -d dnsd --ipam-driver dnsd --subnet 192.168.0.0/24 vnet >/dev/null
rt_docker "$DOCKER1" network create -d bridge --subnet 10.99.0.0/24 bnet >/dev/null
for _ in $(seq 50); do rt_docker "$DOCKER2" network ls | grep -q vnet && break; sleep 0.1; done
"$DNSD" run --sock "$WORK/h2.sock" --name "${P}probe" --net vnet >/dev/null
CLEANUP_NETNS+=("${P}probe")

ip netns exec "${P}probe" python3 - "$DOCKER1" "$ROUNDS" "$RT_IMAGE" <<'PY'
import os, socket, statistics, struct, subprocess, sys, time
docker, rounds, image = sys.argv[1], int(sys.argv[2]), sys.argv[3]
D = ["/usr/bin/docker", "-H", f"unix://{docker}/docker.sock"]
def run(args):
    s = time.perf_counter()
    r = subprocess.run(D + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode: sys.exit(f"docker {' '.join(args)}: {r.stderr.decode().strip()}")
    return (time.perf_counter() - s) * 1000
def query(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    return q
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.settimeout(0.05)
def answers(name):
    sock.sendto(query(name), ("127.0.0.11", 53))
    try:
        data, _ = sock.recvfrom(512)
    except socket.timeout:
        return False
    return struct.unpack(">H", data[6:8])[0] > 0
res = {"dnsd run": [], "bridge run": [], "converge from start": [], "converge after return": []}
for i in range(rounds):
    pairs = [("dnsd run", ["run", "--rm", "--network", "vnet", image, "true"]), ("bridge run", ["run", "--rm", "--network", "bnet", image, "true"])]
    for key, args in (pairs if i % 2 else pairs[::-1]):
        time.sleep(0.05); res[key].append(run(args))
    name = f"cv{i}"
    start = time.perf_counter()
    p = subprocess.Popen(D + ["run", "-d", "--name", name, "--network", "vnet", image, "sleep", "600"], stdout=subprocess.DEVNULL)
    seen = None
    while seen is None and time.perf_counter() - start < 10:
        if answers(f"{name}.vnet"): seen = time.perf_counter()
    p.wait(); returned = time.perf_counter()
    if seen is None: sys.exit(f"{name} never answered on h2")
    res["converge from start"].append((seen - start) * 1000)
    res["converge after return"].append(max(0.0, (seen - returned) * 1000))
    subprocess.run(D + ["rm", "-f", name], stdout=subprocess.DEVNULL)
med = {k: statistics.median(v) for k, v in res.items()}
p99 = {k: sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] for k, v in res.items()}
print(f"dnsd Docker benchmark: {os.cpu_count()} cores, {rounds} rounds, etcd, 2 simulated hosts; medians (p99) in ms")
for k in res: print(f"{k:<24} {med[k]:8.1f} ({p99[k]:.1f})")
print(f"docker run on a dnsd network: {med['dnsd run']:.0f} ms vs Docker's bridge {med['bridge run']:.0f} ms "
      f"({med['dnsd run'] / med['bridge run']:.2f}x); Docker's classic overlay: ~400 ms. "
      f"Name on the other host {med['converge from start']:.0f} ms after docker run -d starts (classic overlay: ~65 ms)")
PY
