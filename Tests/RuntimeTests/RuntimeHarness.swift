import ClusterHarness
import Foundation
import Synchronization
import TestSupport

/// Real container runtimes on a simulated cluster: podman (CNI backend) on each host, containerd
/// on demand, configured by scripts/runtimes.sh (the same functions the demo uses), all state
/// under the cluster's work directory. A runtime that cannot start throws, with its output: the
/// test fails and says why. `close()` removes the containers, images, mounts, runtime processes,
/// the CNI files it wrote and the machine-wide state the runtimes made, then the cluster.
final class RuntimeHarness {
    let cluster: ClusterHarness
    /// The dnsd network the containers join (unique to the run: ctr reads one global directory).
    let network: String
    let image = "localhost/dnsd-busybox:latest"
    private let library: String
    private var podmanHosts: [Int] = []
    private var containerdHosts: [Int] = []
    private var dockerHosts: [Int] = []
    private var ctrConfigured = false
    private let ctrContainers = Mutex<Set<String>>([])
    private let sharedRecord: String
    private let namespacesBefore: Set<String>
    private let netnsFilesBefore: Set<String>

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Where each host's dockerd keeps its state (`d1`, `d2`... appended): short, as podman's.
    private let dockerBase = "/tmp/dnsdt-\(TestRun.token)-\(UUID().uuidString.prefix(4).lowercased())"

