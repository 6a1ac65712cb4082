import Addressing
@testable import ClusterState
import Foundation
import Logging
import Store
import Synchronization
import Testing

@Suite("Cluster registry: networks, names, addresses in the store", .timeLimit(.minutes(5)))
struct ClusterRegistryTests {
    static let vnet = try! HostLabel("vnet")

    func registry(_ store: any KeyValueStore) -> ClusterRegistry {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ClusterRegistry(store: store, logger: logger)
    }

    @Test("networks get unique VNIs; a duplicate network is refused; delete frees the VNI", arguments: [Backend.local, .etcd])
    func networks(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let r = registry(store)
            let a = try r.createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"), gateway: nil, host: nil)
            let b = try r.createNetwork(name: try HostLabel("net2"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.2.0/24"), gateway: nil, host: nil)
            #expect(a.vni != b.vni && a.gateway == "192.168.0.1")
            #expect(throws: ClusterError.networkExists("vnet")) {
                try r.createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "10.0.0.0/24"), gateway: nil, host: nil)
            }
            #expect(try r.networks().map(\.name) == ["net2", "vnet"])
            try r.deleteNetwork(Self.vnet)
            let c = try r.createNetwork(name: try HostLabel("net3"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.3.0/24"), gateway: nil, host: nil)
            #expect(c.vni == a.vni)
        }
    }

