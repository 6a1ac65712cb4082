#!/usr/bin/env python3
"""A test double of Consul's HTTP API, the subset dnsd uses, written from Consul's public API
reference (no Consul binary can be installed here), and as strict as that reference:
- KV: GET (recurse, blocking index/wait with Go durations such as "5m"), PUT (cas, acquire),
  DELETE (cas), PUT /v1/txn (check-not-exists, check-index, check-session, lock, set, delete), at most 64
  operations per transaction (413 past that, as older Consul versions; newer allow 128).
- Sessions: create with TTL between 10s and 86400s (400 otherwise), Behavior "release" by
  default ("delete" on request), LockDelay 15s by default (a key held by an invalidated session
  cannot be acquired again until it passes); renew, destroy; a session whose TTL lapsed is
  invalidated only at twice its TTL, the latest Consul allows itself.
- X-Consul-Index on every KV answer; PUT /v1/test/reset-index?to=N moves it backwards, as a
  restored server does (a test control, not Consul's API).
Usage: consul_double.py PORT [ADDRESS]"""
import base64, json, re, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs, unquote

lock = threading.Condition()
kv = {}          # key -> dict(Value=bytes, CreateIndex, ModifyIndex, Session)
sessions = {}    # id -> dict(ttl, deadline, behavior, lock_delay)
lock_delays = {} # key -> time before which no session may acquire it
index = [1]
MAX_TXN_OPS = 64

def bump():
    index[0] += 1
    lock.notify_all()
    return index[0]

def invalidate(sid):
    session = sessions.pop(sid, None)
    if session is None:
        return
    for key in [k for k, v in kv.items() if v.get("Session") == sid]:
        if session["lock_delay"] > 0:
            lock_delays[key] = time.time() + session["lock_delay"]
        if session["behavior"] == "delete":
            del kv[key]
        else:                # "release": the key stays, without its session
            kv[key]["Session"] = None
            kv[key]["ModifyIndex"] = bump()
    bump()

def may_acquire(key, sid, current):
    """A lock by session `sid` on `key`: the session must exist, nobody else hold the key, and
    no lock delay be running on it."""
    if sid not in sessions or (current and current.get("Session") not in (None, sid)):
        return False
    return time.time() >= lock_delays.get(key, 0)

def expire_sessions():
    while True:
        time.sleep(0.1)
        with lock:
            now = time.time()
            for sid in [s for s, v in sessions.items() if v["deadline"] < now]:
                invalidate(sid)

