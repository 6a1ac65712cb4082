import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 11's regressions on the daemon process: nothing a control client, a signal or the
/// file-descriptor limit does can stop it or wedge it.
@Suite("Hardening: the daemon process", .serialized, .timeLimit(.minutes(5)))
struct DaemonHardeningTests {
    /// A raw connection to a daemon's control socket (what a health check or `nc -U` makes).
    static func connectControl(_ path: String, nonBlocking: Bool = false) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in Array(path.utf8).enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    @Test("control clients that hang up early, send half a request or never read do not stop the daemon")
    func clientsThatHangUp() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        for round in 0..<10 {
            // Connect and close at once (a probe): the daemon answers "malformed request" into
            // a closed socket.
            if let fd = Self.connectControl(cluster.socket(1)) { close(fd) }
            // A whole request, then gone before the reply.
            if let fd = Self.connectControl(cluster.socket(1)) {
                let request = Array("{\"command\":\"ps\"}\n".utf8)
                _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
            }
            // Half a request, then gone.
            if let fd = Self.connectControl(cluster.socket(1)) {
                _ = Array("{\"comm".utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
            }
            usleep(20_000)
            #expect(cluster.daemon(1)?.isRunning == true, "daemon ended (\(cluster.daemon(1)?.ending ?? "?")) in round \(round)")
        }
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
    }

    @Test("clients that connect and never send are cut off; others are served meanwhile")
    func silentClients() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let silent = (0..<10).compactMap { _ in Self.connectControl(cluster.socket(1)) }
        defer { silent.forEach { close($0) } }
        #expect(silent.count == 10)
        let start = Date()
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
        #expect(Date().timeIntervalSince(start) < 2)
        // The daemon closes them after its client timeout: a read then sees end of file.
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(silent[0], SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 256)
        #expect(recv(silent[0], &buffer, buffer.count, 0) >= 0, "still open after 10 s")
    }

    @Test("control API edges (issue 21, item 15): a trickled request is cut off at the deadline, a body over 1 MiB is refused at once, events followers do not count against the clients cap")
    func controlEdges() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        func send(_ fd: Int32, _ text: [UInt8]) -> Bool {
            text.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == text.count
        }
        func reply(_ fd: Int32, within seconds: Int) -> String {
            var tv = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        }
        // A client that sends a byte every half second (the idle timeout alone would wait forever).
        let slow = try #require(Self.connectControl(cluster.socket(1)))
        defer { close(slow) }
        #expect(send(slow, Array("GET /v1/sandboxes HTTP/1.1\r\nHost: dnsd\r\nX-Slow: ".utf8)))
        let started = Date()
        var cut: Double?
        while cut == nil, Date().timeIntervalSince(started) < 12 {
            var probe: UInt8 = 0
            if recv(slow, &probe, 1, Int32(MSG_DONTWAIT)) == 0 || !send(slow, Array("a".utf8)) { cut = Date().timeIntervalSince(started) }
            usleep(500_000)
        }
        #expect(cut.map { $0 < 8 } == true, "a trickling client was cut off after \(cut.map { "\($0) s" } ?? "never")")
        // A body announced at 4 MiB: refused once past 1 MiB, without waiting for the rest.
        let big = try #require(Self.connectControl(cluster.socket(1)))
        defer { close(big) }
        _ = send(big, Array("POST /v1/sandboxes HTTP/1.1\r\nHost: dnsd\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n".utf8))
        _ = send(big, [UInt8](repeating: UInt8(ascii: "a"), count: (1 << 20) + 200_000))
        let refused = reply(big, within: 3)
        #expect(refused.hasPrefix("HTTP/1.1 413") && refused.contains("over 1048576 bytes"), "\(refused.prefix(200))")
        // 130 events followers: the daemon still takes requests; followers past their own cap get 503.
        let followers = (0..<130).compactMap { _ in Self.connectControl(cluster.socket(1)) }
        defer { followers.forEach { close($0) } }
        for fd in followers { _ = send(fd, Array("GET /v1/events HTTP/1.1\r\nHost: dnsd\r\n\r\n".utf8)) }
        let answers = followers.map { reply($0, within: 3) }
        let streaming = answers.filter { $0.hasPrefix("HTTP/1.1 200") }.count, refusedFollowers = answers.filter { $0.contains(" 503 ") }.count
        #expect(streaming == 128 && refusedFollowers == 2, "\(streaming) followers streaming, \(refusedFollowers) refused")
        let ps = try cluster.dnsd(1, ["ps"])
        #expect(ps.status == 0, "requests are served beside 128 followers: \(ps.stderr)")
        #expect(cluster.daemon(1)?.isRunning == true)
    }

    @Test("the daemon raises its open-file soft limit to the hard limit")
    func raisesFileLimit() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local", launcher: ["prlimit", "--nofile=1024:8192"])
        defer { cluster.close() }
        let pid = try #require(cluster.daemon(1)?.pid)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
        let fields = line.split(separator: " ").filter { !$0.isEmpty }
        #expect(fields.count >= 5 && fields[3] == "8192" && fields[4] == "8192", "\(line)")
    }

    @Test("out of file descriptors: the control socket backs off and serves again once some are free")
    func controlSurvivesEMFILE() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local", launcher: ["prlimit", "--nofile=96:96"])
        defer { cluster.close() }
        // Silent clients until the daemon can accept no more (each accepted one costs it a
        // descriptor until its client timeout).
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<200 {
            guard let fd = Self.connectControl(cluster.socket(1), nonBlocking: true) else { break }
            held.append(fd)
        }
        usleep(300_000)
        #expect(cluster.log(1).contains("cannot accept"), "the daemon never ran out of descriptors: \(held.count) clients held")
        held.forEach { close($0) }
        held.removeAll()
        // Once the silent ones time out, a client is served again.
        let ps = try Shell.run(["timeout", "20", "env", "DNSD_SOCK=\(cluster.socket(1))", ClusterHarness.dnsdBinary, "ps"])
        #expect(ps.status == 0, "\(ps.stderr)")
        #expect(cluster.daemon(1)?.isRunning == true)
    }

    @Test("SIGHUP does not stop the daemon")
    func hangup() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let daemon = try #require(cluster.daemon(1))
        kill(daemon.pid, SIGHUP)
        usleep(200_000)
        #expect(daemon.isRunning, "\(daemon.ending)")
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
    }

    @Test("SIGTERM during commands: each command finishes or rolls back; journal and namespaces agree after")
    func termDuringCommands() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.71.0/24", "tnet"]).status == 0)
        var completed = 0
        for round in 0..<12 {
            let name = cluster.name("t\(round)")
            let client = try ChildProcess(["env", "DNSD_SOCK=\(cluster.socket(1))", ClusterHarness.dnsdBinary, "run",
                                           "--name=\(name)", "--net=tnet", "--alias=a\(round)"],
                                          output: cluster.work + "/client-\(round).log")
            // The client takes ~20-40 ms to start and connect; the signal lands before, during or after its command.
            usleep(UInt32(15_000 + 3_000 * round))
            let daemon = try #require(cluster.daemon(1))
            kill(daemon.pid, SIGTERM)
            #expect(daemon.waitForExit(seconds: 10), "daemon did not stop")
            #expect(client.waitForExit(seconds: 10))
            let namespace = FileManager.default.fileExists(atPath: "/run/netns/\(name)")
            let journaled = FileManager.default.fileExists(atPath: cluster.stateDirectory(1) + "/sandboxes/\(name).json")
            #expect(namespace == journaled, "round \(round): namespace \(namespace), journal \(journaled)")
            let clientLog = (try? String(contentsOfFile: cluster.work + "/client-\(round).log", encoding: .utf8)) ?? ""
            #expect(!clientLog.contains("without an answer"), "round \(round): the client was left without a reply")
            if client.ending == "exit 0" {
                completed += 1
                #expect(namespace, "round \(round): run succeeded but its namespace is gone")
            }
            try cluster.restart(1)
            if namespace {
                #expect(try cluster.dnsd(1, ["ps"]).stdout.contains(name))
                #expect(try cluster.dnsd(1, ["stop", name]).status == 0)
            }
        }
        print("FIGURE SIGTERM during run: \(completed) of 12 runs completed, the others refused, none half-done")
    }
}

