import Addressing
@testable import ClusterState
import Foundation
import Logging
@testable import Store
import TestSupport
import Testing

/// Random mutation of what the store hands the daemon: record values (endpoints, networks),
/// etcd watch messages and Consul KV listings. Nothing may crash; a decoder returns nil (or
/// leaves the bad entry out) rather than a record dnsd would not have written.
/// `DNSD_STORE_FUZZ_ITERATIONS` sets the count (default 200k).
@Suite("Fuzz: store decoders", .timeLimit(.minutes(5)))
struct DecoderFuzzTests {
    static let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }

    static let endpoint = try! JSON.encode(EndpointState(id: "h1-c01", network: "vnet", name: "c01", aliases: ["db", "web"],
                                                         ipv4: "192.168.0.2", mac: "02:42:c0:a8:00:02", host: "h1", vtep: "198.18.0.1"))
    static let network = try! JSON.encode(NetworkRecord(name: "vnet", driver: .overlay, subnet: "192.168.0.0/24",
                                                        gateway: "192.168.0.1", vni: 4097, host: nil))
    /// The same as dual-stack records (issue 24): an IPv6 address, an IPv6 prefix and gateway.
    static let endpoint6 = try! JSON.encode(EndpointState(id: "h1-c01", network: "vnet", name: "c01", aliases: ["db"], ipv4: "192.168.0.2",
                                                          ipv6: "fd00:db8:1::2", mac: "02:42:c0:a8:00:02", host: "h1", vtep: "198.18.0.1"))
    static let network6 = try! JSON.encode(NetworkRecord(name: "vnet", driver: .overlay, subnet: "192.168.0.0/24", gateway: "192.168.0.1",
                                                         subnet6: "fd00:db8:1::/64", gateway6: "fd00:db8:1::1", vni: 4097, host: nil))

    /// Replacements that change a JSON value's type or size, or add structure nobody expects.
    static let splices: [String] = [
        "null", "true", "0", "-1", "4294967296", "1e308", "\"\"", "[]", "{}", "[[[[[[[[]]]]]]]]",
        "\"\\u0000\"", "\"\\ud800\"", "\"c01\\n1.2.3.4 evil\"", "\"999.1.1.1\"", "\"192.168.0.0/33\"",
        "\"fd00::/129\"", "\"fd00::1/64\"", "\"fe80::1%eth0\"", "\"::ffff:1.2.3.4\"", "\"fd00:db8:2::1\"", "\"10.0.0.0/8\"",
        "{\"unknown\":{\"deeper\":[1,2,3]}}", "\"" + String(repeating: "a", count: 70_000) + "\"",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ]

    // The test's own idea of valid, written from the RFCs and not from dnsd's validators (a
    // check through the product's own code could never disagree with it).

    /// RFC 1123 host label: letters, digits, hyphen, 1-63, no hyphen at either end.
    static func isLabel(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), bytes.first != 0x2D, bytes.last != 0x2D else { return false }
        return bytes.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D }
    }

    /// A dotted-quad IPv4 address, as inet_pton reads it.
    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    /// A CIDR whose host bits are zero.
    static func isSubnet(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let length = UInt32(parts[1]), length <= 32, parts[1].allSatisfy(\.isNumber) else { return false }
        var address = in_addr()
        guard inet_pton(AF_INET, String(parts[0]), &address) == 1 else { return false }
        let value = UInt32(bigEndian: address.s_addr)
        return length == 32 || value & (UInt32.max >> length) == 0
    }

    /// An IPv6 address, as inet_pton reads it.
    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// An IPv6 prefix whose host bits are zero, and whether `gateway` (if any) is inside it.
    static func isPrefix6(_ text: String, holding gateway: String?) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].allSatisfy(\.isNumber), let length = Int(parts[1]), length <= 128 else { return false }
        var raw = in6_addr()
        guard inet_pton(AF_INET6, String(parts[0]), &raw) == 1 else { return false }
        let network = withUnsafeBytes(of: raw) { Array($0) }
        func bit(_ bytes: [UInt8], _ i: Int) -> Bool { bytes[i / 8] & (0x80 >> UInt8(i % 8)) != 0 }
        guard (length..<128).allSatisfy({ !bit(network, $0) }) else { return false }
        guard let gateway else { return true }
        var g = in6_addr()
        guard inet_pton(AF_INET6, gateway, &g) == 1 else { return false }
        let gw = withUnsafeBytes(of: g) { Array($0) }
        return (0..<length).allSatisfy { bit(gw, $0) == bit(network, $0) }
    }

    static func mutate(_ seed: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var p = seed
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !p.isEmpty:
                p[Int.random(in: 0..<p.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !p.isEmpty:
                p.removeLast(Int.random(in: 0...min(p.count, 20), using: &rng))
            case 2 where !p.isEmpty:
                p[Int.random(in: 0..<p.count, using: &rng)] = Array("{}[]\":,\\0-e ".utf8).randomElement(using: &rng)!
            case 3:
                // A value (after a colon) replaced by another type or size.
                let colons = p.indices.filter { p[$0] == UInt8(ascii: ":") }
                guard let colon = colons.randomElement(using: &rng) else { continue }
                var end = colon + 1
                var depth = 0, inString = false
                while end < p.count {
                    let c = p[end]
                    if inString { if c == UInt8(ascii: "\"") { inString = false } } else if c == UInt8(ascii: "\"") { inString = true }
                    else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
                    else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") { if depth == 0 { break }; depth -= 1 }
                    else if c == UInt8(ascii: ","), depth == 0 { break }
                    end += 1
                }
                p.replaceSubrange((colon + 1)..<end, with: Array(splices.randomElement(using: &rng)!.utf8))
            case 4 where p.count > 2:
                // An unknown key added.
                p.insert(contentsOf: Array("\"extra\":[1,{\"a\":null}],".utf8), at: 1)
            default:
                p = Array(p.prefix(Int.random(in: 0...p.count, using: &rng))) + Array(splices.randomElement(using: &rng)!.utf8)
            }
        }
        return p
    }

    @Test("mutated endpoint and network values: never a crash; whatever decodes is a record dnsd could have written")
    func recordValues() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["DNSD_STORE_FUZZ_ITERATIONS"] ?? "") ?? 200_000
        var rng = SplitMix(state: 0x5EED)
        var accepted = 0, rejected = 0, accepted6 = 0, acceptedNetworks6 = 0
        for i in 0..<iterations {
            if i.isMultiple(of: 2) {
                let value = Self.mutate(i.isMultiple(of: 4) ? Self.endpoint6 : Self.endpoint, &rng)
                if let decoded = ClusterRegistry.decodeEndpoint(KeyValue(key: Keys.endpoints + "vnet/h1-c01", value: value, createRevision: 1, modRevision: 1), logger: Self.logger) {
                    accepted += 1
                    // Only what dnsd could have written: labels, an address, a VTEP, the key's ids.
                    // An IPv4 address, or none beside an IPv6 one (an IPv6-only network's endpoint).
                    #expect(Self.isLabel(decoded.name) && decoded.aliases.allSatisfy(Self.isLabel)
                            && (Self.isIPv4(decoded.ipv4) || (decoded.ipv4.isEmpty && decoded.ipv6 != nil))
                            && Self.isIPv4(decoded.vtep) && decoded.network == "vnet" && decoded.id == "h1-c01"
                            && (decoded.ipv6 == nil || Self.isIPv6(decoded.ipv6!)), "\(decoded)")
                    if decoded.ipv6 != nil { accepted6 += 1 }
                } else { rejected += 1 }
            } else {
                let value = Self.mutate(i % 4 == 1 ? Self.network6 : Self.network, &rng)
                if let decoded = ClusterRegistry.decodeNetwork(KeyValue(key: Keys.networks + "vnet", value: value, createRevision: 1, modRevision: 1), logger: Self.logger) {
                    accepted += 1
                    // An IPv4 subnet, or none on an IPv6-only overlay.
                    let ipv4 = Self.isSubnet(decoded.subnet) || (decoded.subnet.isEmpty && decoded.gateway.isEmpty && decoded.subnet6 != nil
                                                                 && decoded.driver == .overlay)
                    #expect(decoded.name == "vnet" && ipv4 && (decoded.gateway.isEmpty || Self.isIPv4(decoded.gateway))
                            && (decoded.driver == .bridge || (1..<(1 << 24)).contains(decoded.vni))
                            && (decoded.subnet6 == nil ? decoded.gateway6 == nil : Self.isPrefix6(decoded.subnet6!, holding: decoded.gateway6)
                                && decoded.gateway6.map(Self.isIPv6) ?? true), "\(decoded)")
                    if decoded.subnet6 != nil { acceptedNetworks6 += 1 }
                } else { rejected += 1 }
            }
        }
        print("FIGURE store decoder fuzz: \(iterations) mutated record values, \(accepted) still valid, \(rejected) skipped, no crash")
        #expect(rejected > 0 && accepted > 0 && accepted6 > 0 && acceptedNetworks6 > 0, "dual-stack records still decode")
        // The dual-stack seeds themselves round-trip whole.
        let endpoint = ClusterRegistry.decodeEndpoint(KeyValue(key: Keys.endpoints + "vnet/h1-c01", value: Self.endpoint6, createRevision: 1, modRevision: 1),
                                                      logger: Self.logger)
        #expect(endpoint?.ipv6 == "fd00:db8:1::2" && endpoint?.record?.ipv6.map(\.description) == ["fd00:db8:1::2"])
        let network = ClusterRegistry.decodeNetwork(KeyValue(key: Keys.networks + "vnet", value: Self.network6, createRevision: 1, modRevision: 1),
                                                    logger: Self.logger)
        #expect(network?.subnet6 == "fd00:db8:1::/64" && network?.gateway6 == "fd00:db8:1::1")
    }

    @Test("mutated etcd watch messages and Consul listings: never a crash; a bad entry is left out, the good ones kept")
    func wireMessages() throws {
        let iterations = (Int(ProcessInfo.processInfo.environment["DNSD_STORE_FUZZ_ITERATIONS"] ?? "") ?? 200_000) / 4
        var rng = SplitMix(state: 0xE7CD)
        let kv = "{\"key\":\"\(Data("dnsd/v1/endpoints/vnet/h1-c01".utf8).base64EncodedString())\",\"value\":\"\(Data(Self.endpoint).base64EncodedString())\",\"mod_revision\":\"7\",\"lease\":\"694d77aa\"}"
        let watch = Array("{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"kv\":\(kv)},{\"type\":\"DELETE\",\"kv\":\(kv)}]}}".utf8)
        let consul = Array("[{\"Key\":\"dnsd/v1/endpoints/vnet/h1-c01\",\"Value\":\"\(Data(Self.endpoint).base64EncodedString())\",\"ModifyIndex\":7,\"CreateIndex\":5,\"Session\":\"s-1\"},{\"Key\":\"dnsd/v1/names/c01\",\"Value\":null}]".utf8)
        var events = 0, entries = 0
        for i in 0..<iterations {
            if i.isMultiple(of: 2) {
                let message = Self.mutate(watch, &rng)
                guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else { continue }
                let decoded = EtcdStore.decodeEvents(object).events
                // Never more events than the message had, each with a key.
                #expect(decoded.count <= 2 && decoded.allSatisfy { !$0.entry.key.isEmpty })
                events += decoded.count
            } else {
                let decoded = (try? ConsulStore.entries(Data(Self.mutate(consul, &rng)), operation: "fuzz")) ?? []
                #expect(decoded.count <= 2 && decoded.allSatisfy { !$0.key.isEmpty })
                entries += decoded.count
            }
        }
        print("FIGURE store wire fuzz: \(iterations) mutated etcd/Consul messages, \(events) events and \(entries) entries still read, no crash")
        // Mutation leaves many messages readable: the decoders were exercised, not just refused.
        #expect(events > iterations / 20 && entries > iterations / 20, "\(events) events, \(entries) entries")
        // One bad event among good ones does not cost the good ones.
        let mixed = try JSONSerialization.jsonObject(with: Data("{\"result\":{\"events\":[{\"kv\":{\"value\":\"AA==\"}},{\"kv\":\(kv)}]}}".utf8)) as! [String: Any]
        #expect(EtcdStore.decodeEvents(mixed).events.count == 1)
        #expect(try ConsulStore.entries(Data("[{\"Value\":\"AA==\"},{\"Key\":\"k\"}]".utf8), operation: "t").map(\.key) == ["k"])
    }
}
