#!/bin/bash
# The CLI's own cost (DESIGN.md §6 "CLI and plugins"): `dnsd run --net` end to end (the client
# process included) and `dnsd ps`, against the same requests made by `curl --unix-socket`, in the
# same run, on a daemon with the local store in a namespace of its own. Medians over ROUNDS.
# usage: bench/cli.sh [DNSD_BINARY]     env: ROUNDS (50)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DNSD=$(readlink -f "${1:-$HERE/../.build/release/dnsd}")
ROUNDS=${ROUNDS:-50}
NS=dnsdb-cli$$
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$HERE/../scripts/cleanup.sh"
P=cl$$
CLEANUP_NETNS+=("$NS" "${P}[ab][0-9]+")
SOCK=$WORK/dnsd.sock

ip netns add "$NS"
ip -n "$NS" link set lo up
nsenter --net=/run/netns/"$NS" "$DNSD" daemon --state-dir "$WORK/state" --sock "$SOCK" --host-id clibench \
    --upstream 127.0.0.1:9 --log-level error > "$WORK/daemon.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do DNSD_SOCK=$SOCK "$DNSD" ps >/dev/null 2>&1 && break; sleep 0.05; done
DNSD_SOCK=$SOCK "$DNSD" network create --driver=bridge --subnet=10.77.0.0/16 clinet >/dev/null

python3 - "$DNSD" "$SOCK" "$ROUNDS" "$P" <<'PY'
import json, os, statistics, subprocess, sys, time
dnsd, sock, rounds, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
env = dict(os.environ, DNSD_SOCK=sock)
def timed(cmd):
    # Each request after 50 ms of quiet, as a person types: back to back, a run would wait for the
    # daemon's warm-namespace refill started by the one before (see the README).
    time.sleep(0.05)
    s = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0: sys.exit(f"{cmd}: {r.stderr.decode().strip()}")
    return (time.perf_counter() - s) * 1000
curl = ["curl", "-s", "-f", "--unix-socket", sock]
results = {k: [] for k in ("dnsd run", "curl run", "dnsd stop", "curl stop", "dnsd ps", "curl ps", "dnsd --help")}
for i in range(rounds):
    a, b = f"{prefix}a{i}", f"{prefix}b{i}"
    # interleaved: the CLI and curl make the same requests, alternately first
    pairs = [("dnsd run", [dnsd, "run", f"--name={a}", "--net=clinet"]),
             ("curl run", curl + ["-d", json.dumps({"name": b, "network": "clinet"}), "http://dnsd/v1/sandboxes"])]
    for key, cmd in (pairs if i % 2 else pairs[::-1]): results[key].append(timed(cmd))
    pairs = [("dnsd ps", [dnsd, "ps"]), ("curl ps", curl + ["http://dnsd/v1/sandboxes"])]
    for key, cmd in (pairs if i % 2 else pairs[::-1]): results[key].append(timed(cmd))
    pairs = [("dnsd stop", [dnsd, "stop", a]), ("curl stop", curl + ["-X", "POST", f"http://dnsd/v1/sandboxes/{b}/stop"])]
    for key, cmd in (pairs if i % 2 else pairs[::-1]): results[key].append(timed(cmd))
    results["dnsd --help"].append(timed([dnsd, "--help"]))
med = {k: statistics.median(v) for k, v in results.items()}
print(f"dnsd CLI benchmark: {os.cpu_count()} cores, {rounds} rounds, local store; medians in ms (the client process included)")
for k in ("dnsd run", "curl run", "dnsd ps", "curl ps", "dnsd stop", "curl stop", "dnsd --help"):
    print(f"{k:<12} {med[k]:7.2f}")
print(f"run: dnsd {med['dnsd run']:.1f} ms (bar 10): {'PASS' if med['dnsd run'] <= 10 else 'FAIL'}; "
      f"ps: dnsd {med['dnsd ps']:.1f} ms (bar 6): {'PASS' if med['dnsd ps'] <= 6 else 'FAIL'}; "
      f"the client's own start-up: ~{med['dnsd --help']:.1f} ms (dnsd --help)")
PY
