import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

/// The etcd watch stream's framing (issue 16): messages split at every byte boundary, several
/// in one chunk, an empty line between, all read as the same events. A stand-in gateway
/// streams a scripted watch response one byte per HTTP chunk.
@Suite("etcd watch framing", .timeLimit(.minutes(5)))
struct WatchFramingTests {
    static let server = #"""
    import http.server, socketserver, sys, time, json
    body = open(sys.argv[2], "rb").read()
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v3/watch":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(len(body)):
                    # one byte per chunk, each on its own write
                    self.wfile.write(b"1\r\n" + body[i:i+1] + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.0005)
                time.sleep(30)
            else:
                # the watch's liveness probe (a range count): the member answers
                data = b'{"count":"0"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
    socketserver.TCPServer.allow_reuse_address = True
    class S(socketserver.ThreadingMixIn, socketserver.TCPServer): daemon_threads = True
    S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """#

    static func kv(_ key: String, _ value: String, revision: Int) -> String {
        "{\"key\":\"\(Data(key.utf8).base64EncodedString())\",\"value\":\"\(Data(value.utf8).base64EncodedString())\",\"mod_revision\":\"\(revision)\"}"
    }

    @Test("a watch stream delivered one byte per chunk yields exactly its events, in order")
    func byteByByte() throws {
        let work = TestRun.temporaryPath("framing")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let messages = [
            "{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":true}}",
            "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":\(Self.kv("p/a", "1", revision: 5))},{\"kv\":\(Self.kv("p/b", "2", revision: 6))}]}}",
            "",
            "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":\"DELETE\",\"kv\":\(Self.kv("p/a", "", revision: 7))}]}}",
        ]
        try Data((messages.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: work + "/body"))
        try Self.server.write(toFile: work + "/server.py", atomically: true, encoding: .utf8)
        let port = try Ports.free()
        let server = try ChildProcess(["python3", work + "/server.py", "\(port)", work + "/body"], output: work + "/server.log")
        defer { server.stop() }
        for _ in 0..<100 {
            if (try? Shell.run(["curl", "-s", "-m", "1", "-X", "POST", "http://127.0.0.1:\(port)/v3/kv/range"], timeout: 5))?.stdout.contains("count") == true { break }
            usleep(50_000)
        }
        let store = EtcdStore(endpoints: ["127.0.0.1:\(port)"], logger: Logger(label: "t"))
        let seen = Mutex<[WatchEvent]>([])
        let handle = try store.watch(prefix: "p/", from: 5, events: { batch in seen.withLock { $0 += batch } }, failed: { _ in })
        defer { handle.cancel() }
        let deadline = Date().addingTimeInterval(20)
        while seen.withLock({ $0.count }) < 3, Date() < deadline { usleep(20_000) }
        let events = seen.withLock { $0 }
        #expect(events.map(\.kind) == [.put, .put, .delete])
        #expect(events.map(\.entry.key) == ["p/a", "p/b", "p/a"])
        #expect(events.map(\.entry.text) == ["1", "2", ""])
        #expect(events.map(\.entry.modRevision) == [5, 6, 7])
    }
}
