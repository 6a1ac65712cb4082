import Foundation
import Netns
import OverlayNet
import Synchronization
import TestSupport

/// Simulated hosts on an underlay, a real etcd on its own host (198.18.0.254), and one dnsd
/// daemon per host started with `nsenter --net` as a user would. `close()` stops everything and
/// removes every namespace, file and process it made, also after a failure.
final class ClusterHarness: @unchecked Sendable {
    private static let counter = Atomic<Int>(0)
    let prefix: String
    let thread: NamespaceThread
    let underlay: SimulatedUnderlay
    let work: String
    private(set) var daemons: [ChildProcess] = []
    private var daemonArguments: [[String]] = []
    private var etcd: ChildProcess?
    let etcdPort: UInt16 = 2379
    private(set) var hosts: [SimulatedUnderlay.Host] = []

    static var dnsdBinary: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/dnsd").path
    }

    init(hosts count: Int, store: String = "etcd", dnsMode: String = "dns") throws {
        prefix = "e\(getpid() % 10000)x\(Self.counter.add(1, ordering: .relaxed).newValue)"
        thread = try NamespaceThread(name: "e2e")
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dnsdt-e2e-\(prefix)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        underlay = try SimulatedUnderlay(prefix: "dnsdt-\(prefix)-", thread: thread)
        do {
            var storeURL = "local"
            if store == "consul" {
                let storeHost = try underlay.addHost(address: .init(198, 18, 0, 254))
                let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("StoreTests/consul_double.py").path
                etcd = try ChildProcess(["nsenter", "--net=/run/netns/\(storeHost.name)", "python3", script, "8500", "198.18.0.254"],
                                        output: work + "/consul.log")
                storeURL = "consul://198.18.0.254:8500"
                var up = false
                for _ in 0..<300 where !up {
                    up = (try? Shell.run(["nsenter", "--net=/run/netns/\(storeHost.name)", "curl", "-s", "-m", "1",
                                          "http://198.18.0.254:8500/v1/kv/probe"]))?.status == 0
                    if !up { usleep(20_000) }
                }
            }
            if store == "etcd" {
                let etcdHost = try underlay.addHost(address: .init(198, 18, 0, 254))
                etcd = try ChildProcess([
                    "nsenter", "--net=/run/netns/\(etcdHost.name)", "etcd", "--name", "e", "--data-dir", work + "/etcd",
                    "--listen-client-urls", "http://198.18.0.254:\(etcdPort)", "--advertise-client-urls", "http://198.18.0.254:\(etcdPort)",
                    "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                    "--initial-cluster", "e=http://127.0.0.1:2380", "--election-timeout", "200", "--heartbeat-interval", "20",
                    "--logger", "zap", "--log-level", "error",
                ], output: work + "/etcd.log")
                storeURL = "etcd://198.18.0.254:\(etcdPort)"
                var healthy = false
                for _ in 0..<300 where !healthy {
                    healthy = (try? Shell.run(["nsenter", "--net=/run/netns/\(etcdHost.name)", "curl", "-s", "-m", "1",
                                               "http://198.18.0.254:\(etcdPort)/health"]))?.stdout.contains("true") == true
                    if !healthy { usleep(20_000) }
                }
                guard healthy else { throw ShellError(command: "etcd", status: -1, stderr: "etcd did not become healthy") }
            }
            for n in 1...count {
                let host = try underlay.addHost(address: .init(198, 18, 0, UInt8(n)))
                hosts.append(host)
                let arguments = [
                    "nsenter", "--net=/run/netns/\(host.name)", Self.dnsdBinary, "daemon", "--store", storeURL,
                    "--host-id", "h\(n)\(prefix)", "--advertise", "198.18.0.\(n)", "--state-dir", work + "/state-h\(n)",
                    "--sock", socket(n), "--dns-mode", dnsMode, "--lease-ttl", "3", "--upstream", "127.0.0.1:9", "--log-level", "warning",
                ]
                daemonArguments.append(arguments)
                daemons.append(try ChildProcess(arguments, output: work + "/daemon-h\(n).log"))
            }
            for n in 1...count {
                var up = false
                for _ in 0..<300 where !up {
                    up = (try? dnsd(n, ["ps"]))?.status == 0
                    if !up { usleep(20_000) }
                }
                guard up else { throw ShellError(command: "dnsd daemon h\(n)", status: -1, stderr: log(n)) }
            }
        } catch {
            close()
            throw error
        }
    }

    func socket(_ n: Int) -> String { work + "/h\(n).sock" }

    /// Kills host n's daemon without warning (its lease then lapses).
    func kill(_ n: Int) {
        Glibc.kill(daemons[n - 1].pid, SIGKILL)
        daemons[n - 1].stop()
    }

    /// Starts host n's daemon again, same arguments; returns when it answers.
    func restart(_ n: Int) throws {
        daemons[n - 1] = try ChildProcess(daemonArguments[n - 1], output: work + "/daemon-h\(n).log")
        var up = false
        for _ in 0..<300 where !up {
            up = (try? dnsd(n, ["ps"]))?.status == 0
            if !up { usleep(20_000) }
        }
        guard up else { throw ShellError(command: "dnsd daemon h\(n) restart", status: -1, stderr: log(n)) }
    }
    func log(_ n: Int) -> String { (try? String(contentsOfFile: work + "/daemon-h\(n).log", encoding: .utf8)) ?? "" }

    /// Runs `dnsd ARGS` as a client of host n's daemon.
    @discardableResult
    func dnsd(_ n: Int, _ arguments: [String]) throws -> Shell.Result {
        try Shell.run(["env", "DNSD_SOCK=\(socket(n))", Self.dnsdBinary] + arguments)
    }

    /// A sandbox name unique to this harness.
    func name(_ base: String) -> String { "\(prefix)\(base)" }

    func exec(_ sandbox: String, _ command: [String]) throws -> Shell.Result {
        try Shell.run(["ip", "netns", "exec", sandbox] + command)
    }

    /// Polls `condition` for up to `seconds`.
    func eventually(_ seconds: Double = 3, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    func close() {
        for daemon in daemons { daemon.stop() }
        daemons.removeAll()
        etcd?.stop()
        etcd = nil
        let names = NamedNamespaces()
        for name in names.list() where name.hasPrefix(prefix) || name.contains(prefix) {
            try? names.delete(name)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/etc/netns")) ?? [] where entry.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(entry)")
        }
        underlay.remove()
        try? FileManager.default.removeItem(atPath: work)
        thread.shutdown()
    }
}
