#!/usr/bin/env python3
"""Fleet (issue 22): N simulated hosts (network namespaces on one underlay bridge), one dnsd daemon
each, one etcd (FLEET_ETCD_MEMBERS=3: a 3-member cluster), M overlay networks and K sandboxes per
host. Host 1 is on one network, host 2 on all M, every other host on two. For each N it measures:

- convergence: from `dnsd run` returning on one host to the name answering at 127.0.0.11 in a
  sandbox of that network on every other host on it (p50, p99, max over RUNS runs), and the same
  for `dnsd stop` (gone everywhere);
- store events each host received during those runs (dnsd_store_events_total): host 1 (1 of M
  networks) against host 2 (all M);
- etcd's load from the idle fleet (requests per host per second over IDLE seconds, from etcd's
  grpc_server_started_total), its watchers, and the stored bytes per endpoint;
- each daemon's resident memory and idle CPU (the same idle window);
- host death: one daemon killed (SIGKILL): until its names are NXDOMAIN on every other host;
- whole-fleet restart: every daemon killed, then all started together: until every host's names
  answer again on every other host on their networks.

Removes everything it made. usage: bench/fleet.py DNSD_BINARY
env: FLEET_SIZES ("5 20 50"), FLEET_NETWORKS (4), FLEET_SANDBOXES (20 per host), FLEET_RUNS (100),
     FLEET_IDLE_SECONDS (20), FLEET_ETCD_MEMBERS (1)"""
import concurrent.futures, ctypes, json, os, random, shutil, socket, statistics, struct, subprocess, sys, tempfile, threading, time
import base64

