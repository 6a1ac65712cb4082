import Foundation
import Netns
import OverlayNet
import Synchronization
import TestSupport

/// Simulated hosts on an underlay, a real etcd (or the Consul double) on its own host
/// (198.18.0.254), and one dnsd daemon per host started with `nsenter --net` as a user would.
/// `close()` stops everything and removes every namespace, file and process it made, also after
/// a failure.
public final class ClusterHarness: @unchecked Sendable {
    private static let counter = Atomic<Int>(0)
    public let prefix: String
    public let thread: NamespaceThread
    public let underlay: SimulatedUnderlay
    public let work: String
    public let store: String
    public private(set) var daemons: [ChildProcess?] = []
    private var daemonArguments: [[String]] = []
    /// One process per store member (one, except for "etcd-cluster": three).
    private var storeProcesses: [ChildProcess] = []
    private var storeCommands: [[String]] = []
    /// Each member's namespace and address (`storeHost` is the first).
    public private(set) var storeMembers: [(host: SimulatedUnderlay.Host, address: String)] = []
    public let etcdPort: UInt16 = 2379
    public private(set) var hosts: [SimulatedUnderlay.Host] = []
    /// The namespace the store listens in (198.18.0.254).
    public private(set) var storeHost: SimulatedUnderlay.Host?

