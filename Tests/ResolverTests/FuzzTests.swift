import Addressing
import Foundation
@testable import Resolver
import TestSupport
import Testing

/// Deterministic random-mutation fuzzing of the query path: seeds built by ldns, mutated by
/// bit flips, byte writes, cuts, insertions and splices. Every packet must be answered, dropped
/// or forwarded without a crash; every reply dnsd writes must decode with ldns and carry the
/// query's ID; and where the header alone decides what must happen (RFC 1035: too short or a
/// response: silence; an opcode other than QUERY: NOTIMP; not exactly one question: FORMERR;
/// a readable query: never silence), that is what happened. On a crash the seed and the
/// input's index are printed (a signal handler), so `DNSD_FUZZ_SEED` and the index replay it.
/// `DNSD_FUZZ_ITERATIONS` sets the count (default 1M, `make fuzz` runs 5M optimised, and the
/// corpus once more under AddressSanitizer). The records answered from are the fixture's,
/// dual stack: the seeds reach AAAA, NODATA across families and ip6.arpa inside and outside
/// the networks' IPv6 prefixes. A second test fuzzes the record sets themselves.
@Suite("Fuzz: query path", .timeLimit(.minutes(5)))
struct FuzzTests {
    static func corpus() throws -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        for (name, type) in [("c01.vnet", UInt16(1)), ("web", 28), ("many.vnet", 1), ("nosuch.vnet", 16),
                             ("3.0.168.192.in-addr.arpa", 12), ("outside.test", 1), ("c04.net2", 255),
                             ("3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", 12),
                             ("v6only.vnet", 1), ("six", 28), ("c02.vnet", 255),
                             (DualStackTests.reverseName("fd00::77"), 12), (DualStackTests.reverseName("fd00:2::2", uppercase: true), 12),
                             (DualStackTests.reverseName("2001:db8::1"), 12)] {
            seeds.append(try LDNSQuery.make(name, type: type, id: UInt16(seeds.count)))
            seeds.append(try LDNSQuery.make(name, type: type, id: UInt16(seeds.count), udpSize: 1232))
        }
        // A query with a compression pointer in an additional record, and an empty one.
        seeds.append([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0x61, 0, 0, 1, 0, 1, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])
        seeds.append([0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        return seeds
    }

    static func mutate(_ seed: [UInt8], _ other: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var p = seed
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !p.isEmpty:
                p[Int.random(in: 0..<p.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !p.isEmpty:
                p[Int.random(in: 0..<p.count, using: &rng)] = [0, 0xFF, 0xC0, 0x3F, 0x40, 12, 41][Int.random(in: 0..<7, using: &rng)]
            case 2 where !p.isEmpty:
                p.removeLast(Int.random(in: 0...p.count, using: &rng))
            case 3:
                p.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...p.count, using: &rng))
            case 4 where !other.isEmpty:
                let cut = Int.random(in: 0...min(p.count, 40), using: &rng)
                p = Array(p.prefix(cut)) + other.suffix(Int.random(in: 0...other.count, using: &rng))
            case 5 where p.count >= 12:
                // Section counts are where parsers usually go wrong.
                p[Int.random(in: 4..<12, using: &rng)] = UInt8.random(in: 0...3, using: &rng)
            default:
                p.append(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            }
        }
        return p
    }

    /// What the header alone says must happen to a packet, or nil when it depends on the rest.
    enum Expected: Equatable { case silence, notImplemented, formatError, notSilence }

    static func expected(_ packet: [UInt8]) -> Expected {
        guard packet.count >= 12 else { return .silence }
        if packet[2] & 0x80 != 0 { return .silence }                      // QR: a response
        if (packet[2] >> 3) & 0x0F != 0 { return .notImplemented }       // OPCODE other than QUERY
        if packet[4] != 0 || packet[5] != 1 { return .formatError }       // QDCOUNT != 1
        return .notSilence
    }

