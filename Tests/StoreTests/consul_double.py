#!/usr/bin/env python3
"""A test double of Consul's HTTP API, the subset dnsd uses, written from Consul's public API
reference (no Consul binary can be installed here). KV: GET (recurse, blocking index/wait),
PUT (cas, acquire), DELETE (cas), PUT /v1/txn (check-not-exists, check-index, lock, set, delete); sessions: create (TTL, Behavior=delete), renew, destroy, TTL expiry.
X-Consul-Index on every KV answer. Usage: consul_double.py PORT [ADDRESS]"""
import base64, json, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs, unquote

lock = threading.Condition()
kv = {}          # key -> dict(Value=bytes, CreateIndex, ModifyIndex, Session)
sessions = {}    # id -> dict(ttl, deadline)
index = [1]

def bump():
    index[0] += 1
    lock.notify_all()
    return index[0]

def invalidate(sid):
    if sessions.pop(sid, None) is None:
        return
    for key in [k for k, v in kv.items() if v.get("Session") == sid]:
        del kv[key]          # Behavior=delete
    bump()

def expire_sessions():
    while True:
        time.sleep(0.1)
        with lock:
            now = time.time()
            for sid in [s for s, v in sessions.items() if v["deadline"] < now]:
                invalidate(sid)

def parse_ttl(text):
    return float(text[:-1]) if text.endswith("s") else float(text)

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
                deadline = time.time() + parse_ttl(q.get("wait", "5s"))
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
                if session is not None:
                    if session not in sessions or (current and current.get("Session") not in (None, session)):
                        return self.reply(200, b"false")
                new = bump()
                kv[key] = {"Value": data, "CreateIndex": current["CreateIndex"] if current else new, "ModifyIndex": new,
                           "Session": session if session is not None else (current or {}).get("Session")}
                return self.reply(200, b"true")
            if path == "/v1/txn":
                return self.txn(json.loads(data or b"[]"))
            if path == "/v1/session/create":
                spec = json.loads(data or b"{}")
                sid = str(uuid.uuid4())
                ttl = parse_ttl(spec.get("TTL", "10s"))
                sessions[sid] = {"ttl": ttl, "deadline": time.time() + ttl}
                return self.reply(200, {"ID": sid})
            if path.startswith("/v1/session/renew/"):
                sid = path.rsplit("/", 1)[1]
                if sid not in sessions:
                    return self.reply(404, b"")
                sessions[sid]["deadline"] = time.time() + sessions[sid]["ttl"]
                return self.reply(200, [{"ID": sid}])
            if path.startswith("/v1/session/destroy/"):
                invalidate(path.rsplit("/", 1)[1])
                return self.reply(200, b"true")
        self.reply(404, b"")

    def txn(self, operations):
        """Called with the lock held: every check first, then the writes; 409 and nothing written
        when a check (or a lock by another session) fails."""
        errors = []
        for i, op in enumerate(o["KV"] for o in operations):
            current = kv.get(op["Key"])
            if op["Verb"] == "check-not-exists" and current is not None:
                errors.append({"OpIndex": i, "What": "key exists"})
            elif op["Verb"] == "check-index" and (current is None or current["ModifyIndex"] != op["Index"]):
                errors.append({"OpIndex": i, "What": "index mismatch"})
            elif op["Verb"] == "lock" and (op.get("Session") not in sessions or
                                           (current and current.get("Session") not in (None, op.get("Session")))):
                errors.append({"OpIndex": i, "What": "lock failed"})
            elif op["Verb"] not in ("check-not-exists", "check-index", "lock", "set", "delete"):
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
