import Addressing
import Foundation
import Logging
import Netns
import OverlayNet

/// `dnsd-bench attach COUNT SCALE`: on three simulated hosts, COUNT sandboxes attached to an
/// overlay on h1, each announced as a peer on h2 and h3, with dnsd's library and with the same
/// steps as `ip`/`bridge` commands, interleaved one by one. Then SCALE sandboxes on one host
/// across four networks: time, kernel memory, full teardown.
enum AttachBenchmark {
    /// What one round measured.
    struct Round {
        var ratio: Double
        var growth: Double
        var dnsdP50: Double, dnsdP99: Double, ipP50: Double
        var ipGrowth: Double
        var kernelGrowth: Double
        /// How much more dnsd's attach grew (last 50 p50 - first 50 p50) than the kernel's request alone.
        var ownGrowth: Double
    }

    /// ROUNDS rounds (each on fresh simulated hosts, the kernel given time to finish tearing the
    /// last one down), medians across them, then the scale run.
    static func run(count: Int, scale: Int, rounds: Int) throws {
        var results: [Round] = []
        for round in 1...rounds {
            waitForQuietKernel()
            print("== round \(round) of \(rounds)")
            results.append(try runRound(count: count, scale: round == rounds ? scale : 0, tag: "r\(round)"))
        }
        guard rounds > 1 else { return }
        func median(_ values: [Double]) -> Double { percentile(values, 0.5) }
        print("== \(rounds) rounds")
        print("round  dnsd-p50  dnsd-p99  ip-p50   ratio  dnsd-growth  ip-growth  kernel-veth-growth")
        for (i, r) in results.enumerated() {
            print(String(format: "%-5d  %8.2f  %8.2f  %6.2f  %6.1fx  %10.2fx  %8.2fx  %17.2fx", i + 1, r.dnsdP50 * 1000, r.dnsdP99 * 1000, r.ipP50 * 1000, r.ratio, r.growth, r.ipGrowth, r.kernelGrowth))
        }
        let ratio = median(results.map(\.ratio)), growth = median(results.map(\.growth))
        print(String(format: "median of %d rounds: dnsd %.1fx faster than ip (bar >= 15x): %@; dnsd growth first 50 -> last 50 %.2fx (bar: none, < 1.10x): %@; ip growth %.2fx",
                     rounds, ratio, ratio >= 15 ? "PASS" : "FAIL", growth, growth < 1.10 ? "PASS" : "FAIL", median(results.map(\.ipGrowth))))
        print(String(format: "the kernel's own growth for dnsd's veth request (one netlink call, raw, on a bridge of its own), median of %d rounds: %.2fx; dnsd's growth beyond it: %+.2f ms (%+.0f%% of dnsd's p50)",
                     rounds, median(results.map(\.kernelGrowth)), median(results.map(\.ownGrowth)) * 1000,
                     median(results.map { $0.ownGrowth / $0.dnsdP50 }) * 100))
    }