    /// `docker`: each daemon also serves the Docker plugin socket in its host's dockerd plugin
    /// directory and reads that dockerd's API.
    /// `daemonOptions`: more flags for every host's daemon (e.g. a slow liveness check, so a test
    /// sees the runtime's own DEL or Leave do the work).
    /// `subnet6`: the network is dual-stack, with this IPv6 prefix beside 192.168.77.0/24.
    init(hosts: Int, docker: Bool = false, logLevel: String = "warning", daemonOptions: [String] = [], subnet6: String? = nil) throws {
        library = Self.repository + "/scripts/runtimes.sh"
        network = "v\(TestRun.token)"
        namespacesBefore = Set(Self.runtimeNamespaces())
        netnsFilesBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: "/etc/netns")) ?? [])
        let options = docker ? ["--docker-plugin", dockerBase + "d{n}/plugins/dnsd.sock", "--docker-api", dockerBase + "d{n}/docker.sock"] : []
        cluster = try ClusterHarness(hosts: hosts, logLevel: logLevel, daemonOptions: options + daemonOptions)
        sharedRecord = cluster.work + "/shared-missing"
        do {
            try script("rt_shared_begin", [sharedRecord])
            try FileManager.default.createDirectory(atPath: cluster.work + "/image", withIntermediateDirectories: true)
            try script("rt_image", [cluster.work + "/image"])
            let created = try cluster.dnsd(1, ["network", "create", "--subnet=192.168.77.0/24"] + (subnet6.map { ["--subnet=\($0)"] } ?? []) + [network])
            guard created.status == 0 else { throw ShellError(command: "network create", status: created.status, stderr: created.stderr) }
            for n in 1...hosts {
                try script("rt_podman_setup", [podmanDirectory(n), cluster.hosts[n - 1].name, cluster.socket(n), network, ClusterHarness.dnsdBinary])
                podmanHosts.append(n)
                try podmanChecked(n, ["load", "-q", "-i", cluster.work + "/image/image.tar"])
            }
        } catch {
            close()
            throw error
        }
    }

    /// Short: podman refuses a run root longer than 50 characters (its sockets live there).
    private func podmanDirectory(_ n: Int) -> String { "/tmp/dnsdt-\(TestRun.token)-\(cluster.prefix.suffix(2))p\(n)" }
    private func containerdDirectory(_ n: Int) -> String { cluster.work + "/containerd-h\(n)" }

    /// Runs a function of scripts/runtimes.sh (set-up functions stop at their first failure;
    /// the clean-up ones go on past each).
    @discardableResult
    func script(_ function: String, _ arguments: [String], timeout: Double = 120) throws -> String {
        let strict = function.hasSuffix("_clean") || function == "rt_shared_end" ? "" : "set -e; "
        return try Shell.check(["bash", "-c", strict + "source \"$0\"; \(function) \"$@\"", library] + arguments, timeout: timeout)
    }

    /// podman on host n.
    @discardableResult
    func podman(_ n: Int, _ arguments: [String], timeout: Double = 60) throws -> Shell.Result {
        try Shell.run(["bash", "-c", "source \"$0\"; rt_podman \"$@\"", library, podmanDirectory(n)] + arguments, timeout: timeout)
    }

    @discardableResult
    func podmanChecked(_ n: Int, _ arguments: [String]) throws -> String {
        let result = try podman(n, arguments)
        guard result.status == 0 else { throw ShellError(command: "podman " + arguments.joined(separator: " "), status: result.status, stderr: result.stderr) }
        return result.stdout
    }

    /// containerd on host n, and ctr's fixed CNI paths (/etc/cni/net.d, /opt/cni/bin) set up
    /// for the network through `dnsd cni install`, with the loopback plugin ctr also runs.
    func startContainerd(_ n: Int) throws {
        try script("rt_containerd_start", [containerdDirectory(n), cluster.hosts[n - 1].name])
        containerdHosts.append(n)
        if !ctrConfigured {
            // `dnsd cni install` links the loopback plugin ctr needs (issue 21): the test relies on it.
            let installed = try cluster.dnsd(n, ["cni", "install", network])
            guard installed.status == 0 else { throw ShellError(command: "dnsd cni install", status: installed.status, stderr: installed.stderr) }
            ctrConfigured = true
        }
        _ = try ctr(n, ["images", "import", cluster.work + "/image/image.tar"])
    }

    /// Short, as podman's: dockerd's exec root holds sockets too.
    func dockerDirectory(_ n: Int) -> String { dockerBase + "d\(n)" }

    /// dockerd 20.10 on host n, with its own plugin directory (`dockerDirectory(n)/plugins`, its
    /// /run/docker/plugins), and the image loaded.
    func startDockerd(_ n: Int) throws {
        dockerHosts.append(n)
        try script("rt_dockerd_start", [dockerDirectory(n), cluster.hosts[n - 1].name])
        let loaded = try docker(n, ["load", "-q", "-i", cluster.work + "/image/image.tar"])
        guard loaded.status == 0 else { throw ShellError(command: "docker load", status: loaded.status, stderr: loaded.stderr) }
    }

    /// Stops host n's dockerd (`signal` TERM: its containers stop with it; KILL: it dies without a
    /// word to its plugins) and starts it again on the same state.
    func restartDockerd(_ n: Int, signal: String = "TERM") throws {
        try stopDockerd(n, signal: signal)
        try script("rt_dockerd_start", [dockerDirectory(n), cluster.hosts[n - 1].name])
    }

    func stopDockerd(_ n: Int, signal: String = "TERM") throws { try script("rt_dockerd_stop", [dockerDirectory(n), signal]) }

    /// Starts host n's dockerd again after `stopDockerd`.
    func startDockerdAgain(_ n: Int) throws { try script("rt_dockerd_start", [dockerDirectory(n), cluster.hosts[n - 1].name]) }

    /// The docker 20.10 client of host n.
    @discardableResult
    func docker(_ n: Int, _ arguments: [String], timeout: Double = 60) throws -> Shell.Result {
        try Shell.run(["bash", "-c", "source \"$0\"; rt_docker \"$@\"", library, dockerDirectory(n)] + arguments, timeout: timeout)
    }

    /// ctr on host n (namespace "dnsd"), in the host's network namespace.
    @discardableResult
    func ctr(_ n: Int, _ arguments: [String], timeout: Double = 60) throws -> Shell.Result {
        // `ctr run [flags] IMAGE ID ...`: its id (libcni's cache keeps ctr's results: no DEL).
        if arguments.first == "run", let image = arguments.firstIndex(of: self.image), image + 1 < arguments.count {
            _ = ctrContainers.withLock { $0.insert(arguments[image + 1]) }
        }
        return try Shell.run(["bash", "-c", "source \"$0\"; rt_ctr \"$@\"", library, containerdDirectory(n)] + arguments, timeout: timeout)
    }

    /// The network namespaces runtimes name (podman's netns-UUID).
    static func runtimeNamespaces() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix("netns-") }
    }

    /// Ends the test: every podman and Docker container removed through its runtime (as a user
    /// would: the runtime calls dnsd), then what is left that dnsd or the runtime should have
    /// removed, checked before the harness's own cleanup deletes anything; then `close()`.
    /// Returns the leftovers (empty when all is well).
    func finish() -> [String] {
        for n in podmanHosts { _ = try? script("rt_podman_rm", [podmanDirectory(n)]) }
        for n in dockerHosts { _ = try? script("rt_docker_rm", [dockerDirectory(n)]) }
        let left = leftovers() + storeLeftovers()
        close()
        if FileManager.default.fileExists(atPath: "/etc/cni/net.d/10-dnsd-\(network).conflist") {
            return left + ["ctr conflist after dnsd cni uninstall"]
        }
        return left
    }

    /// What the runtimes and dnsd left of the removed containers: runtime namespaces, libcni's
    /// cached results of a DEL that failed (ctr's own tasks aside: ctr never calls DEL), hosts
    /// files dnsd wrote in /etc/netns. Files there count when named after this harness (every
    /// container the tests make is named so): other suites running beside make their own.
    func leftovers() -> [String] {
        var left = Set(Self.runtimeNamespaces()).subtracting(namespacesBefore).map { "namespace \($0)" }
        let results = (try? FileManager.default.contentsOfDirectory(atPath: "/var/lib/cni/results")) ?? []
        let ctrTasks = ctrContainers.withLock { $0 }
        left += results.filter { entry in entry.hasPrefix(network + "-") && !ctrTasks.contains { entry.contains("-\($0)-") } }
            .map { "CNI cache entry \($0)" }
        let netnsFiles = Set((try? FileManager.default.contentsOfDirectory(atPath: "/etc/netns")) ?? [])
        left += netnsFiles.subtracting(netnsFilesBefore).filter { $0.contains(cluster.prefix) }.map { "/etc/netns/\($0)" }
        return left
    }

    /// What the removed containers left in the cluster and on the hosts, once every container is
    /// gone (a DEL or a Leave that did nothing, or half): endpoint records, address claims, and
    /// Docker veths on the overlay bridges. ctr's tasks aside (ctr never calls DEL; the tests
    /// let the liveness check withdraw those). Waits up to 8 s for withdrawals under way.
    private func storeLeftovers() -> [String] {
        let ctrNames = ctrContainers.withLock { Set($0.map { "dnsd-" + $0 }) }
        func current() -> [String] {
            guard let endpoints = try? cluster.etcdList("dnsd/v1/endpoints/"), let claims = try? cluster.etcdList("dnsd/v1/ipam/") else {
                return ["the store could not be read"]
            }
            var left: [String] = []
            var ctrAddresses = Set<String>()
            for (key, value) in endpoints {
                let record = (try? JSONSerialization.jsonObject(with: Data(value))) as? [String: Any] ?? [:]
                if let name = record["name"] as? String, ctrNames.contains(name) {
                    ctrAddresses.insert(record["ipv4"] as? String ?? "")
                    if let ipv6 = record["ipv6"] as? String { ctrAddresses.insert(ipv6) }
                } else {
                    left.append("endpoint record \(key)")
                }
            }
            left += claims.keys.filter { !ctrAddresses.contains(String($0.split(separator: "/").last ?? "")) }.map { "address claim \($0)" }
            let namespaces = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
            for n in 1...cluster.hosts.count {
                for namespace in namespaces where namespace.hasPrefix(cluster.hostID(n) + "-ov-") {
                    let links = (try? Shell.run(["ip", "-n", namespace, "-o", "link", "show"]).stdout) ?? ""
                    left += links.split(separator: "\n").compactMap { line in
                        let name = line.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? ""
                        return name.hasPrefix("vd") ? "docker veth \(name.split(separator: "@").first ?? "") in \(namespace)" : nil
                    }
                }
            }
            return left.sorted()
        }
        let deadline = Date().addingTimeInterval(8)
        var left = current()
        while !left.isEmpty && Date() < deadline {
            usleep(200_000)
            left = current()
        }
        return left
    }

    func close() {
        for n in podmanHosts { _ = try? script("rt_podman_clean", [podmanDirectory(n)]) }
        for n in containerdHosts { _ = try? script("rt_containerd_clean", [containerdDirectory(n)]) }
        for n in dockerHosts { _ = try? script("rt_dockerd_clean", [dockerDirectory(n)]) }
        if ctrConfigured {
            _ = try? cluster.dnsd(1, ["cni", "uninstall", network])
        }
        _ = try? script("rt_shared_end", [sharedRecord, network])
        cluster.close()
    }
}
