#!/bin/bash
# Concurrency (DESIGN.md §6): etcd at 198.18.0.254:2379 and two simulated hosts on the underlay
# (scripts/underlay.sh), a dnsd daemon on each; h2 holds one sandbox on the overlay `vnet`, so
# the overlay has a real peer. All requests go to h1's daemon (COUNT on h1, none on h2: the one
# daemon takes all the concurrency). Each round, on the same daemon and network:
#   - COUNT `dnsd run --name X --net vnet` issued at once, against the same COUNT issued one
#     after another (each as soon as the last returned); wall time from the first launch until
#     the last exits, client processes included; the ratio parallel/sequential;
#   - the same with COUNT CNI ADDs of the dnsd plugin (.../dnsd-cni, driven as a runtime does and
#     as bench/cni.sh does: CNI_* in the environment, the configuration on stdin), each into a
#     fresh namespace of its own;
#   - the same COUNT runs as API requests (`POST /v1/sandboxes`) from COUNT threads of one
#     process, and one after another from it, with a `GET /v1/sandboxes` (ps) among the
#     parallel ones: the daemon's own concurrency, without COUNT client processes starting on
#     two cores (which the process columns and their control below include);
#   - a `dnsd ps` issued PS_DELAY_MS after the last of COUNT parallel runs (and, separately,
#     parallel ADDs) was launched: its latency, client process included, and how many of the
#     COUNT were in flight while it ran; `dnsd ps` alone for reference (the same COUNT
#     sandboxes listed, nothing else going on); and a control, `dnsd --help` issued the same way
#     among COUNT other parallel runs (ADDs): the same client process start, no request to the
#     daemon: what the cores shared by COUNT+1 starting processes cost any client.
# Sequential and parallel alternate which goes first; every batch starts SETTLE seconds after
# the last one's sandboxes were removed (the kernel tears namespaces down asynchronously).
# Everything a batch made is removed before the next. Medians over ROUNDS rounds.
# usage: bench/concurrency.sh [DNSD_BINARY]     env: ROUNDS (5), COUNT (20), PS_DELAY_MS (5), SETTLE (1.0)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DNSD=$(readlink -f "${1:-$HERE/../.build/release/dnsd}")
PLUGIN=$(dirname "$DNSD")/dnsd-cni
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-20}
PS_DELAY_MS=${PS_DELAY_MS:-5}
SETTLE=${SETTLE:-1.0}
[ "$(id -u)" = 0 ] || { echo "bench/concurrency.sh needs root (network namespaces)"; exit 1; }
command -v etcd >/dev/null || { echo "etcd is missing (package etcd-server)"; exit 1; }
[ -x "$PLUGIN" ] || { echo "the CNI plugin $PLUGIN is missing (built with dnsd)"; exit 1; }
WORK=$(mktemp -d /tmp/dnsdb-XXXXXX)
. "$HERE/../scripts/cleanup.sh"
. "$HERE/../scripts/underlay.sh"
P=cc$$
# The underlay, etcd's host, h1, h2, their overlay namespaces (HOSTID-ov-*), h2's sandbox; the
# benchmark's sandboxes and containers are ${P}<batch letter><round>x<i>.
CLEANUP_NETNS+=("${P}(ul|etcd|h[12]|h[12]-ov-.*|peer)" "${P}[a-z][0-9]+x[0-9]+")

underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd" > "$WORK/etcd.log" 2>&1
ETCD_PID=${PIDS[-1]}
DAEMON_PIDS=()
for n in 1 2; do
    underlay_dnsd_host "$n" "$DNSD"
    DAEMON_PIDS+=($DNSD_PID)
done
dnsd_wait "$DNSD" "$WORK/h1.sock"
dnsd_wait "$DNSD" "$WORK/h2.sock"
"$DNSD" network create --sock "$WORK/h1.sock" --driver=overlay --subnet=10.77.0.0/16 vnet >/dev/null
for _ in $(seq 50); do "$DNSD" network ls --sock "$WORK/h2.sock" 2>/dev/null | grep -qw vnet && break; sleep 0.1; done
"$DNSD" run --sock "$WORK/h2.sock" --name "${P}peer" --net vnet >/dev/null