DNSD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/dnsd")
SIZES = [int(x) for x in os.environ.get("FLEET_SIZES", "5 20 50").split()]
M = int(os.environ.get("FLEET_NETWORKS", "4"))
K = int(os.environ.get("FLEET_SANDBOXES", "20"))
RUNS = int(os.environ.get("FLEET_RUNS", "100"))
IDLE = float(os.environ.get("FLEET_IDLE_SECONDS", "20"))
MEMBERS = int(os.environ.get("FLEET_ETCD_MEMBERS", "1"))
TTL = 10  # the daemons' default --lease-ttl
TICK = os.sysconf("SC_CLK_TCK")
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def query(name, qid=None):
    header = struct.pack(">HHHHHH", qid if qid is not None else random.randrange(65536), 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return header + qname + struct.pack(">HH", 1, 1)


class Fleet:
    """One fleet of N hosts; everything it makes is named with its prefix and removed by close()."""

    def __init__(self, n):
        self.n, self.p = n, f"fl{os.getpid() % 10000}n{n}-"
        self.work = tempfile.mkdtemp(prefix="dnsd-fleet-")
        self.procs, self.daemons = [], {}
        self.members = [f"198.18.0.{251 + i}" for i in range(MEMBERS)] if MEMBERS > 1 else ["198.18.0.254"]
        self.nets = [f"fnet{m}" for m in range(M)]
        self.on = {h: ([0] if h == 1 else list(range(M)) if h == 2 else sorted({h % M, (h + 1) % M})) for h in range(1, n + 1)}
        self.sandboxes = {}  # (host, network index) -> [names]

    def add_host(self, name, address):
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        port = f"u{address.split('.')[-1]}"
        sh("ip", "-n", f"{self.p}ul", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "-n", f"{self.p}ul", "link", "set", port, "master", "ul0", "up")
        sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")

    def start_store(self):
        sh("ip", "netns", "add", f"{self.p}ul")
        sh("ip", "-n", f"{self.p}ul", "link", "add", "ul0", "type", "bridge")
        sh("ip", "-n", f"{self.p}ul", "link", "set", "ul0", "up")
        cluster = ",".join(f"m{i}=http://{a}:2380" for i, a in enumerate(self.members))
        for i, address in enumerate(self.members):
            self.add_host(f"{self.p}etcd{i}", address)
            self.procs.append(subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.p}etcd{i}", "etcd", "--name", f"m{i}",
                 "--data-dir", f"{self.work}/etcd{i}", "--listen-client-urls", f"http://{address}:2379",
                 "--advertise-client-urls", f"http://{address}:2379", "--listen-peer-urls", f"http://{address}:2380",
                 "--initial-advertise-peer-urls", f"http://{address}:2380", "--initial-cluster", cluster,
                 "--quota-backend-bytes", "4294967296", "--logger", "zap", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(300):
            if all("true" in sh("nsenter", f"--net=/run/netns/{self.p}etcd{i}", "curl", "-s", "-m", "1",
                                f"http://{a}:2379/health", check=False).stdout for i, a in enumerate(self.members)):
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def etcd(self, path, body):
        """One request to etcd's JSON gateway, from inside the store's namespace."""
        return json.loads(sh("nsenter", f"--net=/run/netns/{self.p}etcd0", "curl", "-s", "-m", "30", "-X", "POST",
                             f"http://{self.members[0]}:2379{path}", "-d", json.dumps(body)).stdout)

    def etcd_metrics(self):
        """etcd's /metrics, summed by metric name over every member."""
        out = "\n".join(sh("nsenter", f"--net=/run/netns/{self.p}etcd{i}", "curl", "-sf", "-m", "5", f"http://{a}:2379/metrics").stdout
                        for i, a in enumerate(self.members))
        sums = {}
        for line in out.split("\n"):
            if not line or line.startswith("#"):
                continue
            name = line.split("{")[0].split(" ")[0]
            try:
                sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
        return sums

    def start_daemon(self, h):
        self.daemons[h] = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.p}h{h}", DNSD, "daemon", "--store", "etcd://" + ",".join(f"{a}:2379" for a in self.members),
             "--host-id", f"{self.p}h{h}", "--advertise", f"198.18.0.{h}", "--state-dir", f"{self.work}/s{h}",
             "--sock", f"{self.work}/h{h}.sock", "--upstream", "127.0.0.1:9", "--log-level", "error",
             "--metrics", "127.0.0.1:9153"], stdout=subprocess.DEVNULL, stderr=open(f"{self.work}/h{h}.log", "a"))

    def dnsd(self, h, *args):
        return subprocess.run([DNSD, *args], env={**os.environ, "DNSD_SOCK": f"{self.work}/h{h}.sock"}, capture_output=True, text=True)

    def wait_ready(self, hosts):
        for h in hosts:
            for _ in range(200):
                if self.dnsd(h, "ps").returncode == 0:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"daemon h{h} did not start")

    def events(self, h):
        out = sh("nsenter", f"--net=/run/netns/{self.p}h{h}", "curl", "-sf", "-m", "5", "http://127.0.0.1:9153/metrics").stdout
        for line in out.split("\n"):
            if line.startswith("dnsd_store_events_total"):
                return float(line.rsplit(" ", 1)[1])
        raise RuntimeError(f"h{h}: no dnsd_store_events_total in its metrics")

    def start(self):
        self.start_store()
        for h in range(1, self.n + 1):
            self.add_host(f"{self.p}h{h}", f"198.18.0.{h}")
            self.start_daemon(h)
        self.wait_ready(range(1, self.n + 1))
        for m, net in enumerate(self.nets):
            r = self.dnsd(1, "network", "create", f"--subnet=10.{100 + m}.0.0/16", net)
            assert r.returncode == 0, r.stderr
        jobs = []
        for h in range(1, self.n + 1):
            for i in range(K):
                m = self.on[h][i % len(self.on[h])]
                name = f"{self.p}h{h}s{i}"
                self.sandboxes.setdefault((h, m), []).append(name)
                jobs.append((h, name, self.nets[m]))
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for r in pool.map(lambda j: self.dnsd(j[0], "run", f"--name={j[1]}", f"--net={j[2]}"), jobs):
                assert r.returncode == 0, r.stderr
        return time.monotonic() - started

    def observers(self, m, excluding=None):
        """One sandbox per host on network m (every sandbox of a host shares its DNS table)."""
        return [names[0] for (h, mm), names in sorted(self.sandboxes.items()) if mm == m and h != excluding]

    def close(self):
        for p in list(self.daemons.values()) + self.procs[::-1]:
            if p and p.poll() is None:
                p.terminate()
        for p in list(self.daemons.values()) + self.procs:
            try:
                p.wait(5)
            except Exception:
                p.kill()
        for line in sh("ip", "netns", "list", check=False).stdout.split("\n"):
            name = line.split(" ")[0]
            if name.startswith(self.p):
                sh("ip", "netns", "del", name, check=False)
                shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


