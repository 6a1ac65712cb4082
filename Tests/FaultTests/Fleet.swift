import ClusterHarness
import Foundation
import Synchronization
import TestSupport

/// Sandboxes spread over a cluster's hosts on one overlay network, with the addresses their
/// `dnsd run` reported: what the fault tests break and then check.
struct Fleet {
    struct Member: Hashable {
        var name: String
        var host: Int
        var address: String
    }

    let cluster: ClusterHarness
    let network: String
    var members: [Member] = []

    /// Creates `network` (overlay, `subnet`) and runs `count` sandboxes round-robin over
    /// `onHosts` (default: every host), from `clients` client threads at once.
    init(_ cluster: ClusterHarness, network: String, subnet: String, count: Int, base: String = "s",
         onHosts: [Int]? = nil, clients: Int = 3) throws {
        self.cluster = cluster
        self.network = network
        let created = try cluster.dnsd(1, ["network", "create", "--subnet=\(subnet)", network])
        guard created.status == 0 else { throw ShellError(command: "network create", status: created.status, stderr: created.stderr) }
        let hosts = onHosts ?? Array(1...cluster.hosts.count)
        let started = Mutex<[Member]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            for i in stride(from: client, to: count, by: clients) {
                let name = cluster.name("\(base)\(i)"), host = hosts[i % hosts.count]
                do {
                    let address = try Self.run(cluster, host: host, name: name, network: network)
                    started.withLock { $0.append(Member(name: name, host: host, address: address)) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        let failed = failures.withLock { $0 }
        guard failed.isEmpty else { throw ShellError(command: "dnsd run", status: 1, stderr: failed.prefix(3).joined(separator: "; ")) }
        members = started.withLock { $0 }.sorted { $0.name < $1.name }
    }

    /// `dnsd run --name NAME --net NETWORK` on `host`; the address it got on `network`.
    static func run(_ cluster: ClusterHarness, host: Int, name: String, network: String) throws -> String {
        let result = try cluster.dnsd(host, ["run", "--name=\(name)", "--net=\(network)"])
        guard result.status == 0, let address = address(in: result.stdout, network: network) else {
            throw ShellError(command: "dnsd run \(name) on h\(host)", status: result.status, stderr: result.stderr)
        }
        return address
    }

    /// The address in `dnsd run`/`ps` output (`NET:eth0=IP`).
    static func address(in output: String, network: String) -> String? {
        output.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("\(network):eth") }
            .flatMap { $0.split(separator: "=").last.map(String.init) }
    }

    func on(_ host: Int) -> [Member] { members.filter { $0.host == host } }

    /// Waits until every member resolves by DNS to its address from a sandbox on each host
    /// (`witness`), and every witness's hosts file lists every member; false after `seconds`.
    func converged(within seconds: Double, witnesses: [String]) throws -> Bool {
        let expected = Dictionary(uniqueKeysWithValues: members.map { ($0.name, Optional($0.address)) })
        return try cluster.eventually(seconds) { try witnessesAgree(cluster, witnesses, network: network, expected: expected) }
    }

    /// One witness sandbox per host that has members: the first member on each.
    var witnesses: [String] { (1...cluster.hosts.count).compactMap { on($0).first?.name } }

    /// Whether none of `gone` resolves by DNS or appears in the hosts file of any of `witnesses`.
    func vanished(_ gone: [Member], from witnesses: [String]) throws -> Bool {
        try witnessesAgree(cluster, witnesses, network: network,
                           expected: Dictionary(uniqueKeysWithValues: gone.map { ($0.name, String?.none) }))
    }
}

/// Whether each witness sandbox sees exactly `expected` on `network`: a name with an address
/// answers it by DNS (`name.network`) and has it in the witness's hosts file; a name with nil
/// gets NXDOMAIN and has no line. (A witness's own name is not checked from itself.)
func witnessesAgree(_ cluster: ClusterHarness, _ witnesses: [String], network: String, expected: [String: String?]) throws -> Bool {
    for witness in witnesses {
        let probe = try DNSProbe(sandbox: witness, thread: cluster.thread)
        defer { probe.close() }
        let names = cluster.hostsNames(witness)
        for (name, address) in expected where name != witness {
            guard names["\(name).\(network)"] == address,
                  probe.lookup("\(name).\(network)", timeoutMilliseconds: 500) == (address.map { .addresses([$0]) } ?? .rcode(3))
            else { return false }
        }
    }
    return true
}

/// Median and percentiles of a sample.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

/// One figure line, easy to find in `make test` output.
func figure(_ text: String) { print("FIGURE \(text)") }
