import Foundation
@testable import Resolver
import TestSupport
import Testing

/// Deterministic random-mutation fuzzing of the query path: seeds built by ldns, mutated by
/// bit flips, byte writes, cuts, insertions and splices. Every packet must be answered, dropped
/// or forwarded without a crash, and every reply dnsd writes must decode with ldns and carry
/// the query's ID. `DNSD_FUZZ_ITERATIONS` sets the count (default 1M, `make fuzz` runs 5M optimised).
@Suite("Fuzz: query path", .timeLimit(.minutes(5)))
struct FuzzTests {
    static func corpus() throws -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        for (name, type) in [("c01.vnet", UInt16(1)), ("web", 28), ("many.vnet", 1), ("nosuch.vnet", 16),
                             ("3.0.168.192.in-addr.arpa", 12), ("outside.test", 1), ("c04.net2", 255),
                             ("3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", 12)] {
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

    @Test("mutated queries never crash the responder; every reply decodes with ldns")
    func mutationFuzz() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["DNSD_FUZZ_ITERATIONS"] ?? "") ?? 1_000_000
        let seeds = try Self.corpus()
        var rng = SplitMix(state: UInt64(ProcessInfo.processInfo.environment["DNSD_FUZZ_SEED"] ?? "") ?? 0xD5D5)
        let responder = Responder.standard(ttl: 10, hasUpstreams: true)
        var replies = 0, forwards = 0, drops = 0, undecodable: [[UInt8]] = []
        for _ in 0..<iterations {
            let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            let other = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            let packet = Self.mutate(seed, other, &rng)
            let result = CodecTests.answer(packet, responder: responder, overUDP: Bool.random(using: &rng))
            if let reply = result.reply {
                replies += 1
                #expect(reply.count >= 12 && reply[0] == packet[0] && reply[1] == packet[1])
                if (try? LDNSReply(reply)) == nil, undecodable.count < 5 { undecodable.append(packet) }
            } else if result.forwarded {
                forwards += 1
            } else {
                drops += 1
            }
        }
        #expect(undecodable.isEmpty, "replies ldns could not decode, for inputs: \(undecodable)")
        print("FIGURE DNS fuzz: \(iterations) inputs, \(replies) replies, \(forwards) forwards, \(drops) drops")
        #expect(replies > iterations / 10)
    }
}