class Prober(threading.Thread):
    """Asks 127.0.0.11 inside one sandbox (a thread that entered its namespace) for a list of
    names until each one's answer is what is wanted (answered / NXDOMAIN); notes when all were."""

    def __init__(self, sandbox):
        super().__init__(daemon=True)
        self.sandbox, self.lock, self.cv = sandbox, threading.Lock(), threading.Condition()
        self.names, self.want, self.done_at, self.stop = [], True, None, False

    def ask(self, names, want):
        with self.cv:
            self.names, self.want = list(names), want
            self.done_at = None if self.names else time.monotonic()
            self.cv.notify()

    def result(self):
        with self.cv:
            return self.done_at

    def run(self):
        fd = os.open(f"/run/netns/{self.sandbox}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.11", 53))
        s.settimeout(0.05)
        while not self.stop:
            with self.cv:
                while not self.stop and (not self.names or self.done_at is not None):
                    self.cv.wait(0.05)
                names, want = list(self.names), self.want
            pending = []
            for name in names:
                qid = random.randrange(65536)
                try:
                    s.send(query(name, qid))
                    answer = s.recv(512)
                    while struct.unpack(">H", answer[:2])[0] != qid:  # a late answer to an earlier question
                        answer = s.recv(512)
                except OSError:
                    pending.append(name)
                    continue
                rcode = answer[3] & 0x0F
                answered = rcode == 0 and struct.unpack(">H", answer[6:8])[0] > 0
                if answered != want or (not want and rcode != 3):
                    pending.append(name)
            now = time.monotonic()
            with self.cv:
                if self.names == names:
                    self.names = pending
                    if not pending:
                        self.done_at = now
            if pending:
                time.sleep(0.0005)