    @Test("mutated queries never crash the responder; every reply decodes with ldns; the header's verdict holds")
    func mutationFuzz() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["DNSD_FUZZ_ITERATIONS"] ?? "") ?? 1_000_000
        let seeds = try Self.corpus()
        let seedValue = UInt64(ProcessInfo.processInfo.environment["DNSD_FUZZ_SEED"] ?? "") ?? 0xD5D5
        var rng = SplitMix(state: seedValue)
        FuzzProgress.arm(seed: seedValue)
        defer { FuzzProgress.disarm() }
        let responder = Responder.standard(ttl: 10, hasUpstreams: true)
        var replies = 0, forwards = 0, drops = 0, undecodable: [[UInt8]] = [], wrong: [String] = []
        for index in 0..<iterations {
            FuzzProgress.index.pointee = index
            let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            let other = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            let packet = Self.mutate(seed, other, &rng)
            let result = CodecTests.answer(packet, responder: responder, overUDP: Bool.random(using: &rng))
            let verdict = Self.expected(packet)
            if let reply = result.reply {
                replies += 1
                #expect(reply.count >= 12 && reply[0] == packet[0] && reply[1] == packet[1] && reply[2] & 0x80 != 0)
                if (try? LDNSReply(reply)) == nil, undecodable.count < 5 { undecodable.append(packet) }
                let rcode = reply[3] & 0x0F
                let fits = switch verdict {
                case .silence: false
                case .notImplemented: rcode == 4
                case .formatError: rcode == 1
                case .notSilence: true
                }
                if !fits, wrong.count < 5 { wrong.append("seed \(seedValue) index \(index): \(verdict), got rcode \(rcode) for \(packet)") }
            } else if result.forwarded {
                forwards += 1
                if verdict != .notSilence, wrong.count < 5 { wrong.append("seed \(seedValue) index \(index): \(verdict), got a forward for \(packet)") }
            } else {
                drops += 1
                if verdict != .silence, wrong.count < 5 { wrong.append("seed \(seedValue) index \(index): \(verdict), got silence for \(packet)") }
            }
        }
        #expect(undecodable.isEmpty, "replies ldns could not decode, for inputs: \(undecodable)")
        #expect(wrong.isEmpty, "outcomes the header rules out: \(wrong)")
        print("FIGURE DNS fuzz: \(iterations) inputs, \(replies) replies, \(forwards) forwards, \(drops) drops")
        #expect(replies > iterations / 10)
    }
}

/// Random dual-stack record sets against a model of DESIGN.md §4: networks with random IPv4
/// subnets and IPv6 prefixes (any length, overlapping or not), endpoints of one family, both or
/// none sharing names and aliases, a sandbox on a random ordered subset of the networks; then
/// queries for names (A, AAAA, ANY, MX; bare, `.net` on any network or outside the cluster; any
/// case) and reverse names (endpoints' addresses, addresses inside a prefix, random ones; any
/// case). ldns reads every reply; the model says what it must be, with `IPSubnet.contains` (not
/// the zone's precomputed masks) deciding what is the cluster's. `DNSD_FUZZ_RECORD_SETS` and
/// `DNSD_FUZZ_SEED` as above.
extension FuzzTests {
    struct World {
        struct Endpoint {
            var name: String
            var aliases: [String]
            var v4: [IPv4Address]
            var v6: [IPv6Address]
            var addresses: [IPAddress] { v4.map(IPAddress.init) + v6.map(IPAddress.init) }
        }

        struct Network {
            var name: String
            var subnets: [IPSubnet]
            var endpoints: [Endpoint]
        }

        var networks: [Network]
        /// Indexes into `networks`, in the sandbox's order of preference.
        var attached: [Int]

        static let labels = ["a", "b", "web", "db", "api", "x1"]

        init(_ rng: inout SplitMix) {
            var used: Set<IPAddress> = []
            networks = (0..<Int.random(in: 1...3, using: &rng)).map { n in
                var subnets: [IPSubnet] = [Self.prefix(.v4, &rng)]
                for _ in 0..<[0, 1, 1, 1, 2][Int.random(in: 0..<5, using: &rng)] { subnets.append(Self.prefix(.v6, &rng)) }
                return Network(name: "n\(n)", subnets: subnets, endpoints: [])
            }
            for n in networks.indices {
                for _ in 0..<Int.random(in: 0...10, using: &rng) {
                    var endpoint = Endpoint(
                        name: Self.labels.randomElement(using: &rng)!,
                        aliases: (0..<Int.random(in: 0...2, using: &rng)).map { _ in Self.labels.randomElement(using: &rng)! },
                        v4: [], v6: [])
                    // IPv4 only, IPv6 only, both, or no address at all; one or two of each.
                    let families: [IPFamily] = [[.v4], [.v6], [.v4, .v6], []][Int.random(in: 0..<4, using: &rng)]
                    for family in families {
                        for _ in 0..<Int.random(in: 1...2, using: &rng) {
                            // Mostly inside one of the network's prefixes of the family, sometimes anywhere.
                            let inside = networks[n].subnets.filter { $0.family == family }
                            let address = inside.isEmpty || Int.random(in: 0..<5, using: &rng) == 0
                                ? Self.anywhere(family, &rng) : Self.inside(inside.randomElement(using: &rng)!, &rng)
                            guard used.insert(address).inserted else { continue }
                            if let v4 = address.v4 { endpoint.v4.append(v4) } else { endpoint.v6.append(address.v6!) }
                        }
                    }
                    networks[n].endpoints.append(endpoint)
                }
            }
            attached = Array(networks.indices.shuffled(using: &rng).prefix(Int.random(in: 0...networks.count, using: &rng)))
        }