    static func runRound(count: Int, scale: Int, tag: String) throws -> Round {
        let thread = try NamespaceThread(name: "bench")
        let prefix = "dnsdb-\(getpid())\(tag)-"
        let namespaces = NamedNamespaces()
        let underlay = try SimulatedUnderlay(prefix: prefix, thread: thread)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        defer {
            for name in namespaces.list() where name.hasPrefix(prefix) { try? namespaces.delete(name) }
            underlay.remove()
            thread.shutdown()
        }
        var drivers: [OverlayDriver] = []
        for _ in 0..<3 {
            let host = try underlay.addHost()
            drivers.append(try OverlayDriver(host: .init(id: host.name, advertise: host.address, namespace: host.namespace),
                                             thread: thread, logger: logger))
        }
        let vnet = try HostLabel("vnet")
        let spec = OverlaySpec(name: vnet, subnet: try IPv4Subnet(parsing: "192.168.0.0/16"), gateway: IPv4Address(192, 168, 0, 1), vni: 4097)
        // The ip baseline gets an identical network of its own, so each bridge only carries its
        // own side's ports (a bridge port add costs O(ports) in the kernel).
        let ipnet = try HostLabel("ipnet")
        let ipSpec = OverlaySpec(name: ipnet, subnet: try IPv4Subnet(parsing: "192.168.0.0/16"), gateway: IPv4Address(192, 168, 0, 1), vni: 4098)
        for driver in drivers {
            try driver.createNetwork(spec)
            try driver.createNetwork(ipSpec)
        }
        // As the daemon does: a few namespaces kept warm (DNSD_BENCH_WARM, default 4; 0: none).
        let warm = Int(ProcessInfo.processInfo.environment["DNSD_BENCH_WARM"] ?? "") ?? 4
        let factory = try SandboxFactory(namespaces: namespaces, thread: thread, warmNamespaces: warm)
        defer { factory.shutdown() }
        let overlay = drivers.map { $0.overlayNamespaceName(ipnet) }
        // The kernel alone: after each dnsd attach, the same veth request (peer into a fresh
        // namespace, MTU, MAC, master, up) as one raw netlink call on a third identical bridge,
        // so its port count and state grow exactly as dnsd's do. What dnsd's attach grows by
        // beyond this is dnsd's own.
        let knet = try HostLabel("knet")
        try drivers[0].createNetwork(OverlaySpec(name: knet, subnet: try IPv4Subnet(parsing: "192.168.0.0/16"), gateway: IPv4Address(192, 168, 0, 1), vni: 4099))
        let kernelSocket = try NetlinkSocket.open(in: try NamespaceHandle(path: namespaces.path(drivers[0].overlayNamespaceName(knet))), using: thread)
        let kernelBridge = try kernelSocket.linkIndex("br0")
        var kernelNamespaces: [NamespaceHandle] = []
        var kernelTimes: [Double] = []
        let vtep1 = underlay.hosts[0].address

        var dnsdTimes: [Double] = [], ipTimes: [Double] = []
        var phases: [[Double]] = [[], [], []]
        var sandboxes: [(Sandbox, AttachedEndpoint)?] = []
        for i in 0..<count {
            // dnsd's library: namespace, veth into it, address, up, peers on h2 and h3.
            let address = IPv4Address(192, 168, UInt8(1 + i / 250), UInt8(2 + i % 250))
            var start = now()
            let sandbox = try factory.create(prefix + "d\(i)")
            let created = now()
            let endpoint = try drivers[0].attach(sandbox, to: vnet, address: IPAddress(address))
            let attached = now()
            try drivers[1].addPeer([IPAddress(address)], vtep: vtep1, on: vnet)
            try drivers[2].addPeer([IPAddress(address)], vtep: vtep1, on: vnet)
            dnsdTimes.append(now() - start)
            phases[0].append(created - start)
            phases[1].append(attached - created)
            phases[2].append(now() - attached)
            sandboxes.append((sandbox, endpoint))

            let (target, _) = try namespaces.createAnonymous(on: thread) { try NetworkSysctl.set("ipv6/conf/default/disable_ipv6", "1") }
            kernelNamespaces.append(target)
            let veth = LinkSpec(name: "vk" + String(address.value, radix: 16),
                                kind: .veth(peer: VethPeer(name: "eth0", namespaceFD: target.fd, mtu: 1450, mac: MACAddress(derivedFrom: address))),
                                mtu: 1450, master: kernelBridge, up: true)
            start = now()
            try kernelSocket.createLink(veth)
            kernelTimes.append(now() - start)
            // Untimed: its other end up too, so this bridge's ports are forwarding like dnsd's.
            let inside = try NetlinkSocket.open(in: target, using: thread)
            try inside.setLink(try inside.linkIndex("eth0"), up: true)

            // The same with iproute2, one process per step (DNSD_BENCH_NO_BASELINE=1 skips it, to see
            // dnsd's growth without the baseline's namespaces).
            if ProcessInfo.processInfo.environment["DNSD_BENCH_NO_BASELINE"] == "1" {
                ipTimes.append(0)
                continue
            }
            // A control: the baseline's time spent idle instead (DNSD_BENCH_IDLE_MS).
            if let idle = Double(ProcessInfo.processInfo.environment["DNSD_BENCH_IDLE_MS"] ?? "") {
                usleep(UInt32(idle * 1000))
                ipTimes.append(0)
                continue
            }
            let ipAddress = IPv4Address(192, 168, UInt8(1 + i / 250), UInt8(2 + i % 250))
            let mac = MACAddress(derivedFrom: ipAddress).description
            let name = prefix + "i\(i)"
            let port = "vi" + String(ipAddress.value, radix: 16)
            start = now()
            var failed = 0
            var untimed = 0.0
            for command in [
                ["ip", "netns", "add", name],
                // dnsd's sandboxes get no IPv6 on their new links (IPv4 networks; Docker does the
                // same). Without this step each ip sandbox's DAD, MLD and router solicitations
                // are flooded by the bridge to every port for seconds after, in softirq work that
                // grows with the port count and lands in whatever runs next, dnsd's steps
                // included. Its time is taken out of ip's figure (a step dnsd does, ip not charged).
                ["ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"],
                ["ip", "-n", overlay[0], "link", "add", port, "mtu", "1450", "master", "br0", "up", "type", "veth",
                 "peer", "name", "eth0", "netns", name, "mtu", "1450", "address", mac],
                ["ip", "-n", name, "addr", "add", "\(ipAddress)/16", "dev", "eth0"],
                ["ip", "-n", name, "link", "set", "eth0", "up"],
                ["ip", "-n", name, "link", "set", "lo", "up"],
                ["ip", "-n", overlay[1], "neigh", "replace", "\(ipAddress)", "lladdr", mac, "dev", "vxlan0", "nud", "permanent"],
                ["bridge", "-n", overlay[1], "fdb", "replace", mac, "dev", "vxlan0", "dst", "\(vtep1)", "self", "permanent"],
                ["ip", "-n", overlay[2], "neigh", "replace", "\(ipAddress)", "lladdr", mac, "dev", "vxlan0", "nud", "permanent"],
                ["bridge", "-n", overlay[2], "fdb", "replace", mac, "dev", "vxlan0", "dst", "\(vtep1)", "self", "permanent"],
            ] {
                let began = now()
                if spawnAndWait(command) != 0 { failed += 1 }
                if command.contains("sysctl") { untimed += now() - began }
            }
            ipTimes.append(now() - start - untimed)
            if failed > 0 { print("ip baseline: \(failed) commands failed for sandbox \(i)") }
        }
        // Both really work: the last dnsd sandbox reaches the gateway.
        let check = spawnAndWait(["ip", "netns", "exec", prefix + "d\(count - 1)", "busybox", "ping", "-c", "1", "-W", "1", "192.168.0.1"])

        // Teardown, timed the same way.
        var dnsdDown: [Double] = [], ipDown: [Double] = []
        for i in sandboxes.indices {
            var start = now()
            let (sandbox, endpoint) = sandboxes[i]!
            try drivers[1].removePeer([endpoint.address], vtep: vtep1, on: vnet)
            try drivers[2].removePeer([endpoint.address], vtep: vtep1, on: vnet)
            try factory.delete(sandbox)
            sandboxes[i] = nil  // the last reference: the kernel tears the namespace down
            dnsdDown.append(now() - start)
            if ProcessInfo.processInfo.environment["DNSD_BENCH_NO_BASELINE"] == "1" { continue }
            let ipAddress = IPv4Address(192, 168, UInt8(1 + i / 250), UInt8(2 + i % 250))
            let mac = MACAddress(derivedFrom: ipAddress).description
            start = now()
            for command in [
                ["ip", "netns", "del", prefix + "i\(i)"],
                ["ip", "-n", overlay[1], "neigh", "del", "\(ipAddress)", "dev", "vxlan0"],
                ["bridge", "-n", overlay[1], "fdb", "del", mac, "dev", "vxlan0", "dst", "\(vtep1)", "self"],
                ["ip", "-n", overlay[2], "neigh", "del", "\(ipAddress)", "dev", "vxlan0"],
                ["bridge", "-n", overlay[2], "fdb", "del", mac, "dev", "vxlan0", "dst", "\(vtep1)", "self"],
            ] { _ = spawnAndWait(command) }
            ipDown.append(now() - start)
        }

        func ms(_ v: Double) -> String { String(format: "%.2f", v * 1000) }
        let first = Array(dnsdTimes.prefix(50)), last = Array(dnsdTimes.suffix(50))
        print("attach: \(count) sandboxes on h1 of 3 simulated hosts, each a peer on h2 and h3; the ip baseline, interleaved, builds the same on an identical network")
        print("                      p50 ms    p99 ms")
        print("dnsd library        \(ms(percentile(dnsdTimes, 0.5)).leftPad(8))  \(ms(percentile(dnsdTimes, 0.99)).leftPad(8))")
        print("ip/bridge commands  \(ms(percentile(ipTimes, 0.5)).leftPad(8))  \(ms(percentile(ipTimes, 0.99)).leftPad(8))")
        let ratio = percentile(ipTimes, 0.5) / percentile(dnsdTimes, 0.5)
        for (label, range) in [("first 50", 0..<50), ("last 50", (count - 50)..<count)] {
            print("dnsd phases p50 ms, \(label): namespace \(ms(percentile(Array(phases[0][range]), 0.5))), veth+address+up \(ms(percentile(Array(phases[1][range]), 0.5))), peers on 2 hosts \(ms(percentile(Array(phases[2][range]), 0.5)))")
        }
        print(String(format: "dnsd is %.1fx faster at the median (bar: >= 15x): %@", ratio, ratio >= 15 ? "PASS" : "FAIL"))
        let growth = percentile(last, 0.5) / percentile(first, 0.5)
        print(String(format: "dnsd first 50 p50 %@ ms, last 50 p50 %@ ms: growth %.2fx (bar: none, < 1.10x): %@", ms(percentile(first, 0.5)), ms(percentile(last, 0.5)), growth, growth < 1.10 ? "PASS" : "FAIL"))
        let ipFirst = Array(ipTimes.prefix(50)), ipLast = Array(ipTimes.suffix(50))
        print("ip first 50 p50 \(ms(percentile(ipFirst, 0.5))) ms, last 50 p50 \(ms(percentile(ipLast, 0.5))) ms (+\(ms(percentile(ipLast, 0.5) - percentile(ipFirst, 0.5))) ms; dnsd +\(ms(percentile(last, 0.5) - percentile(first, 0.5))) ms)")
        let kernelFirst = percentile(Array(kernelTimes.prefix(50)), 0.5), kernelLast = percentile(Array(kernelTimes.suffix(50)), 0.5)
        print("the same veth request alone (kernel): first 50 p50 \(ms(kernelFirst)) ms, last 50 p50 \(ms(kernelLast)) ms: growth \(String(format: "%.2fx", kernelLast / kernelFirst)) (+\(ms(kernelLast - kernelFirst)) ms)")
        kernelNamespaces.removeAll()  // the last references: these namespaces and their veths go
        print("teardown p50: dnsd \(ms(percentile(dnsdDown, 0.5))) ms, ip \(ms(percentile(ipDown, 0.5))) ms; the last dnsd sandbox pinged its gateway: \(check == 0 ? "yes" : "NO")")

        if scale > 0 { try runScale(scale, prefix: prefix, factory: factory, driver: drivers[0]) }
        return Round(ratio: ratio, growth: growth, dnsdP50: percentile(dnsdTimes, 0.5), dnsdP99: percentile(dnsdTimes, 0.99),
                     ipP50: percentile(ipTimes, 0.5), ipGrowth: percentile(ipLast, 0.5) / max(percentile(ipFirst, 0.5), 1e-9),
                     kernelGrowth: kernelLast / kernelFirst,
                     ownGrowth: (percentile(last, 0.5) - percentile(first, 0.5)) - (kernelLast - kernelFirst))
    }