    public static var dnsdBinary: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/dnsd").path
    }

    /// `hosts` daemons on `store` ("etcd", "etcd-cluster": three members at 198.18.0.251-253,
    /// "consul" or "local"), in `dnsMode`; `logLevel` is the
    /// daemons' `--log-level` (their logs are `work/daemon-hN.log`).
    /// `launcher` goes before each daemon's command line (e.g. `prlimit --nofile=...`; it must
    /// exec the daemon, so the process stays the same); `environment` is added to theirs;
    /// `{n}` in `daemonOptions` is each host's number.
    public init(hosts count: Int, store: String = "etcd", dnsMode: String = "dns", logLevel: String = "warning",
                launcher: [String] = [], environment: [String] = [], daemonOptions: [String] = []) throws {
        prefix = "e\(TestRun.token)x\(Self.counter.add(1, ordering: .relaxed).newValue)"
        self.store = store
        thread = try NamespaceThread(name: "e2e")
        work = TestRun.temporaryPath("e2e-\(prefix)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        underlay = try SimulatedUnderlay(prefix: "dnsdt-\(prefix)-", thread: thread)
        do {
            var storeURL = "local"
            if store == "etcd-cluster" {
                let addresses = (1...3).map { "198.18.0.\(250 + $0)" }
                let cluster = addresses.enumerated().map { "m\($0.offset + 1)=http://\($0.element):2380" }.joined(separator: ",")
                for (i, address) in addresses.enumerated() {
                    let host = try underlay.addHost(address: .init(198, 18, 0, UInt8(251 + i)))
                    storeMembers.append((host, address))
                    storeCommands.append([
                        "nsenter", "--net=/run/netns/\(host.name)", "etcd", "--name", "m\(i + 1)", "--data-dir", work + "/etcd-m\(i + 1)",
                        "--listen-client-urls", "http://\(address):\(etcdPort)", "--advertise-client-urls", "http://\(address):\(etcdPort)",
                        "--listen-peer-urls", "http://\(address):2380", "--initial-advertise-peer-urls", "http://\(address):2380",
                        "--initial-cluster", cluster, "--initial-cluster-state", "new", "--election-timeout", "500", "--heartbeat-interval", "50",
                        "--logger", "zap", "--log-level", "error",
                    ])
                }
                storeHost = storeMembers[0].host
                storeURL = "etcd://" + addresses.map { "\($0):\(etcdPort)" }.joined(separator: ",")
                try startStore()
            } else if store != "local" {
                let host = try underlay.addHost(address: .init(198, 18, 0, 254))
                storeHost = host
                storeMembers = [(host, "198.18.0.254")]
                if store == "consul" {
                    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                        .appendingPathComponent("StoreTests/consul_double.py").path
                    storeCommands = [["nsenter", "--net=/run/netns/\(host.name)", "python3", script, "8500", "198.18.0.254"]]
                    storeURL = "consul://198.18.0.254:8500"
                } else {
                    storeCommands = [[
                        "nsenter", "--net=/run/netns/\(host.name)", "etcd", "--name", "e", "--data-dir", work + "/etcd",
                        "--listen-client-urls", "http://198.18.0.254:\(etcdPort)", "--advertise-client-urls", "http://198.18.0.254:\(etcdPort)",
                        "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                        "--initial-cluster", "e=http://127.0.0.1:2380", "--election-timeout", "200", "--heartbeat-interval", "20",
                        "--logger", "zap", "--log-level", "error",
                    ]]
                    storeURL = "etcd://198.18.0.254:\(etcdPort)"
                }
                try startStore()
            }
            for n in 1...count {
                let host = try underlay.addHost(address: .init(198, 18, 0, UInt8(n)))
                hosts.append(host)
                let prefix = environment.isEmpty ? launcher : ["env"] + environment + launcher
                daemonArguments.append(prefix + [
                    "nsenter", "--net=/run/netns/\(host.name)", Self.dnsdBinary, "daemon", "--store", storeURL,
                    "--host-id", hostID(n), "--advertise", "198.18.0.\(n)", "--state-dir", work + "/state-h\(n)",
                    "--sock", socket(n), "--dns-mode", dnsMode, "--lease-ttl", "3", "--upstream", "127.0.0.1:9", "--log-level", logLevel,
                ] + daemonOptions.map { $0.replacingOccurrences(of: "{n}", with: "\(n)") })
                daemons.append(try ChildProcess(daemonArguments[n - 1], output: logPath(n)))
            }
            for n in 1...count { try waitForDaemon(n) }
        } catch {
            close()
            throw error
        }
    }

    public func socket(_ n: Int) -> String { work + "/h\(n).sock" }
    public func hostID(_ n: Int) -> String { "h\(n)\(prefix)" }
    private func logPath(_ n: Int) -> String { work + "/daemon-h\(n).log" }

    // MARK: the store

    /// Starts the store (again, on the same data) and returns when every member answers.
    public func startStore() throws {
        guard storeProcesses.isEmpty, !storeCommands.isEmpty else { return }
        for (i, command) in storeCommands.enumerated() {
            storeProcesses.append(try ChildProcess(command, output: work + "/store-\(i + 1).log"))
        }
        for (host, address) in storeMembers {
            let probe = store == "consul" ? "http://\(address):8500/v1/kv/probe" : "http://\(address):\(etcdPort)/health"
            var up = false
            for _ in 0..<500 where !up {
                let reply = try? Shell.run(["nsenter", "--net=/run/netns/\(host.name)", "curl", "-s", "-m", "1", probe])
                up = store == "consul" ? reply?.status == 0 : reply?.stdout.contains("true") == true
                if !up { usleep(20_000) }
            }
            guard up else { throw ShellError(command: store, status: -1, stderr: "store member \(address) did not come up") }
        }
    }

    /// Stops the store (SIGTERM, waits for it to exit); its data stays for `startStore()`.
    public func stopStore() {
        for process in storeProcesses { process.stop() }
        storeProcesses.removeAll()
    }

    /// POSTs a JSON body to etcd's gateway from the store's namespace (for values written by hand).
    @discardableResult
    public func etcd(_ path: String, _ body: [String: Any]) throws -> [String: Any] {
        guard let (storeHost, address) = storeMembers.first else { throw ShellError(command: "etcd", status: -1, stderr: "no store host") }
        let data = try JSONSerialization.data(withJSONObject: body)
        let file = work + "/etcd-body.json"
        try data.write(to: URL(fileURLWithPath: file))
        let reply = try Shell.check(["nsenter", "--net=/run/netns/\(storeHost.name)", "curl", "-s", "-m", "5", "-X", "POST",
                                     "--data-binary", "@\(file)", "http://\(address):\(etcdPort)\(path)"])
        return (try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any]) ?? [:]
    }

    /// Writes `value` (raw bytes, not necessarily JSON) at `key` in etcd.
    public func etcdPut(_ key: String, _ value: [UInt8]) throws {
        try etcd("/v3/kv/put", ["key": Data(key.utf8).base64EncodedString(), "value": Data(value).base64EncodedString()])
    }

    /// The keys under `prefix` in etcd, with their values.
    public func etcdList(_ prefix: String) throws -> [String: [UInt8]] {
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1
        let reply = try etcd("/v3/kv/range", ["key": Data(prefix.utf8).base64EncodedString(), "range_end": Data(end).base64EncodedString()])
        var result: [String: [UInt8]] = [:]
        for kv in (reply["kvs"] as? [[String: Any]]) ?? [] {
            guard let key = (kv["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
            result[String(decoding: key, as: UTF8.self)] = Array((kv["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data())
        }
        return result
    }

    // MARK: daemons

    private func waitForDaemon(_ n: Int) throws {
        var up = false
        for _ in 0..<500 where !up {
            up = (try? dnsd(n, ["ps"]))?.status == 0
            if !up { usleep(20_000) }
        }
        guard up else { throw ShellError(command: "dnsd daemon h\(n)", status: -1, stderr: log(n)) }
    }

    /// Host n's daemon process (nil once killed).
    public func daemon(_ n: Int) -> ChildProcess? { daemons[n - 1] }

    /// The daemon's state directory on host n.
    public func stateDirectory(_ n: Int) -> String { work + "/state-h\(n)" }

    /// Kills host n's daemon without warning (its lease then lapses).
    public func kill(_ n: Int) {
        guard let daemon = daemons[n - 1] else { return }
        Glibc.kill(daemon.pid, SIGKILL)
        daemon.stop()
        daemons[n - 1] = nil
    }

    /// Starts host n's daemon again, same arguments; returns when its control socket answers.
    public func restart(_ n: Int) throws {
        try startDaemon(n)
        try waitForDaemon(n)
    }

    /// Starts host n's daemon again without waiting.
    public func startDaemon(_ n: Int) throws {
        daemons[n - 1] = try ChildProcess(daemonArguments[n - 1], output: logPath(n))
    }

    public func log(_ n: Int) -> String { (try? String(contentsOfFile: logPath(n), encoding: .utf8)) ?? "" }

    /// Runs `dnsd ARGS` as a client of host n's daemon.
    @discardableResult
    public func dnsd(_ n: Int, _ arguments: [String]) throws -> Shell.Result {
        try Shell.run(["env", "DNSD_SOCK=\(socket(n))", Self.dnsdBinary] + arguments)
    }

    /// A sandbox name unique to this harness.
    public func name(_ base: String) -> String { "\(prefix)\(base)" }

    public func exec(_ sandbox: String, _ command: [String]) throws -> Shell.Result {
        try Shell.run(["ip", "netns", "exec", sandbox] + command)
    }

    /// The hosts file `ip netns exec` shows sandbox `name`.
    public func hostsFile(_ sandbox: String) -> String {
        (try? String(contentsOfFile: "/etc/netns/\(sandbox)/hosts", encoding: .utf8)) ?? ""
    }

    /// The names the hosts file of `sandbox` maps to an address (comment lines left out; dnsd
    /// turns a departed peer's line into a comment in place rather than moving later lines).
    public func hostsNames(_ sandbox: String) -> [String: String] {
        var names: [String: String] = [:]
        for line in hostsFile(sandbox).split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let address = fields.first else { continue }
            for name in fields.dropFirst() { names[String(name)] = String(address) }
        }
        return names
    }

    /// Polls `condition` for up to `seconds`.
    public func eventually(_ seconds: Double = 3, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    /// The named namespaces this harness made (sandboxes, hosts, hidden overlay namespaces).
    public func namespaces() -> [String] {
        NamedNamespaces().list().filter { $0.contains(prefix) }.sorted()
    }

    /// Kills host n's daemon and deletes its namespace and every namespace of that host
    /// (`sandboxes`, its hidden overlay namespaces): the machine is gone.
    public func removeHost(_ n: Int, sandboxes: [String]) {
        kill(n)
        let names = NamedNamespaces()
        for name in sandboxes + names.list().filter({ $0.hasPrefix(hostID(n) + "-") }) {
            try? names.delete(name)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
        }
        try? names.delete(hosts[n - 1].name)
    }

    public func close() {
        for daemon in daemons { daemon?.stop() }
        daemons.removeAll()
        stopStore()
        let names = NamedNamespaces()
        for name in names.list() where name.contains(prefix) {
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