PROCESS_PIDS="h1=${DAEMON_PIDS[0]} h2=${DAEMON_PIDS[1]} etcd=$ETCD_PID" \
nsenter --net=/run/netns/"${P}h1" python3 - "$DNSD" "$PLUGIN" "$WORK" "$P" "$ROUNDS" "$COUNT" "$PS_DELAY_MS" "$SETTLE" <<'PY'
import json, os, socket, statistics, subprocess, sys, threading, time
dnsd, plugin, work, prefix = sys.argv[1:5]
rounds, count, ps_delay, settle = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]) / 1000, float(sys.argv[8])
sock = f"{work}/h1.sock"
client_env = dict(os.environ, DNSD_SOCK=sock)
conf_path = f"{work}/cni-conf.json"
with open(conf_path, "w") as f:
    json.dump({"cniVersion": "1.0.0", "name": "vnet", "type": "dnsd", "socket": sock}, f)
out_dir = f"{work}/out"; os.makedirs(out_dir)

class Job:
    """One process, started with posix_spawn (no fork of this interpreter), output to files."""
    def __init__(self, label, argv, env, stdin="/dev/null"):
        self.label, self.argv, self.env, self.stdin = label, argv, env, stdin
        self.out, self.err = f"{out_dir}/{label}.out", f"{out_dir}/{label}.err"
        self.pid = self.started = self.ended = None
    def start(self):
        actions = [(os.POSIX_SPAWN_OPEN, 0, self.stdin, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, self.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                   (os.POSIX_SPAWN_OPEN, 2, self.err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
        self.started = time.perf_counter()
        self.pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
    def finished(self, status, ended=None):
        self.ended = ended or time.perf_counter()
        if os.waitstatus_to_exitcode(status) != 0:
            with open(self.out) as o, open(self.err) as e:
                sys.exit(f"{' '.join(self.argv[1:]) or self.argv[0]} ({self.label}) failed: {o.read().strip()} {e.read().strip()}")
    @property
    def ms(self): return (self.ended - self.started) * 1000

def run_job(name):
    return Job(name, [dnsd, "run", f"--name={name}", "--net=vnet"], client_env)
def add_job(name, command="ADD"):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": name, "CNI_NETNS": f"/run/netns/{name}", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={name}", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return Job(f"{name}-{command}", [plugin], env, stdin=conf_path)
def ps_job(label):
    return Job(label, [dnsd, "ps"], client_env)

cpu_of = {}  # batch kind -> CPU ms the machine spent on a sequential batch

def sequential(jobs, kind):
    busy, first = cpu_busy_ms(), time.perf_counter()
    for job in jobs:
        job.start()
        _, status = os.waitpid(job.pid, 0)
        job.finished(status)
    cpu_of.setdefault(kind, []).append(cpu_busy_ms() - busy)
    return (jobs[-1].ended - first) * 1000

def parallel(jobs, ps=None):
    """Launches every job at once, then ps (if any) ps_delay after the last launch. A thread
    reaps them as they exit (so each exit time is taken when it happens, also during the
    launching). Returns the wall time of the jobs (first launch to last exit), how many of them
    ran while ps ran (launched before it returned, exited after it started), and how long
    launching took."""
    total, exits = len(jobs) + (1 if ps else 0), {}
    def reap():
        while len(exits) < total:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # none started yet
                time.sleep(0.0002); continue
            exits[pid] = (time.perf_counter(), status)
    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    first = time.perf_counter()
    for job in jobs: job.start()
    launched = (time.perf_counter() - first) * 1000
    if ps:
        time.sleep(ps_delay); ps.start()
    reaper.join()
    for job in jobs + ([ps] if ps else []):
        ended, status = exits[job.pid]
        job.finished(status, ended)
    in_flight = sum(job.started < ps.ended and job.ended > ps.started for job in jobs) if ps else None
    return (max(job.ended for job in jobs) - first) * 1000, in_flight, launched

def quiet(cmd):
    r = subprocess.run(cmd, env=client_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0: sys.exit(f"{' '.join(cmd)}: {r.stdout.strip()} {r.stderr.strip()}")
    return r.stdout

def listed(names):
    text = quiet([dnsd, "ps"])
    return sum(1 for n in names if n in text.split())

def cpu_busy_ms():
    """CPU time the whole machine spent busy so far (every core, every process: the clients, the
    daemons, etcd, the kernel), from /proc/stat."""
    with open("/proc/stat") as f: fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) * 1000 / os.sysconf("SC_CLK_TCK")

watched = dict(item.split("=") for item in os.environ.get("PROCESS_PIDS", "").split())

def process_cpu_ms():
    """CPU time (user + system) each watched process (the daemons, etcd) has used so far."""
    out = {}
    for name, pid in watched.items():
        with open(f"/proc/{pid}/stat") as f: fields = f.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    return out

def api(method, path, body=None):
    """One control API request over the unix socket, by hand (as curl --unix-socket would)."""
    data = json.dumps(body).encode() if body is not None else b""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: dnsd\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
              f"Connection: close\r\n\r\n".encode() + data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        reply += chunk
    s.close()
    status = int(reply.split(b" ", 2)[1])
    if status >= 300: sys.exit(f"{method} {path}: {status} {reply[-300:]}")

def api_batch(names, mode, with_ps=False):
    """COUNT runs through the API from this process: one after another, or from COUNT threads at
    once (released together), with a ps (GET /v1/sandboxes) PS_DELAY_MS after the release."""
    if mode == "sequential":
        busy, each, first = cpu_busy_ms(), process_cpu_ms(), time.perf_counter()
        for n in names: api("POST", "/v1/sandboxes", {"name": n, "network": "vnet"})
        cpu_of.setdefault("api", []).append(cpu_busy_ms() - busy)
        after = process_cpu_ms()
        for name in each: cpu_of.setdefault(f"api {name}", []).append(after[name] - each[name])
        return (time.perf_counter() - first) * 1000, None
    gate, ends, ps_ms = threading.Barrier(len(names) + 1), [], []
    def one(n):
        gate.wait(); api("POST", "/v1/sandboxes", {"name": n, "network": "vnet"}); ends.append(time.perf_counter())
    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads: t.start()
    gate.wait(); first = time.perf_counter()
    if with_ps:
        time.sleep(ps_delay); s = time.perf_counter(); api("GET", "/v1/sandboxes"); ps_ms.append((time.perf_counter() - s) * 1000)
    for t in threads: t.join()
    return (max(ends) - first) * 1000, (ps_ms[0] if ps_ms else None)

def prepare(kind, names):
    if kind == "cni":
        for n in names: quiet(["ip", "netns", "add", n])
    time.sleep(settle)

def teardown(kind, names):
    for n in names:
        if kind == "run":
            quiet([dnsd, "rm", n])
        else:
            job = add_job(n, "DEL"); job.start(); job.finished(os.waitpid(job.pid, 0)[1])
            quiet(["ip", "netns", "del", n])
    left = listed(names)
    if left: sys.exit(f"{left} of the {kind} batch are still listed by dnsd ps after their removal")
    stray = [n for n in names if os.path.exists(f"/run/netns/{n}")]
    if stray: sys.exit(f"namespaces left after the {kind} batch: {stray[:3]}...")

def batch(kind, letter, r, mode, probe=None):
    """COUNT runs or ADDs, one after another or at once; with a probe process (ps, or the
    control) among the parallel ones."""
    names = [f"{prefix}{letter}{r}x{i}" for i in range(count)]
    prepare(kind, names)
    make = run_job if kind == "run" else add_job
    jobs = [make(n) for n in names]
    ps_alone = []
    if mode == "sequential":
        wall, in_flight, launched = sequential(jobs, kind), None, None
    else:
        wall, in_flight, launched = parallel(jobs, probe)
    if kind == "run" and listed(names) != count: sys.exit(f"dnsd ps does not list all {count} sandboxes of {mode} batch {letter}{r}")
    if probe and probe.argv[1] == "ps" and kind == "run":
        # For reference: ps alone, listing the same sandboxes, each after 50 ms of quiet.
        time.sleep(0.2)
        for i in range(5):
            time.sleep(0.05)
            job = ps_job(f"ps-alone-{r}-{i}"); job.start(); job.finished(os.waitpid(job.pid, 0)[1]); ps_alone.append(job.ms)
    teardown(kind, names)
    return wall, (probe.ms if probe else None), in_flight, launched, ps_alone

res = {}
print(f"dnsd concurrency benchmark: {os.cpu_count()} cores, etcd, 2 simulated hosts; {count} requests at once vs one after another, "
      f"all on h1 (a peer sandbox on h2); {rounds} rounds; wall times in ms, client processes included", flush=True)
print(f"{'round':<6} {'run-seq':>8} {'run-par':>8} {'ratio':>6} {'ADD-seq':>8} {'ADD-par':>8} {'ratio':>6} "
      f"{'ps|runs':>8} {'ps|ADDs':>8} {'ps-alone':>8} {'help|runs':>9} {'help|ADDs':>9} {'inflight':>8}", flush=True)
for r in range(rounds):
    row = {}
    for kind, letters, short in (("run", "abcg", "run"), ("cni", "defh", "ADD")):
        order = [("sequential", letters[0]), ("parallel", letters[1])]
        for mode, letter in (order if r % 2 == 0 else order[::-1]):
            wall, _, _, launched, _ = batch(kind, letter, r, mode)
            row[f"{short} {'seq' if mode == 'sequential' else 'par'}"] = wall
            if launched is not None: row[f"launch {short}s"] = launched
        row[f"{short} ratio"] = row[f"{short} par"] / row[f"{short} seq"]
        _, ps_ms, in_flight, _, ps_alone = batch(kind, letters[2], r, "parallel", ps_job(f"ps-{letters[2]}{r}"))
        row[f"ps among {short}s"], row[f"in flight {short}s"] = ps_ms, in_flight
        if ps_alone: row["ps alone"] = statistics.median(ps_alone)
        # The control: a process that starts the same client binary and asks the daemon nothing
        # (dnsd --help), issued the same way: what the CPU contention alone costs a client.
        _, help_ms, _, _, _ = batch(kind, letters[3], r, "parallel", Job(f"help-{letters[3]}{r}", [dnsd, "--help"], client_env))
        row[f"help among {short}s"] = help_ms
    # The daemon alone: the same runs as API requests from threads of this process.
    order = [("sequential", "i"), ("parallel", "j")]
    for mode, letter in (order if r % 2 == 0 else order[::-1]):
        names = [f"{prefix}{letter}{r}x{i}" for i in range(count)]
        prepare("run", names)
        row[f"api {'seq' if mode == 'sequential' else 'par'}"], _ = api_batch(names, mode)
        teardown("run", names)
    row["api ratio"] = row["api par"] / row["api seq"]
    names = [f"{prefix}k{r}x{i}" for i in range(count)]
    prepare("run", names)
    _, row["ps among api"] = api_batch(names, "parallel", with_ps=True)
    teardown("run", names)
    print(f"       API (threads of one process): seq {row['api seq']:.1f}  par {row['api par']:.1f}  ratio {row['api ratio']:.3f}  "
          f"ps among them {row['ps among api']:.1f}", flush=True)
    for k, v in row.items(): res.setdefault(k, []).append(v)
    print(f"{r:<6} {row['run seq']:8.1f} {row['run par']:8.1f} {row['run ratio']:6.3f} {row['ADD seq']:8.1f} {row['ADD par']:8.1f} "
          f"{row['ADD ratio']:6.3f} {row['ps among runs']:8.1f} {row['ps among ADDs']:8.1f} {row['ps alone']:8.1f} "
          f"{row['help among runs']:9.1f} {row['help among ADDs']:9.1f} {row['in flight runs']:>4}/{row['in flight ADDs']:<3}", flush=True)
med = {k: statistics.median(v) for k, v in res.items()}
print(f"medians of {rounds} rounds (ratios paired per round). ps (and the control, dnsd --help, in batches of their own) issued "
      f"{ps_delay * 1000:.0f} ms after the last of the {count} was launched (launching them took {med['launch runs']:.1f} ms for runs, "
      f"{med['launch ADDs']:.1f} ms for ADDs); inflight: how many of the {count} runs/ADDs were still running while that ps ran")
for k in ("run seq", "run par", "ADD seq", "ADD par", "ps among runs", "ps among ADDs", "ps alone", "help among runs", "help among ADDs"):
    print(f"{k:<15} {med[k]:8.1f}")
verdict = lambda ok: "PASS" if ok else "FAIL"
print(f"{count} dnsd run at once: {med['run par']:.0f} ms vs one after another {med['run seq']:.0f} ms ({med['run seq'] / count:.1f} ms each): "
      f"ratio (parallel/sequential) {med['run ratio']:.3f} (bar <= 0.35): {verdict(med['run ratio'] <= 0.35)}")
print(f"{count} CNI ADD at once: {med['ADD par']:.0f} ms vs one after another {med['ADD seq']:.0f} ms ({med['ADD seq'] / count:.1f} ms each): "
      f"ratio (parallel/sequential) {med['ADD ratio']:.3f} (bar <= 0.35): {verdict(med['ADD ratio'] <= 0.35)}")
print(f"{count} runs as API requests from {count} threads of one process (no client process starts): {med['api par']:.0f} ms vs one "
      f"after another {med['api seq']:.0f} ms: ratio {med['api ratio']:.3f} (bar <= 0.35): {verdict(med['api ratio'] <= 0.35)}; "
      f"GET /v1/sandboxes among them: {med['ps among api']:.1f} ms (bar <= 20 ms): {verdict(med['ps among api'] <= 20)}")
# The floor no scheduling can beat: the CPU a batch needs (measured one after another), spread
# over every core; as a ratio of the sequential wall time, the best parallel/sequential possible.
cores = os.cpu_count()
for kind, label, seq in (("run", "dnsd run", "run seq"), ("cni", "CNI ADD", "ADD seq"), ("api", "API run", "api seq")):
    cpu = statistics.median(cpu_of[kind])
    print(f"CPU floor, {label}: {cpu:.0f} ms of CPU per batch of {count} ({cpu / count:.1f} ms each, clients, daemon, etcd and kernel "
          f"together) over {cores} cores = {cpu / cores:.0f} ms: the best ratio possible here is {cpu / cores / med[seq]:.2f}")
print(f"  of which, per API run: " + ", ".join(f"{name} {statistics.median(cpu_of[f'api {name}']) / count:.1f} ms" for name in watched)
      + " (the rest: the kernel's own work outside these processes, e.g. namespace teardown, and this client)")
print(f"dnsd ps among {count} parallel runs: {med['ps among runs']:.1f} ms (bar <= 20 ms): {verdict(med['ps among runs'] <= 20)}; "
      f"among {count} parallel ADDs: {med['ps among ADDs']:.1f} ms (bar <= 20 ms): {verdict(med['ps among ADDs'] <= 20)}; "
      f"ps alone: {med['ps alone']:.1f} ms; a client start alone among them (dnsd --help): {med['help among runs']:.1f} / "
      f"{med['help among ADDs']:.1f} ms")
PY