extension DaemonHardeningTests {
    @Test("--upstream-timeout bounds each forwarded try of the daemon's responder")
    func upstreamTimeout() throws {
        // A silent upstream on the host's loopback (after 127.0.0.1:9, which refuses at once).
        let cluster = try ClusterHarness(hosts: 1, store: "local", daemonOptions: ["--upstream", "127.0.0.1:5399", "--upstream-timeout", "300"])
        defer { cluster.close() }
        let silent = try ChildProcess(["nsenter", "--net=/run/netns/\(cluster.hosts[0].name)", "python3", "-c",
                                       "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',5399))\ntime.sleep(60)"])
        defer { silent.stop() }
        let s = cluster.name("s")
        #expect(try cluster.dnsd(1, ["run", "--name=\(s)"]).status == 0)
        usleep(200_000)
        let start = Date()
        let out = try cluster.exec(s, ["dig", "+time=5", "+tries=1", "outside.test", "@127.0.0.11"]).stdout
        let elapsed = Date().timeIntervalSince(start)
        #expect(out.contains("status: SERVFAIL"), "\(out)")
        #expect(elapsed < 1.0, "SERVFAIL after \(elapsed) s: the default 1.5 s timeout, not --upstream-timeout 300")
    }
}

extension DaemonHardeningTests {
    @Test("the peer-uid check alone refuses a non-root client (socket mode widened so it can connect)")
    func peerCredentials() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local", environment: ["DNSD_TEST_SOCKET_MODE=666"])
        defer { cluster.close() }
        let socket = cluster.socket(1)
        #expect((try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int) == 0o666)
        let asNobody = try Shell.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "env", "DNSD_SOCK=\(socket)", ClusterHarness.dnsdBinary, "network", "create", "--subnet=192.168.77.0/24", "pnet"])
        #expect(asNobody.status != 0 && asNobody.stderr == "Error: only root may control dnsd\n", "\(asNobody.stderr)")
        #expect(try cluster.dnsd(1, ["network", "ls"]).stdout.contains("pnet") == false)
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
    }
}