        static func prefix(_ family: IPFamily, _ rng: inout SplitMix) -> IPSubnet {
            let length = family == .v4 ? Int.random(in: 8...32, using: &rng) : [16, 48, 56, 64, 64, 64, 96, 112, 120, 127, 128][Int.random(in: 0..<11, using: &rng)]
            return IPSubnet(network: anywhere(family, &rng), prefixLength: length)
        }

        /// A random address; IPv6 in fd00::/8 half the time, so prefixes and addresses meet.
        static func anywhere(_ family: IPFamily, _ rng: inout SplitMix) -> IPAddress {
            let bits = UInt128(UInt64.random(in: .min ... .max, using: &rng)) << 64 | UInt128(UInt64.random(in: .min ... .max, using: &rng))
            guard family == .v6 else { return IPAddress(family: .v4, value: bits) }
            return IPAddress(family: .v6, value: Bool.random(using: &rng) ? UInt128(0xFD) << 120 | bits >> 8 : bits)
        }

        static func inside(_ subnet: IPSubnet, _ rng: inout SplitMix) -> IPAddress {
            let offset = UInt128(UInt64.random(in: .min ... .max, using: &rng)) << 64 | UInt128(UInt64.random(in: .min ... .max, using: &rng))
            return subnet.address(at: subnet.size == .max ? offset : offset % subnet.size)
        }

        func load(into store: RecordStore) {
            store.update { changes in
                for network in networks {
                    let label = try! HostLabel(network.name)
                    changes.setNetwork(label, subnets: network.subnets)
                    for (i, endpoint) in network.endpoints.enumerated() {
                        changes.setEndpoint("e\(i)", on: label, EndpointRecord(
                            name: try! HostLabel(endpoint.name), aliases: endpoint.aliases.map { try! HostLabel($0) },
                            ipv4: endpoint.v4, ipv6: endpoint.v6))
                    }
                }
                changes.attach(SandboxID(1), to: attached.map { try! HostLabel(networks[$0].name) })
            }
        }

        /// What dnsd must do with a query, by DESIGN.md §4.
        enum Outcome: Equatable, CustomStringConvertible {
            case forward
            /// Authoritative: the code, the answers' data (a set: order rotates), and whether a
            /// NODATA's SOA is in the authority section.
            case answer(rcode: Int, data: Set<String>, count: Int, soa: Bool)

            var description: String {
                switch self {
                case .forward: "forward"
                case .answer(let rcode, let data, let count, let soa): "rcode \(rcode) \(data.sorted()) (\(count)) soa \(soa)"
                }
            }
        }

        func expected(name labels: [String], type: UInt16) -> Outcome {
            let wanted = { (e: Endpoint) -> [String] in
                (type == 1 || type == 255 ? e.v4.map(\.description) : []) + (type == 28 || type == 255 ? e.v6.map(\.description) : [])
            }
            let named = { (e: Endpoint) in e.name == labels[0] || e.aliases.contains(labels[0]) }
            var onNetworks: [Int]
            if labels.count == 2 {
                guard let n = networks.firstIndex(where: { $0.name == labels[1] }) else { return .forward }
                guard attached.contains(n), networks[n].endpoints.contains(where: named) else {
                    return .answer(rcode: 3, data: [], count: 0, soa: true)
                }
                onNetworks = [n]
            } else {
                onNetworks = attached.filter { networks[$0].endpoints.contains(where: named) }
                if onNetworks.isEmpty { return .forward }
            }
            // Per network, each address once (several endpoints may share a name).
            var data: [String] = []
            for n in onNetworks {
                var seen: Set<String> = []
                for e in networks[n].endpoints where named(e) { for a in wanted(e) where seen.insert(a).inserted { data.append(a) } }
            }
            return .answer(rcode: 0, data: Set(data), count: data.count, soa: data.isEmpty)
        }