def parse_duration(text):
    """A Go duration ("10s", "5m", "1h30m", "250ms"); a bare number is seconds. None if unreadable."""
    if re.fullmatch(r"\d+(\.\d+)?", text or ""):
        return float(text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text or "")
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass

    def reply(self, status, body, extra=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Consul-Index", str(index[0]))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def route(self):
        url = urlparse(self.path)
        return url.path, {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}

    def do_GET(self):
        path, q = self.route()
        if not path.startswith("/v1/kv/"):
            return self.reply(404, b"")
        key = unquote(path[len("/v1/kv/"):])
        with lock:
            if "index" in q:
                wait = parse_duration(q.get("wait", "5m"))
                if wait is None:
                    return self.reply(400, b"Invalid wait time")
                deadline = time.time() + min(wait, 600)
                while index[0] <= int(q["index"]) and time.time() < deadline:
                    lock.wait(deadline - time.time())
            if "recurse" in q:
                items = [(k, v) for k, v in sorted(kv.items()) if k.startswith(key)]
            else:
                items = [(key, kv[key])] if key in kv else []
            if not items:
                return self.reply(404, b"")
            return self.reply(200, [{"Key": k, "Value": base64.b64encode(v["Value"]).decode() if v["Value"] else None,
                                     "CreateIndex": v["CreateIndex"], "ModifyIndex": v["ModifyIndex"], "LockIndex": 0,
                                     "Flags": 0, **({"Session": v["Session"]} if v.get("Session") else {})} for k, v in items])

    def do_PUT(self):
        path, q = self.route()
        data = self.body()
        with lock:
            if path.startswith("/v1/kv/"):
                key = unquote(path[len("/v1/kv/"):])
                current = kv.get(key)
                if "cas" in q:
                    cas = int(q["cas"])
                    if (cas == 0 and current is not None) or (cas != 0 and (current is None or current["ModifyIndex"] != cas)):
                        return self.reply(200, b"false")
                session = q.get("acquire")
                if session is not None and not may_acquire(key, session, current):
                    return self.reply(200, b"false")
                new = bump()
                kv[key] = {"Value": data, "CreateIndex": current["CreateIndex"] if current else new, "ModifyIndex": new,
                           "Session": session if session is not None else (current or {}).get("Session")}
                return self.reply(200, b"true")
            if path == "/v1/txn":
                return self.txn(json.loads(data or b"[]"))
            if path == "/v1/test/reset-index":
                index[0] = int(q.get("to", "1"))
                return self.reply(200, b"true")
            if path == "/v1/session/create":
                spec = json.loads(data or b"{}")
                ttl = parse_duration(spec.get("TTL", "")) if "TTL" in spec else 0
                if ttl is None or (ttl != 0 and not 10 <= ttl <= 86400):
                    return self.reply(400, ("Invalid Session TTL '%s', must be between [10s=24h0m0s]" % spec.get("TTL")).encode())
                behavior = spec.get("Behavior", "release")
                if behavior not in ("release", "delete"):
                    return self.reply(400, b"Invalid Behavior setting")
                lock_delay = parse_duration(spec.get("LockDelay", "15s"))
                if lock_delay is None:
                    return self.reply(400, b"Invalid LockDelay")
                sid = str(uuid.uuid4())
                # Consul invalidates a lapsed session only at twice its TTL: the strictest model.
                sessions[sid] = {"ttl": ttl, "deadline": time.time() + 2 * ttl if ttl else float("inf"),
                                 "behavior": behavior, "lock_delay": lock_delay}
                return self.reply(200, {"ID": sid})
            if path.startswith("/v1/session/renew/"):
                sid = path.rsplit("/", 1)[1]
                if sid not in sessions:
                    return self.reply(404, b"")
                if sessions[sid]["ttl"]:
                    sessions[sid]["deadline"] = time.time() + 2 * sessions[sid]["ttl"]
                return self.reply(200, [{"ID": sid}])
            if path.startswith("/v1/session/destroy/"):
                invalidate(path.rsplit("/", 1)[1])
                return self.reply(200, b"true")
        self.reply(404, b"")

    def txn(self, operations):
        """Called with the lock held: every check first, then the writes; 409 and nothing written
        when a check (or a lock by another session) fails."""
        if len(operations) > MAX_TXN_OPS:
            return self.reply(413, ("Transaction contains too many operations (%d > %d)" % (len(operations), MAX_TXN_OPS)).encode())
        errors = []
        for i, op in enumerate(o["KV"] for o in operations):
            current = kv.get(op["Key"])
            if op["Verb"] == "check-not-exists" and current is not None:
                errors.append({"OpIndex": i, "What": "key exists"})
            elif op["Verb"] == "check-index" and (current is None or current["ModifyIndex"] != op["Index"]):
                errors.append({"OpIndex": i, "What": "index mismatch"})
            elif op["Verb"] == "check-session" and (current is None or current.get("Session") != op.get("Session")):
                errors.append({"OpIndex": i, "What": "key not locked by the session"})
            elif op["Verb"] == "lock" and not may_acquire(op["Key"], op.get("Session"), current):
                errors.append({"OpIndex": i, "What": "lock failed"})
            elif op["Verb"] not in ("check-not-exists", "check-index", "check-session", "lock", "set", "delete"):
                return self.reply(400, b"unsupported verb")
        if errors:
            return self.reply(409, {"Results": None, "Errors": errors})
        results = []
        for op in (o["KV"] for o in operations):
            if op["Verb"] == "delete":
                if kv.pop(op["Key"], None) is not None:
                    bump()
            if op["Verb"] in ("lock", "set"):
                current = kv.get(op["Key"])
                new = bump()
                session = op.get("Session") if op["Verb"] == "lock" else (current or {}).get("Session")
                kv[op["Key"]] = {"Value": base64.b64decode(op.get("Value") or ""), "CreateIndex": current["CreateIndex"] if current else new,
                                 "ModifyIndex": new, "Session": session}
                results.append({"KV": {"Key": op["Key"], "Value": None, "CreateIndex": kv[op["Key"]]["CreateIndex"], "ModifyIndex": new}})
        return self.reply(200, {"Results": results, "Errors": None})

    def do_DELETE(self):
        path, q = self.route()
        if not path.startswith("/v1/kv/"):
            return self.reply(404, b"")
        key = unquote(path[len("/v1/kv/"):])
        with lock:
            if "cas" in q:
                cas = int(q["cas"])
                if cas == 0 or key not in kv or kv[key]["ModifyIndex"] != cas:
                    return self.reply(200, b"false")
            if kv.pop(key, None) is not None:
                bump()
        self.reply(200, b"true")

if __name__ == "__main__":
    threading.Thread(target=expire_sessions, daemon=True).start()
    server = ThreadingHTTPServer((sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