    @Test("a subnet overlapping another network or a reserved one is refused; bridge networks get numbers too", arguments: [Backend.local, .etcd])
    func overlaps(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let r = registry(store)
            let a = try r.createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "10.20.0.0/16"), gateway: nil, host: nil)
            for text in ["10.20.5.0/24", "10.0.0.0/8", "10.20.0.0/16"] {
                #expect(throws: ClusterError.subnetOverlaps(text, with: "network 'vnet' (10.20.0.0/16)")) {
                    try r.createNetwork(name: try HostLabel("other"), driver: .bridge, subnet: try IPv4Subnet(parsing: text), gateway: nil, host: "h1")
                }
            }
            let reserved = [(subnet: try IPv4Subnet(parsing: "172.17.0.0/16"), what: "the built-in bridge pool")]
            #expect(throws: ClusterError.subnetOverlaps("172.17.3.0/24", with: "the built-in bridge pool (172.17.0.0/16)")) {
                try r.createNetwork(name: try HostLabel("other"), driver: .bridge, subnet: try IPv4Subnet(parsing: "172.17.3.0/24"),
                                    gateway: nil, host: "h1", reserved: reserved)
            }
            #expect(try r.networks().map(\.name) == ["vnet"], "a refusal creates nothing")
            let b1 = try r.createNetwork(name: try HostLabel("frontend-a1"), driver: .bridge, subnet: try IPv4Subnet(parsing: "10.21.0.0/24"), gateway: nil, host: "h1")
            let b2 = try r.createNetwork(name: try HostLabel("frontend-a2"), driver: .bridge, subnet: try IPv4Subnet(parsing: "10.22.0.0/24"), gateway: nil, host: "h1")
            #expect(Set([a.vni, b1.vni, b2.vni]).count == 3 && b1.vni != 0)
        }
    }

    @Test("network removal is atomic: an address claimed between its check and its commit makes it refuse", arguments: [Backend.local, .etcd, .consul])
    func atomicRemoval(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let r = registry(store)
            let network = try r.createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "10.30.0.0/24"), gateway: nil, host: nil)
            // h2 claims an address (and so rewrites the claims marker) just before the commit.
            let rival = RivalStore(store, key: Keys.claimsMarker(Self.vnet), rivalValue: Array("h2".utf8),
                                   alsoWrites: [(Keys.address(Self.vnet, IPAddress("10.30.0.9")!), Array("h2".utf8))])
            #expect(throws: ClusterError.addressesInUse("vnet", count: 1)) { try registry(rival).deleteNetwork(Self.vnet) }
            #expect(try store.get(Keys.network(Self.vnet)) != nil && store.get(Keys.vni(network.vni)) != nil)
            // An address claimed on a network removed after it was read is refused.
            try store.delete(Keys.address(Self.vnet, IPAddress("10.30.0.9")!))
            let read = try r.network(Self.vnet)
            try r.deleteNetwork(Self.vnet)
            #expect(try store.get(Keys.network(Self.vnet)) == nil && store.get(Keys.vni(network.vni)) == nil)
            #expect(throws: ClusterError.networkChanged("vnet")) { try r.allocateAddress(on: read, family: .v4, host: "h1", lease: nil) }
            #expect(try store.list(prefix: Keys.ipam("vnet")).entries.isEmpty)
        }
    }

    @Test("a name is unique in the cluster: a second host is refused with a clear line", arguments: [Backend.local, .etcd, .consul])
    func names(backend: Backend) throws {
        try withStore(backend) { store, another in
            try registry(store).claimName(try HostLabel("c01"), host: "h1", lease: nil)
            #expect(throws: ClusterError.nameTaken("c01", host: "h1")) {
                try registry(another()).claimName(try HostLabel("c01"), host: "h2", lease: nil)
            }
            #expect("\(ClusterError.nameTaken("c01", host: "h1"))" == "name 'c01' is already used in the cluster (on host h1)")
        }
    }

    @Test("holding a name or address again never overwrites a claim another host made after the read", arguments: [Backend.local, .etcd, .consul])
    func holdRace(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let name = try HostLabel("c01")
            let nameKey = "dnsd/v1/names/c01"
            let rivalClaim = Array(#"{"host":"h2","name":"c01"}"#.utf8)
            // Absent when read (h1's lease lapsed), claimed by h2 before h1's write: refused.
            #expect(throws: ClusterError.nameTaken("c01", host: "h2")) {
                try registry(RivalStore(store, key: nameKey, rivalValue: rivalClaim)).holdName(name, host: "h1", lease: nil)
            }
            #expect(try store.get(nameKey)?.value == rivalClaim)
            // h1's own claim when read, taken over by h2 before h1's write: refused, h2 keeps it.
            try store.put(nameKey, Array(#"{"host":"h1","name":"c01"}"#.utf8), lease: nil)
            #expect(throws: ClusterError.nameTaken("c01", host: "h2")) {
                try registry(RivalStore(store, key: nameKey, rivalValue: rivalClaim)).holdName(name, host: "h1", lease: nil)
            }
            // Releasing h1's claim after h2 took it over: h2's stays.
            try store.put(nameKey, Array(#"{"host":"h1","name":"c01"}"#.utf8), lease: nil)
            try registry(RivalStore(store, key: nameKey, rivalValue: rivalClaim)).releaseName(name, heldBy: "h1")
            #expect(try store.get(nameKey)?.value == rivalClaim)
            // The same for an address.
            let address = IPAddress("192.168.0.7")!
            let addressKey = "dnsd/v1/ipam/vnet/192.168.0.7"
            #expect(throws: ClusterError.addressTaken("192.168.0.7")) {
                try registry(RivalStore(store, key: addressKey, rivalValue: Array("h2".utf8))).holdAddress(address, on: Self.vnet, host: "h1", lease: nil)
            }
            #expect(try store.get(addressKey)?.text == "h2")
            try store.put(addressKey, Array("h1".utf8), lease: nil)
            try registry(RivalStore(store, key: addressKey, rivalValue: Array("h2".utf8))).releaseAddress(address, on: Self.vnet, heldBy: "h1")
            #expect(try store.get(addressKey)?.text == "h2")
            // Without a rival: held when absent or ours, released when ours.
            try store.delete(nameKey)
            try registry(store).holdName(name, host: "h1", lease: nil)
            try registry(store).holdName(name, host: "h1", lease: nil)
            #expect(try store.get(nameKey)?.text.contains("h1") == true)
            try registry(store).releaseName(name, heldBy: "h1")
            #expect(try store.get(nameKey) == nil)
        }
    }

    @Test("republish: names and addresses held and endpoints published in batched commits; another host's claims refused, a rival's late claim kept", arguments: [Backend.local, .etcd, .consul])
    func republishBatched(backend: Backend) throws {
        try withStore(backend) { store, _ in
            func endpoint(_ i: Int) -> EndpointState {
                EndpointState(id: "h1-s\(i)", network: "vnet", name: "s\(i)", aliases: [], ipv4: "192.168.0.\(i + 2)",
                              mac: "02:42:c0:a8:00:\(String(i + 2, radix: 16))", host: "h1", vtep: "198.18.0.1")
            }
            let sandboxes = try (0..<40).map { Republication(name: try HostLabel("s\($0)"), endpoints: [endpoint($0)]) }
            // s1 is already h1's (its old lease), s2's name is h2's, s3's address is h2's, s5's name is claimed
            // by h2 between the listing and the commit.
            try store.put("dnsd/v1/names/s1", Array(#"{"host":"h1","name":"s1"}"#.utf8), lease: nil)
            try store.put("dnsd/v1/ipam/vnet/192.168.0.3", Array("h1".utf8), lease: nil)
            try store.put("dnsd/v1/names/s2", Array(#"{"host":"h2","name":"s2"}"#.utf8), lease: nil)
            try store.put("dnsd/v1/ipam/vnet/192.168.0.5", Array("h2".utf8), lease: nil)
            let rival = RivalStore(store, key: "dnsd/v1/names/s5", rivalValue: Array(#"{"host":"h2","name":"s5"}"#.utf8))
            let lease = try store.grantLease(ttl: 10)
            let refused = try registry(rival).republish(sandboxes, host: "h1", lease: lease)
            #expect(refused == [try HostLabel("s2"): .nameTaken("s2", host: "h2"), try HostLabel("s3"): .addressTaken("192.168.0.5"),
                                try HostLabel("s5"): .nameTaken("s5", host: "h2")])
            let published = try registry(store).endpoints().endpoints.map(\.id)
            #expect(Set(published) == Set((0..<40).filter { ![2, 3, 5].contains($0) }.map { "h1-s\($0)" }))
            for i in (0..<40) where ![2, 3, 5].contains(i) {
                #expect(try store.get("dnsd/v1/names/s\(i)")?.text.contains("\"h1\"") == true, "s\(i) held")
                #expect(try store.get("dnsd/v1/ipam/vnet/192.168.0.\(i + 2)")?.text == "h1")
            }
            #expect(try store.get("dnsd/v1/names/s5")?.text.contains("h2") == true, "the rival's claim stays")
            #expect(try store.get("dnsd/v1/names/s2")?.text.contains("h2") == true)
            // All of it under the new lease.
            try store.revoke(lease)
            for _ in 0..<100 where try store.get("dnsd/v1/names/s0") != nil { usleep(20_000) }
            #expect(try store.get("dnsd/v1/names/s0") == nil && store.get("dnsd/v1/names/s1") == nil)
            #expect(try registry(store).endpoints().endpoints.isEmpty)
        }
    }

    @Test("republish: one name given by two endpoints (a container on two networks) is one claim, both endpoints published", arguments: [Backend.local, .etcd, .consul])
    func republishSharedName(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let name = try HostLabel("dual")
            let onA = EndpointState(id: "h1-da", network: "neta", name: "dual", aliases: [], ipv4: "192.168.1.2", mac: "02:42:c0:a8:01:02",
                                    host: "h1", vtep: "198.18.0.1", runtime: "docker")
            let onB = EndpointState(id: "h1-db", network: "netb", name: "dual", aliases: [], ipv4: "192.168.2.2", mac: "02:42:c0:a8:02:02",
                                    host: "h1", vtep: "198.18.0.1", runtime: "docker")
            let lease = try store.grantLease(ttl: 10)
            let refused = try registry(store).republish([Republication(name: name, endpoints: [onA]), Republication(name: name, endpoints: [onB])],
                                                        host: "h1", lease: lease)
            #expect(refused.isEmpty, "\(refused)")
            #expect(Set(try registry(store).endpoints().endpoints.map(\.id)) == ["h1-da", "h1-db"])
            #expect(try store.get("dnsd/v1/names/dual")?.text.contains("\"h1\"") == true)
            try store.revoke(lease)
        }
    }

    @Test("two hosts racing to allocate 50 addresses each on one network get 100 distinct ones, of either family",
          arguments: [Backend.local, .etcd], [IPFamily.v4, .v6])
    func addressRace(backend: Backend, family: IPFamily) throws {
        try withStore(backend) { store, another in
            let network = try registry(store).createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"),
                                                            gateway: nil, subnet6: try IPSubnet(parsing: "fd00:db8:7::/120"), host: nil)
            #expect(network.subnet6 == "fd00:db8:7::/120" && network.gateway6 == "fd00:db8:7::1")
            let got = Mutex<[IPAddress]>([])
            let errors = Mutex(0)
            let registries = [registry(store), registry(another())]
            DispatchQueue.concurrentPerform(iterations: 2) { host in
                let r = registries[host]
                for _ in 0..<50 {
                    do {
                        let address = try r.allocateAddress(on: network, family: family, host: "h\(host)", lease: nil)
                        got.withLock { $0.append(address) }
                    } catch { errors.withLock { $0 += 1 } }
                }
            }
            let addresses = got.withLock { $0 }
            #expect(errors.withLock { $0 } == 0)
            #expect(addresses.count == 100 && Set(addresses).count == 100 && addresses.allSatisfy { $0.family == family })
            let gateway = family == .v4 ? IPAddress("192.168.0.1")! : IPAddress("fd00:db8:7::1")!
            #expect(!addresses.contains(gateway))
            // Explicit addresses: taken, foreign, of the other family and reserved ones are refused.
            let r = registry(store)
            func ask(_ text: String) throws -> IPAddress {
                try r.allocateAddress(on: network, family: family, requested: IPAddress(text)!, host: "h", lease: nil)
            }
            #expect(throws: ClusterError.addressTaken(addresses[0].description)) {
                try r.allocateAddress(on: network, family: family, requested: addresses[0], host: "h", lease: nil)
            }
            #expect(throws: ClusterError.self) { try ask(family == .v4 ? "10.0.0.1" : "fd00:db8:8::5") }
            #expect(throws: ClusterError.addressReserved(gateway.description)) { try ask(gateway.description) }
            #expect(throws: ClusterError.addressReserved(family == .v4 ? "192.168.0.255" : "fd00:db8:7::")) {
                try ask(family == .v4 ? "192.168.0.255" : "fd00:db8:7::")
            }
            let wanted = family == .v4 ? "192.168.0.200" : "fd00:db8:7::c8"
            #expect(try ask(wanted) == IPAddress(wanted)!)
            #expect(try store.get(Keys.ipam("vnet") + wanted)?.text == "h", "one key per address, in its canonical text")
        }
    }

    @Test("an attach's one transaction claims both families: a rival's IPv6 claim just before the commit fails it whole", arguments: [Backend.local, .etcd])
    func dualStackClaimContended(backend: Backend) throws {
        try withStore(backend) { store, _ in
            let network = try registry(store).createNetwork(name: Self.vnet, driver: .overlay, subnet: try IPv4Subnet(parsing: "10.40.0.0/24"),
                                                            gateway: nil, subnet6: try IPSubnet(parsing: "fd00:40::/64"), host: nil)
            let endpoint = EndpointState(id: "h1-c05", network: "vnet", name: "c05", aliases: [], ipv4: "10.40.0.5", ipv6: "fd00:40::5",
                                         mac: "02:42:0a:28:00:05", host: "h1", vtep: "198.18.0.1")
            let claim = ClusterRegistry.AttachmentClaim(name: try HostLabel("c05"), network: network, endpoint: endpoint)
            #expect(claim.addresses.map(\.description) == ["10.40.0.5", "fd00:40::5"])
            let v6Key = Keys.ipam("vnet") + "fd00:40::5"
            let rival = RivalStore(store, key: v6Key, rivalValue: Array("h2".utf8))
            #expect(try registry(rival).claim(claim, host: "h1", lease: nil) == [IPAddress("fd00:40::5")!],
                    "the IPv6 address was taken, and only it: the caller picks again around it")
            #expect(try store.get(v6Key)?.text == "h2", "the rival's claim stands")
            for key in [Keys.ipam("vnet") + "10.40.0.5", Keys.name(try HostLabel("c05")), Keys.endpoint(Self.vnet, "h1-c05")] {
                #expect(try store.get(key) == nil, "nothing of the failed commit was written: \(key)")
            }
            // With the rival gone, the same claim commits both families at once, and a release
            // takes both back.
            #expect(try store.delete(v6Key))
            #expect(try registry(store).claim(claim, host: "h1", lease: nil).isEmpty)
            #expect(try store.list(prefix: Keys.ipam("vnet")).entries.map(\.key).sorted() == [Keys.ipam("vnet") + "10.40.0.5", v6Key])
            try registry(store).release(name: try HostLabel("c05"), endpoints: [endpoint], host: "h1", lease: nil)
            #expect(try store.list(prefix: Keys.ipam("vnet")).entries.isEmpty && store.get(Keys.name(try HostLabel("c05"))) == nil)
        }
    }

    @Test("an IPv6-only network: addresses from the prefix's first 2^32 around its gateway, a gateway past them refused")
    func ipv6OnlyNetworks() throws {
        try withStore(.local) { store, _ in
            let r = registry(store)
            let network = try r.createNetwork(name: try HostLabel("only6"), driver: .overlay, subnet: nil, gateway: nil,
                                              subnet6: try IPSubnet(parsing: "fd00:6::/64"), gateway6: IPAddress("fd00:6::5"), host: nil)
            #expect(network.isIPv6Only && network.subnet == "" && network.gateway == "" && network.subnets == "fd00:6::/64")
            #expect(try r.network(try HostLabel("only6")) == network, "reads back")
            let family = try #require(try network.family6)
            #expect(family.lowHostsOnly && family.hostRange == IPAddress("fd00:6::1")!.value...IPAddress("fd00:6::ffff:ffff")!.value)
            #expect(Array(ClusterRegistry.candidates(in: family).prefix(5)).map(\.description)
                    == ["fd00:6::1", "fd00:6::2", "fd00:6::3", "fd00:6::4", "fd00:6::6"], "the gateway skipped")
            #expect(throws: ClusterError.beyondLowHosts("fd00:6::1:0:0", network: "only6")) {
                try ClusterRegistry.validate(IPAddress("fd00:6::1:0:0")!, on: network)
            }
            #expect(throws: ClusterError.noFamily("only6", .v4)) { try ClusterRegistry.validate(IPAddress("10.0.0.1")!, on: network) }
            #expect(throws: ClusterError.beyondLowHosts("fd00:7::1:0:1", network: "far")) {
                try r.createNetwork(name: try HostLabel("far"), driver: .overlay, subnet: nil, gateway: nil,
                                    subnet6: try IPSubnet(parsing: "fd00:7::/64"), gateway6: IPAddress("fd00:7::1:0:1"), host: nil)
            }
            #expect(throws: ClusterError.noSubnet("none")) {
                try r.createNetwork(name: try HostLabel("none"), driver: .overlay, subnet: nil, gateway: nil, host: nil)
            }
            // A /120 is all "low": its 255 host addresses.
            let small = NetworkRecord.Family(subnet: try IPSubnet(parsing: "fd00:8::/120"), gateway: IPAddress("fd00:8::1"), lowHostsOnly: true)
            #expect(small.hostRange?.count == 255)
            // A hand-written IPv6-only bridge network, or one without any subnet, does not read.
            try expectUnreadable(store, r, [
                "b6": #"{"driver":"bridge","gateway":"","name":"b6","subnet":"","subnet6":"fd00:9::/64","gateway6":"fd00:9::1","vni":4300}"#,
                "nil": #"{"driver":"overlay","gateway":"","name":"nil","subnet":"","vni":4301}"#,
            ])
        }
    }

    /// Writes each hand-made network record (name -> JSON) and expects it not to read.
    private func expectUnreadable(_ store: any KeyValueStore, _ r: ClusterRegistry, _ records: [String: String]) throws {
        for (name, json) in records.sorted(by: { $0.key < $1.key }) {
            try store.put(Keys.networks + name, Array(json.utf8), lease: nil)
            #expect(throws: ClusterError.noSuchNetwork(name)) { try r.network(try HostLabel(name)) }
        }
    }

    @Test("a dual-stack network: its IPv6 prefix may overlap no other network's, and reads back from the store")
    func dualStackNetworks() throws {
        try withStore(.local) { store, _ in
            let r = registry(store)
            let a = try r.createNetwork(name: try HostLabel("neta"), driver: .overlay, subnet: try IPv4Subnet(parsing: "10.1.0.0/24"), gateway: nil,
                                        subnet6: try IPSubnet(parsing: "fd00:1::/64"), gateway6: IPAddress("fd00:1::fe"), host: nil)
            #expect(try r.network(try HostLabel("neta")) == a && a.gateway6 == "fd00:1::fe")
            #expect(try a.families.map(\.subnet.description) == ["10.1.0.0/24", "fd00:1::/64"])
            #expect(throws: ClusterError.subnetOverlaps("fd00:1:0:0:8000::/65", with: "network 'neta' (fd00:1::/64)")) {
                try r.createNetwork(name: try HostLabel("netb"), driver: .overlay, subnet: try IPv4Subnet(parsing: "10.2.0.0/24"), gateway: nil,
                                    subnet6: try IPSubnet(parsing: "fd00:1:0:0:8000::/65"), host: nil)
            }
            #expect(throws: ClusterError.addressOutside("fd00:2::1", subnet: "fd00:1::/64")) {
                try r.createNetwork(name: try HostLabel("netc"), driver: .overlay, subnet: try IPv4Subnet(parsing: "10.3.0.0/24"), gateway: nil,
                                    subnet6: try IPSubnet(parsing: "fd00:1::/64"), gateway6: IPAddress("fd00:2::1"), host: nil)
            }
            #expect(try store.get(Keys.network(try HostLabel("netb"))) == nil && store.get(Keys.network(try HostLabel("netc"))) == nil)
            // A record written before dual-stack (no IPv6 keys) reads as IPv4 only; an IPv6
            // gateway outside its prefix, or a prefix that is not IPv6, is unreadable.
            try store.put(Keys.networks + "old", Array(#"{"driver":"overlay","gateway":"10.9.0.1","name":"old","subnet":"10.9.0.0/24","vni":4200}"#.utf8))
            #expect(try r.network(try HostLabel("old")).subnet6 == nil)
            try expectUnreadable(store, r, [
                "bad6": #"{"driver":"overlay","gateway":"10.8.0.1","name":"bad6","subnet":"10.8.0.0/24","subnet6":"fd00:8::/64","gateway6":"fd00:9::1","vni":4201}"#,
                "bad4": #"{"driver":"overlay","gateway":"10.7.0.1","name":"bad4","subnet":"10.7.0.0/24","subnet6":"10.6.0.0/24","vni":4202}"#,
            ])
        }
    }

    @Test("corrupt, wrong-typed, huge or inconsistent endpoint values are skipped; the rest still read")
    func corruptValues() throws {
        try withStore(.local) { store, _ in
            let r = registry(store)
            let good = EndpointState(id: "e1", network: "vnet", name: "c01", aliases: ["db"], ipv4: "192.168.0.2",
                                     mac: "02:42:c0:a8:00:02", host: "h1", vtep: "198.18.0.1")
            try r.publish(good, lease: nil)
            try store.put(Keys.endpoints + "vnet/bad1", Array("{not json".utf8))
            try store.put(Keys.endpoints + "vnet/bad2", Array(#"{"id":5,"network":[]}"#.utf8))
            try store.put(Keys.endpoints + "vnet/bad3", [UInt8](repeating: 0x20, count: 100_000) + Array("{}".utf8))
            var injected = good
            injected.id = "bad4"
            injected.name = "c02\n1.2.3.4 evil"
            try store.put(Keys.endpoints + "vnet/bad4", try JSON.encode(injected))
            var misfiled = good
            misfiled.id = "elsewhere"
            try store.put(Keys.endpoints + "vnet/bad5", try JSON.encode(misfiled))
            #expect(try r.endpoints().endpoints == [good])
        }
    }
}