        func expected(reverse address: IPAddress, type: UInt16) -> Outcome {
            for n in attached {
                if let e = networks[n].endpoints.first(where: { $0.addresses.contains(address) }) {
                    let answers = type == 12 || type == 255 ? ["\(e.name).\(networks[n].name)."] : []
                    return .answer(rcode: 0, data: Set(answers), count: answers.count, soa: false)
                }
            }
            // The cluster's address (any network's, attached or not): NXDOMAIN (without an SOA,
            // as reverse answers are written), never forwarded.
            let clusters = networks.contains { $0.subnets.contains { $0.contains(address) } }
            return clusters ? .answer(rcode: 3, data: [], count: 0, soa: false) : .forward
        }
    }

    static func reverseName(_ address: IPAddress) -> String {
        guard address.family == .v6 else { return address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa" }
        return DualStackTests.reverseName(address.description)
    }

    /// Flips the case of some letters: DNS names are case-insensitive.
    static func randomCase(_ name: String, _ rng: inout SplitMix) -> String {
        String(name.map { Int.random(in: 0..<3, using: &rng) == 0 ? Character($0.uppercased()) : $0 })
    }

    @Test("random dual-stack record sets: every answer is the one DESIGN.md §4 gives, read by ldns")
    func recordSetFuzz() throws {
        let sets = Int(ProcessInfo.processInfo.environment["DNSD_FUZZ_RECORD_SETS"] ?? "") ?? 400
        let seedValue = UInt64(ProcessInfo.processInfo.environment["DNSD_FUZZ_SEED"] ?? "") ?? 0x6D6D
        var rng = SplitMix(state: seedValue)
        let responder = Responder.standard(ttl: 10, hasUpstreams: true)
        var output = [UInt8](repeating: 0, count: 65536)
        var wrong: [String] = []
        var counts = (queries: 0, forwards: 0, nxdomain: 0, nodata: 0, v6: 0, v6NXDOMAIN: 0, aaaaAnswers: 0, aaaaNODATA: 0)
        for set in 0..<sets {
            let world = World(&rng)
            let store = RecordStore()
            world.load(into: store)
            let table = store.table
            for _ in 0..<40 {
                var name: String
                var type: UInt16
                var reverse6 = false
                let outcome: World.Outcome
                if Bool.random(using: &rng) {
                    let label = (World.labels + ["nosuch"]).randomElement(using: &rng)!
                    let suffix = ([nil, "test"] + world.networks.map(\.name)).randomElement(using: &rng)!
                    type = [1, 28, 255, 15][Int.random(in: 0..<4, using: &rng)]
                    name = suffix.map { "\(label).\($0)" } ?? label
                    outcome = world.expected(name: name.split(separator: ".").map(String.init), type: type)
                } else {
                    let endpoints = world.networks.flatMap(\.endpoints).flatMap(\.addresses)
                    let address: IPAddress
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0 where !endpoints.isEmpty: address = endpoints.randomElement(using: &rng)!
                    case 1: address = World.inside(world.networks.flatMap(\.subnets).randomElement(using: &rng)!, &rng)
                    default: address = World.anywhere(Bool.random(using: &rng) ? .v4 : .v6, &rng)
                    }
                    if address.family == .v6 { counts.v6 += 1 }
                    reverse6 = address.family == .v6
                    type = Int.random(in: 0..<5, using: &rng) == 0 ? 255 : 12
                    name = Self.reverseName(address)
                    outcome = world.expected(reverse: address, type: type)
                }
                name = Self.randomCase(name, &rng)
                counts.queries += 1
                let packet = try LDNSQuery.make(name, type: type, id: UInt16(truncatingIfNeeded: counts.queries))
                let result = packet.withUnsafeBytes { input in
                    output.withUnsafeMutableBytes { out -> [UInt8]? in
                        switch responder.respond(to: input, from: SandboxID(1), table: table, into: out, overUDP: false) {
                        case .reply(let length): Array(out[0..<length])
                        case .forward: nil
                        case .drop: []
                        }
                    }
                }
                let got: World.Outcome
                if let bytes = result {
                    guard let reply = try? LDNSReply(bytes), reply.authoritative else {
                        if wrong.count < 5 { wrong.append("set \(set): \(name) type \(type): undecodable or not authoritative") }
                        continue
                    }
                    // Addresses as Addressing parses them, so ldns's and inet_ntop's spellings agree.
                    let data = reply.answers.map { IPAddress($0.data)?.description ?? $0.data.lowercased() }
                    got = .answer(rcode: reply.rcode, data: Set(data), count: data.count,
                                  soa: reply.authorityRecords.map(\.type) == [6])
                } else {
                    got = .forward
                    counts.forwards += 1
                }
                if case .answer(let rcode, _, let count, _) = got {
                    if rcode == 3 { counts.nxdomain += 1 } else if count == 0 { counts.nodata += 1 }
                    if rcode == 3 && reverse6 { counts.v6NXDOMAIN += 1 }
                    if type == 28 && rcode == 0 { if count > 0 { counts.aaaaAnswers += 1 } else { counts.aaaaNODATA += 1 } }
                }
                if got != outcome, wrong.count < 5 {
                    wrong.append("seed \(seedValue) set \(set): \(name) type \(type): expected \(outcome), got \(got); world \(world.networks.map { "\($0.name) \($0.subnets) \($0.endpoints.map { "\($0.name)\($0.aliases) \($0.addresses)" })" }) attached \(world.attached)")
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.joined(separator: "\n"))")
        print("FIGURE DNS record-set fuzz: \(sets) sets, \(counts.queries) queries (\(counts.v6) ip6.arpa), \(counts.forwards) forwards, \(counts.nxdomain) NXDOMAIN, \(counts.nodata) NODATA")
        #expect(counts.forwards > 0 && counts.nxdomain > 0 && counts.nodata > 0)
        // Each IPv6 outcome was reached, so the model's agreement covers them.
        #expect(counts.v6NXDOMAIN > 0 && counts.aaaaAnswers > 0 && counts.aaaaNODATA > 0, "\(counts)")
    }
}

/// The fuzz loop's position, for a crash: a signal handler prints the seed and index of the
/// input being answered (async-signal-safe: a preallocated buffer and write(2)).
enum FuzzProgress {
    nonisolated(unsafe) static let index: UnsafeMutablePointer<Int> = {
        let pointer = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        pointer.initialize(to: -1)
        return pointer
    }()
    nonisolated(unsafe) static let seed: UnsafeMutablePointer<UInt64> = {
        let pointer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()
    nonisolated(unsafe) static let line = UnsafeMutablePointer<UInt8>.allocate(capacity: 128)
    nonisolated(unsafe) static var previous: [Int32: sighandler_t?] = [:]
    static let signals = [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE]

    static func arm(seed value: UInt64) {
        seed.pointee = value
        _ = index
        for signal in signals {
            previous[signal] = Glibc.signal(signal) { number in
                var length = 0
                func put(_ text: StaticString) {
                    text.withUTF8Buffer { for byte in $0 { FuzzProgress.line[length] = byte; length += 1 } }
                }
                func put(_ value: UInt64) {
                    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                    var count = 0, rest = value
                    withUnsafeMutableBytes(of: &digits) { raw in
                        repeat { raw[count] = UInt8(48 + rest % 10); rest /= 10; count += 1 } while rest > 0
                        while count > 0 { count -= 1; FuzzProgress.line[length] = raw[count]; length += 1 }
                    }
                }
                put("\nFUZZ CRASH: DNSD_FUZZ_SEED=")
                put(FuzzProgress.seed.pointee)
                put(" index ")
                put(UInt64(max(0, FuzzProgress.index.pointee)))
                put("\n")
                _ = write(2, FuzzProgress.line, length)
                // Then whatever handled it before (the runtime's backtrace) or the default.
                Glibc.signal(number, FuzzProgress.previous[number] ?? SIG_DFL)
                raise(number)
            }
        }
    }

    static func disarm() {
        for signal in signals { Glibc.signal(signal, previous[signal] ?? SIG_DFL) }
    }
}

