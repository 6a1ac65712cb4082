import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 12's control API, route by route, with curl on the unix socket (as a user of the README
/// would), statuses and JSON checked; the events stream followed by `dnsd events` and by curl.
@Suite("Control API: HTTP/1.1 + JSON on the unix socket", .serialized, .timeLimit(.minutes(5)))
struct APITests {
    /// `curl --unix-socket SOCK -X METHOD http://dnsd/PATH [-d BODY]`: status and JSON.
    static func curl(_ cluster: ClusterHarness, _ n: Int, _ method: String, _ path: String, _ body: String? = nil) throws -> (status: Int, json: Any?) {
        var arguments = ["curl", "-s", "-m", "20", "--unix-socket", cluster.socket(n), "-X", method, "-w", "\n%{http_code}", "http://dnsd\(path)"]
        if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
        let out = try Shell.check(arguments, timeout: 30)
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? 0
        let text = lines.dropLast().joined(separator: "\n")
        return (status, try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]))
    }

    @Test("every route of the README's table answers with its status and JSON; refusals are JSON errors with a status")
    func routes() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        func call(_ method: String, _ path: String, _ body: String? = nil) throws -> (status: Int, json: Any?) {
            try Self.curl(cluster, 1, method, path, body)
        }
        // networks
        var r = try call("POST", "/v1/networks", #"{"name":"anet","driver":"bridge","subnet":"192.168.93.0/24"}"#)
        #expect(r.status == 201 && (r.json as? [String: Any])?["subnet"] as? String == "192.168.93.0/24", "\(r)")
        r = try call("POST", "/v1/networks", #"{"name":"bnet","driver":"bridge","subnet":"192.168.94.0/24"}"#)
        #expect(r.status == 201)
        r = try call("GET", "/v1/networks")
        #expect(r.status == 200 && ((r.json as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String } == ["anet", "bnet"], "\(r)")
        // sandboxes
        r = try call("POST", "/v1/sandboxes", "{\"name\":\"\(a)\",\"network\":\"anet\",\"aliases\":[\"web\"]}")
        let attachments = ((r.json as? [String: Any])?["attachments"] as? [[String: Any]]) ?? []
        #expect(r.status == 201 && attachments.first?["network"] as? String == "anet" && attachments.first?["interface"] as? String == "eth0", "\(r)")
        r = try call("POST", "/v1/sandboxes", "{\"name\":\"\(b)\",\"network\":\"anet\"}")
        #expect(r.status == 201)
        r = try call("GET", "/v1/sandboxes")
        #expect(r.status == 200 && ((r.json as? [[String: Any]]) ?? []).count == 2)
        r = try call("GET", "/v1/sandboxes/\(a)")
        #expect(r.status == 200 && (r.json as? [String: Any])?["hostsFile"] as? String == "/etc/netns/\(a)/hosts", "\(r)")
        r = try call("GET", "/v1/networks/anet")
        #expect(r.status == 200 && (((r.json as? [String: Any])?["endpoints"] as? [[String: Any]]) ?? []).count == 2, "\(r)")
        r = try call("POST", "/v1/sandboxes/\(a)/networks", #"{"network":"bnet"}"#)
        #expect(r.status == 200 && (((r.json as? [String: Any])?["attachments"] as? [[String: Any]]) ?? []).count == 2, "\(r)")
        r = try call("GET", "/v1/sandboxes/\(b)/dns")
        let views = ((r.json as? [String: Any])?["networks"] as? [[String: Any]]) ?? []
        let names = (views.first?["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(r.status == 200 && views.first?["name"] as? String == "anet" && Set(names) == [a, b], "\(r)")
        r = try call("DELETE", "/v1/sandboxes/\(a)/networks/bnet")
        #expect(r.status == 200 && (((r.json as? [String: Any])?["attachments"] as? [[String: Any]]) ?? []).count == 1)
        r = try call("POST", "/v1/sandboxes/\(b)/stop")
        #expect(r.status == 200 && (r.json as? [String: Any])?["name"] as? String == b)
        r = try call("DELETE", "/v1/sandboxes/\(a)")
        #expect(r.status == 200)
        r = try call("DELETE", "/v1/networks/bnet")
        #expect(r.status == 200)
        // attach: a namespace made elsewhere
        let outside = cluster.name("o")
        try Shell.check(["ip", "netns", "add", outside])
        defer { _ = try? Shell.run(["ip", "netns", "del", outside]) }
        r = try call("POST", "/v1/sandboxes/attach", "{\"name\":\"\(outside)\",\"netns\":\"/run/netns/\(outside)\",\"network\":\"anet\"}")
        #expect(r.status == 201, "\(r)")
        #expect(try call("DELETE", "/v1/sandboxes/\(outside)").status == 200)
        // refusals: one-line JSON errors with a status
        for (method, path, body, status) in [
            ("GET", "/v1/nothing", nil, 404), ("GET", "/v1/sandboxes/nosuch", nil, 404), ("GET", "/v1/networks/nosuch", nil, 404),
            ("POST", "/v1/networks", "{not json", 400), ("POST", "/v1/networks", #"{"name":"x"}"#, 400),
            ("POST", "/v1/networks", #"{"name":"Bad_Name","subnet":"10.9.0.0/24"}"#, 400),
            ("POST", "/v1/networks", #"{"name":"anet","driver":"bridge","subnet":"10.8.0.0/24"}"#, 409),
            ("DELETE", "/v1/networks/anet", nil, 200),  // and a success, now that nothing uses it
        ] as [(String, String, String?, Int)] {
            let refused = try call(method, path, body)
            #expect(refused.status == status, "\(method) \(path): \(refused)")
            if status >= 400 {
                let message = (refused.json as? [String: Any])?["error"] as? String ?? ""
                #expect(!message.isEmpty && !message.contains("\n"), "\(method) \(path): \(refused)")
            }
        }
    }

    @Test("events: dnsd events and curl follow the changes applied, local and remote, one JSON line each")
    func events() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let log = cluster.work + "/events.log", raw = cluster.work + "/curl-events.log"
        let follower = try ChildProcess(["env", "DNSD_SOCK=\(cluster.socket(1))", ClusterHarness.dnsdBinary, "events"], output: log)
        defer { follower.stop() }
        let curl = try ChildProcess(["curl", "-s", "-N", "--unix-socket", cluster.socket(1), "http://dnsd/v1/events"], output: raw)
        defer { curl.stop() }
        usleep(300_000)
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.95.0/24", "enet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=enet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=enet"]).status == 0)
        #expect(try cluster.dnsd(2, ["stop", b]).status == 0)
        func lines(_ path: String) -> [[String: Any]] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        func seen(_ path: String) -> [String] {
            lines(path).map { "\($0["kind"] as? String ?? "?") \($0["action"] as? String ?? "?") \($0["name"] as? String ?? $0["network"] as? String ?? "?") \(($0["local"] as? Bool).map { $0 ? "local" : "remote" } ?? "")" }
        }
        let expected = ["network add enet ", "endpoint add \(a) local", "endpoint add \(b) remote", "endpoint remove \(b) remote"]
        #expect(cluster.eventually(5) { seen(log) == expected }, "\(seen(log))")
        #expect(cluster.eventually(5) { seen(raw) == expected }, "\(seen(raw))")
        #expect(follower.isRunning, "dnsd events ended")
    }
}
