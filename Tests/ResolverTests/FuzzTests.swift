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
/// corpus once more under AddressSanitizer).
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

