#!/usr/bin/env python3
"""Convergence (DESIGN.md §6): etcd and two simulated hosts, one dnsd daemon each. COUNT sandboxes
are started one after another on h2; for each, the time from `dnsd run` returning until an
observer sandbox on h1 both resolves the name through DNS (127.0.0.11) and finds it in its hosts
file; then the same for `dnsd stop` (name gone from both). The observer polls from a thread that
has entered the sandbox's network namespace (setns via ctypes). Removes everything it made.
usage: bench/converge.py DNSD_BINARY [COUNT]"""
import ctypes, os, random, shutil, socket, statistics, struct, subprocess, sys, tempfile, threading, time

DNSD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/dnsd")
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 100
P = f"cvg{os.getpid()}"
WORK = tempfile.mkdtemp(prefix="dnsd-converge-")
procs = []

def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)

def dnsd(host, *args):
    return subprocess.run([DNSD, *args], env={**os.environ, "DNSD_SOCK": f"{WORK}/{host}.sock"}, capture_output=True, text=True)

def add_host(name, address):
    sh("ip", "netns", "add", name); sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "-n", f"{P}ul", "link", "add", f"u{name[-3:]}", "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("ip", "-n", f"{P}ul", "link", "set", f"u{name[-3:]}", "master", "ul0", "up")
    sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0"); sh("ip", "-n", name, "link", "set", "eth0", "up")

def cleanup():
    for p in procs:
        p.terminate()
    for p in procs:
        try: p.wait(5)
        except Exception: p.kill()
    for n in sh("ip", "netns", "list", check=False).stdout.split("\n"):
        n = n.split(" ")[0]
        if n.startswith(P) or n.startswith(f"{P}h") or n.startswith("cv" + P[3:]):
            sh("ip", "netns", "del", n, check=False)
            shutil.rmtree(f"/etc/netns/{n}", ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)

def query(name):
    header = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return header + qname + struct.pack(">HH", 1, 1)

class Observer(threading.Thread):
    """Polls DNS and the hosts file of `sandbox` for `target`; records when `want` holds."""
    def __init__(self, sandbox):
        super().__init__(daemon=True)
        self.sandbox, self.target, self.want, self.seen, self.stop = sandbox, None, True, None, False
        self.lock = threading.Lock()
    def watch(self, target, want):
        with self.lock:
            self.target, self.want, self.seen = target, want, None
    def run(self):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/run/netns/{self.sandbox}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET, this thread only
            raise OSError(ctypes.get_errno(), "setns")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.11", 53)); s.settimeout(0.005)
        hosts = f"/etc/netns/{self.sandbox}/hosts"
        while not self.stop:
            with self.lock:
                target, want, seen = self.target, self.want, self.seen
            if target is None or seen is not None:
                time.sleep(0.0002); continue
            try:
                s.send(query(f"{target}.vnet"))
                answer = s.recv(512)
                in_dns = struct.unpack(">H", answer[6:8])[0] > 0
            except socket.timeout:
                continue
            with open(hosts) as f:
                in_hosts = any(target in line.split() for line in f if not line.startswith("#"))
            if in_dns == want and in_hosts == want:
                with self.lock:
                    if self.target == target and self.seen is None:
                        self.seen = time.monotonic()
            else:
                time.sleep(0.0002)

def wait_seen(observer, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with observer.lock:
            if observer.seen is not None: return observer.seen
        time.sleep(0.0005)
    return None

def pct(values, q):
    v = sorted(values); return v[min(len(v) - 1, int(q * len(v)))]

try:
    sh("ip", "netns", "add", f"{P}ul"); sh("ip", "-n", f"{P}ul", "link", "add", "ul0", "type", "bridge"); sh("ip", "-n", f"{P}ul", "link", "set", "ul0", "up")
    add_host(f"{P}etc", "198.18.0.254")
    procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{P}etc", "etcd", "--name", "c", "--data-dir", f"{WORK}/etcd",
        "--listen-client-urls", "http://198.18.0.254:2379", "--advertise-client-urls", "http://198.18.0.254:2379",
        "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", "c=http://127.0.0.1:2380", "--logger", "zap", "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(100):
        if "true" in sh("nsenter", f"--net=/run/netns/{P}etc", "curl", "-s", "-m", "1", "http://198.18.0.254:2379/health", check=False).stdout: break
        time.sleep(0.1)
    for n in (1, 2):
        add_host(f"{P}h{n}", f"198.18.0.{n}")
        procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{P}h{n}", DNSD, "daemon", "--store", "etcd://198.18.0.254:2379",
            "--host-id", f"{P}h{n}", "--advertise", f"198.18.0.{n}", "--state-dir", f"{WORK}/s{n}", "--sock", f"{WORK}/h{n}.sock",
            "--upstream", "127.0.0.1:9", "--log-level", "error"]))
    for n in (1, 2):
        for _ in range(100):
            if dnsd(f"h{n}", "ps").returncode == 0: break
            time.sleep(0.1)
    prefix = "cv" + P[3:]
    assert dnsd("h1", "network", "create", "--subnet=10.77.0.0/16", "vnet").returncode == 0
    observer_name = f"{prefix}obs"
    assert dnsd("h1", "run", f"--name={observer_name}", "--net=vnet").returncode == 0
    observer = Observer(observer_name); observer.start()
    up, down, missed = [], [], 0
    up_from_start, down_from_start, run_times = [], [], []
    for i in range(COUNT):
        name = f"{prefix}n{i}"
        observer.watch(name, True)
        started = time.monotonic()
        r = dnsd("h2", "run", f"--name={name}", "--net=vnet"); returned = time.monotonic()
        assert r.returncode == 0, r.stderr
        seen = wait_seen(observer)
        run_times.append((returned - started) * 1000)
        if seen is None: missed += 1
        else:
            up.append(max(0.0, seen - returned) * 1000)
            up_from_start.append((seen - started) * 1000)
    for i in range(COUNT):
        name = f"{prefix}n{i}"
        observer.watch(name, False)
        started = time.monotonic()
        r = dnsd("h2", "stop", name); returned = time.monotonic()
        assert r.returncode == 0, r.stderr
        seen = wait_seen(observer)
        if seen is None: missed += 1
        else:
            down.append(max(0.0, seen - returned) * 1000)
            down_from_start.append((seen - started) * 1000)
    observer.stop = True
    print(f"convergence over {COUNT} sandboxes started then stopped on h2, observed from a sandbox on h1 (DNS answer and hosts line), etcd store")
    for label, values in (("run  -> visible", up), ("stop -> gone   ", down)):
        if not values:
            print(f"{label}: never converged"); continue
        p50, p99 = statistics.median(values), pct(values, 0.99)
        print(f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(values):.2f} ms  (bars p50 < 20, p99 < 100: {'PASS' if p50 < 20 and p99 < 100 else 'FAIL'})")
    print("for reference, from the moment the command starts (client process included):")
    for label, values in (("run  -> visible", up_from_start), ("stop -> gone   ", down_from_start), ("dnsd run itself", run_times)):
        if values: print(f"  {label}: p50 {statistics.median(values):.2f} ms, p99 {pct(values, 0.99):.2f} ms")
    if missed: print(f"never converged within 5 s: {missed}")
finally:
    cleanup()