def wait_all(probers, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        times = [p.result() for p in probers]
        if all(t is not None for t in times):
            return max(times) if times else time.monotonic()
        time.sleep(0.001)
    return None


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(n):
    fleet = Fleet(n)
    result = {"N": n}
    try:
        made = fleet.start()
        print(f"N={n}: {n} daemons, {M} networks, {n * K} sandboxes made in {made:.1f} s", flush=True)
        probers = {}
        for m in range(M):
            for sandbox in fleet.observers(m):
                probers.setdefault(sandbox, Prober(sandbox))
        for p in probers.values():
            p.start()
        # Every host answers the names of every other host on each of its networks.
        def everyone(m, excluding=None):
            return {s: [f"{names[0]}.{fleet.nets[m]}" for (h, mm), names in fleet.sandboxes.items()
                        if mm == m and h != int(s[len(fleet.p) + 1:].split("s")[0]) and h != excluding]
                    for s in fleet.observers(m, excluding)}
        checks = {}
        for m in range(M):
            for s, names in everyone(m).items():
                checks.setdefault(s, []).extend(names)
        for s, p in probers.items():
            p.ask(checks.get(s, []), True)
        assert wait_all(probers.values(), 60) is not None, "the fleet did not converge after start"
        time.sleep(3)

        # Idle: etcd's requests, watchers and size; each daemon's memory and CPU.
        pids = {h: p.pid for h, p in fleet.daemons.items()}
        before = fleet.etcd_metrics()
        cpu0 = {h: cpu_seconds(pid) for h, pid in pids.items()}
        t0 = time.monotonic()
        time.sleep(IDLE)
        elapsed = time.monotonic() - t0
        after = fleet.etcd_metrics()
        cpu = [(cpu_seconds(pid) - cpu0[h]) / elapsed * 100 for h, pid in pids.items()]
        rss = [rss_mib(pid) for pid in pids.values()]
        requests = after.get("grpc_server_started_total", 0) - before.get("grpc_server_started_total", 0)
        result["etcd_req_per_host_s"] = requests / elapsed / n
        result["watchers"] = after.get("etcd_debugging_mvcc_watcher_total", 0)
        result["rss_max"], result["rss_median"] = max(rss), statistics.median(rss)
        result["cpu_max"], result["cpu_median"] = max(cpu), statistics.median(cpu)
        listing = fleet.etcd("/v3/kv/range", {"key": base64.b64encode(b"dnsd/v1/").decode(),
                                               "range_end": base64.b64encode(b"dnsd/v10").decode()})
        sizes, endpoints = 0, 0
        for kv in listing.get("kvs", []):
            key = base64.b64decode(kv["key"])
            sizes += len(key) + len(base64.b64decode(kv.get("value", "")))
            endpoints += key.startswith(b"dnsd/v1/endpoints/")
        result["bytes_per_endpoint"] = sizes / max(1, endpoints)
        result["db_mib"] = after.get("etcd_mvcc_db_total_size_in_use_in_bytes", 0) / 2 ** 20
        print(f"N={n}: idle {elapsed:.0f} s: etcd {result['etcd_req_per_host_s']:.2f} req/host/s, {result['watchers']:.0f} watchers; "
              f"daemons RSS max {result['rss_max']:.1f} MiB, CPU max {result['cpu_max']:.2f}% of a core", flush=True)

        # Convergence, and the events each host received meanwhile.
        events0 = {h: fleet.events(h) for h in (1, 2)}
        up, down, missed, up_from_start, observed = [], [], 0, [], []
        for r in range(RUNS):
            m = r % M
            origin = random.choice([h for h in range(1, n + 1) if m in fleet.on[h]])
            name = f"{fleet.p}c{r}"
            targets = [probers[s] for s in fleet.observers(m, excluding=origin)]
            def timed(want, *command):
                """Runs `dnsd COMMAND` on the origin host; (started, returned, seen everywhere or None)."""
                for p in targets:
                    p.ask([f"{name}.{fleet.nets[m]}"], want)
                started = time.monotonic()
                out = fleet.dnsd(origin, *command)
                returned = time.monotonic()
                assert out.returncode == 0, out.stderr
                return started, returned, wait_all(targets, 5)
            started, returned, seen = timed(True, "run", f"--name={name}", f"--net={fleet.nets[m]}")
            if seen is None:
                missed += 1
            else:
                up.append(max(0.0, seen - returned) * 1000)
                up_from_start.append((seen - started) * 1000)
                observed.append(len(targets))
            _, returned, seen = timed(False, "stop", name)
            if seen is None:
                missed += 1
            else:
                down.append(max(0.0, seen - returned) * 1000)
        events = {h: fleet.events(h) - events0[h] for h in (1, 2)}
        result.update(start_p50=statistics.median(up_from_start), start_p99=pct(up_from_start, 0.99),
                      up_p50=statistics.median(up), up_p99=pct(up, 0.99), up_max=max(up), down_p50=statistics.median(down),
                      down_p99=pct(down, 0.99), missed=missed, events_h1=events[1], events_h2=events[2])
        print(f"N={n}: run -> answering everywhere: p50 {result['up_p50']:.1f} ms, p99 {result['up_p99']:.1f} ms, max {result['up_max']:.1f} ms; "
              f"stop -> gone: p50 {result['down_p50']:.1f} ms, p99 {result['down_p99']:.1f} ms; missed {missed}; "
              f"{statistics.mean(observed):.1f} other hosts observed per run", flush=True)
        print(f"N={n}: from the moment dnsd run starts (client process included): p50 {result['start_p50']:.1f} ms, "
              f"p99 {result['start_p99']:.1f} ms", flush=True)
        print(f"N={n}: store events received during the runs: host on 1 of {M} networks {events[1]:.0f}, host on all {events[2]:.0f} "
              f"(ratio {events[1] / max(1, events[2]):.3f}, bar <= {1 / M:.3f})", flush=True)

        # Host death: host 3's names gone from every other host.
        victim = 3
        mine = {m: names for (h, m), names in fleet.sandboxes.items() if h == victim}
        asked = []
        for m, names in mine.items():
            for s in fleet.observers(m, excluding=victim):
                probers[s].ask([f"{names[0]}.{fleet.nets[m]}"], False)
                asked.append(probers[s])
        killed = time.monotonic()
        fleet.daemons[victim].kill()
        fleet.daemons[victim].wait()
        seen = wait_all(asked, TTL + 20)
        result["death_s"] = (seen - killed) if seen else float("nan")
        print(f"N={n}: a daemon killed: its names gone from every other host after {result['death_s']:.2f} s (bar <= lease TTL {TTL} + 2 s)", flush=True)

        # Whole-fleet restart: all killed, all started together; every name answers everywhere again.
        for h, p in fleet.daemons.items():
            if p.poll() is None:
                p.kill()
        for p in fleet.daemons.values():
            p.wait()
        for s, p in probers.items():
            p.ask(checks.get(s, []), True)
        started = time.monotonic()
        for h in range(1, n + 1):
            fleet.start_daemon(h)
        seen = wait_all(probers.values(), 120)
        result["restart_s"] = (seen - started) if seen else float("nan")
        print(f"N={n}: whole fleet restarted: every name answering on every host after {result['restart_s']:.2f} s", flush=True)
        for p in probers.values():
            p.stop = True
        return result
    finally:
        fleet.close()


def main():
    print(f"dnsd fleet benchmark: {os.cpu_count()} cores, {os.uname().release}; {M} networks, {K} sandboxes per host, "
          f"{RUNS} runs, etcd with {MEMBERS} member(s)", flush=True)
    results = [measure(n) for n in SIZES]
    print()
    print("| hosts | run returned -> everywhere p50 / p99 / max (ms) | run started -> everywhere p50 / p99 (ms) | stop -> gone p99 (ms) | events: host on 1 of M / on all | etcd req/host/s idle | watchers | stored bytes/endpoint | daemon RSS max (MiB) | idle CPU max (% core) | host death (s) | fleet restart (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['N']} | {r['up_p50']:.1f} / {r['up_p99']:.1f} / {r['up_max']:.1f} | {r['start_p50']:.1f} / {r['start_p99']:.1f} | {r['down_p99']:.1f} | "
              f"{r['events_h1']:.0f} / {r['events_h2']:.0f} ({r['events_h1'] / max(1, r['events_h2']):.2f}) | {r['etcd_req_per_host_s']:.2f} | "
              f"{r['watchers']:.0f} | {r['bytes_per_endpoint']:.0f} | {r['rss_max']:.1f} | {r['cpu_max']:.2f} | {r['death_s']:.2f} | {r['restart_s']:.2f} |")
    last = results[-1]
    bars = [("p99 convergence <= 100 ms, none missed", last["up_p99"] <= 100 and last["missed"] == 0), (f"events ratio <= 1/{M}", last["events_h1"] <= last["events_h2"] / M + 4),
            ("idle etcd <= 1 req/host/s", last["etcd_req_per_host_s"] <= 1), ("RSS <= 40 MiB", last["rss_max"] <= 40),
            ("idle CPU <= 0.5%", last["cpu_max"] <= 0.5), (f"host death <= {TTL + 2} s", last["death_s"] <= TTL + 2)]
    print(f"bars at N={last['N']}: " + ", ".join(f"{label}: {'PASS' if ok else 'FAIL'}" for label, ok in bars))


if __name__ == "__main__":
    main()