    /// SCALE sandboxes on one host over four networks (a Linux bridge takes at most 1023 ports).
    static func runScale(_ scale: Int, prefix: String, factory: SandboxFactory, driver: OverlayDriver) throws {
        let networks = try (0..<4).map { n in
            OverlaySpec(name: try HostLabel("scale\(n)"), subnet: try IPv4Subnet(parsing: "10.\(200 + n).0.0/16"),
                        gateway: IPv4Address(10, UInt8(200 + n), 0, 1), vni: UInt32(5000 + n))
        }
        for spec in networks { try driver.createNetwork(spec) }
        let before = kernelMemoryKiB()
        var made: [Sandbox] = []
        let start = now()
        for i in 0..<scale {
            let spec = networks[i % 4]
            let sandbox = try factory.create(prefix + "s\(i)")
            _ = try driver.attach(sandbox, to: spec.name, address: IPAddress(IPv4Address(spec.subnet!.network.value + UInt32(2 + i / 4))))
            made.append(sandbox)
        }
        let took = now() - start
        let after = kernelMemoryKiB()
        let teardownStart = now()
        for sandbox in made { try factory.delete(sandbox) }
        for spec in networks { try driver.deleteNetwork(spec.name) }
        let teardown = now() - teardownStart
        let left = NamedNamespaces().list().filter { $0.hasPrefix(prefix + "s") || $0.contains("-ov-scale") }.count
        print(String(format: "scale: %d sandboxes on one host across 4 networks in %.2f s (%.2f ms each); kernel memory +%d MiB (%.0f KiB each); teardown %.2f s; namespaces left: %d",
                     scale, took, took * 1000 / Double(scale), (after - before) / 1024, Double(after - before) / Double(scale), teardown, left))
    }

    /// Waits (up to 30 s) until the kernel has finished tearing down namespaces deleted earlier
    /// (the last round's, or another program's): their teardown runs in kernel workers and,
    /// running beside a round, slows namespace creation by a third or more.
    static func waitForQuietKernel() {
        func liveNamespaces() -> Int {
            let text = (try? String(contentsOfFile: "/proc/slabinfo", encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("net_namespace ") }
            return line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
        }
        var last = liveNamespaces(), steady = 0
        let deadline = now() + 30
        while steady < 3, now() < deadline {
            Thread.sleep(forTimeInterval: 0.5)
            let current = liveNamespaces()
            steady = current >= last ? steady + 1 : 0
            last = current
        }
    }

    /// Slab + page tables + kernel stacks + per-cpu, from /proc/meminfo, in KiB.
    static func kernelMemoryKiB() -> Int {
        let text = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        var total = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2 else { continue }
            if ["Slab:", "PageTables:", "KernelStack:", "Percpu:"].contains(String(parts[0])) { total += Int(parts[1]) ?? 0 }
        }
        return total
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
