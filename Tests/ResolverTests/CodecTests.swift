import Addressing
import Foundation
@testable import Resolver
import Testing

/// The wire codec on its own: parsing what ldns builds, building what ldns parses, and
/// refusing every malformed shape without reading past the packet.
@Suite("Wire codec", .timeLimit(.minutes(5)))
struct CodecTests {
    static let table: RecordTable = {
        let store = RecordStore()
        ResolverFixture.loadStandardRecords(into: store)
        store.update { $0.attach(SandboxID(1), to: [ResolverFixture.vnet]) }
        return store.table
    }()

    /// Runs one packet through the standard chain; returns the reply bytes, if any.
    static func answer(_ packet: [UInt8], responder: Responder = .standard(ttl: 10, hasUpstreams: true),
                       overUDP: Bool = true) -> (reply: [UInt8]?, forwarded: Bool) {
        var output = [UInt8](repeating: 0, count: 65536)
        return packet.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                switch responder.respond(to: input, from: SandboxID(1), table: table, into: out, overUDP: overUDP) {
                case .reply(let length): (Array(out[0..<length]), false)
                case .forward: (nil, true)
                case .drop: (nil, false)
                }
            }
        }
    }

    @Test("queries built by ldns parse to the same name, type, class and EDNS size",
          arguments: [("c01.vnet", 1, nil), ("C02.VNet.", 28, 4096), ("a.b.c.d.e.f.g", 15, 512),
                      (".", 2, 1232), ("x", 255, nil), (String(repeating: "a", count: 63) + ".vnet", 16, 700)] as [(String, UInt16, UInt16?)])
    func parsesLDNSQueries(name: String, type: UInt16, size: UInt16?) throws {
        let packet = try LDNSQuery.make(name, type: type, id: 0xABCD, udpSize: size)
        let parser = QueryParser()
        try packet.withUnsafeBytes { bytes in
            guard case .query(let query) = parser.parse(bytes) else {
                Issue.record("not parsed")
                return
            }
            #expect(query.id == 0xABCD)
            #expect(query.type.rawValue == type)
            #expect(query.recordClass == .internet)
            let expected = name == "." ? "." : name.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
            #expect(query.name.text == expected)
            #expect(query.edns?.udpPayloadSize == size.map(Int.init))
            #expect(query.questionEnd == 12 + query.name.wireBytes.count + 4)
        }
    }

    @Test("every reply to a well-formed query decodes with ldns and matches its question")
    func repliesDecode() throws {
        for (name, type) in [("c01.vnet", UInt16(1)), ("web", 1), ("c02", 28), ("c01", 15), ("nosuch.vnet", 1),
                             ("3.0.168.192.in-addr.arpa", 12), ("many.vnet", 1), ("c04.net2", 1)] {
            for size in [nil, UInt16(512), UInt16(4096)] as [UInt16?] {
                let query = try LDNSQuery.make(name, type: type, id: 77, udpSize: size)
                let reply = try LDNSReply(#require(Self.answer(query).reply))
                #expect(reply.id == 77)
                #expect(reply.questionName == name.lowercased() + ".")
                #expect(reply.questionType == type)
                #expect((reply.ednsUDPSize != nil) == (size != nil))
            }
        }
    }

    @Test("the answer keeps the client's spelling of the name (0x20 randomisation)")
    func keepsCase() throws {
        let reply = try LDNSReply(#require(Self.answer(LDNSQuery.make("C01.VnEt")).reply))
        #expect(reply.questionName == "C01.VnEt.")
        #expect(reply.answers.first?.owner == "C01.VnEt.")
    }

    @Test("over TCP the full answer is sent; over UDP it is truncated at the client's size")
    func sizeLimits() throws {
        let query = try LDNSQuery.make("many", udpSize: 1232)
        let udp = try LDNSReply(#require(Self.answer(query).reply))
        #expect(udp.truncated && udp.answers.isEmpty && udp.ednsUDPSize == 1232)
        let tcp = try LDNSReply(#require(Self.answer(query, overUDP: false).reply))
        #expect(!tcp.truncated && tcp.answers.count == 100)
    }

    @Test("every truncation of a valid query is dropped (no header) or FORMERR, never read past its end")
    func everyTruncation() throws {
        let full = try LDNSQuery.make("c01.vnet", type: 1, id: 0x0102, udpSize: 1232)
        let parser = QueryParser()
        for cut in 0..<full.count {
            // A buffer exactly as long as the cut, so reading past it would touch unowned memory
            // (and the address sanitizer run would catch it).
            let piece = Array(full[0..<cut])
            piece.withUnsafeBytes { bytes in
                switch parser.parse(bytes) {
                case .drop: #expect(cut < 12)
                case .headerOnly(let id, _, let code):
                    #expect(cut >= 12 && id == 0x0102 && code == .formatError)
                case .query: Issue.record("a query cut at \(cut) of \(full.count) bytes parsed")
                }
            }
        }
    }

    /// A header with one question, then `body`.
    private func packet(_ body: [UInt8], arcount: UInt8 = 0) -> [UInt8] {
        [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, arcount] + body
    }

    private func outcome(_ bytes: [UInt8]) -> String {
        // The parsed name lives in the parser's buffer: keep the parser alive while reading it.
        let parser = QueryParser()
        return bytes.withUnsafeBytes { raw in
            switch parser.parse(raw) {
            case .drop: "drop"
            case .headerOnly(_, _, let code): "\(code)"
            case .query(let q): withExtendedLifetime(parser) { "query \(q.name.text)" }
            }
        }
    }

    @Test("compression loops, forward pointers and pointers into the header are FORMERR")
    func badPointers() {
        #expect(outcome(packet([0xC0, 12, 0, 1, 0, 1])) == "FORMERR")  // points at itself
        #expect(outcome(packet([1, 0x61, 0xC0, 12, 0, 1, 0, 1])) == "FORMERR")  // back to its own start: loop
        #expect(outcome(packet([0xC0, 20, 0, 1, 0, 1, 0, 0, 1, 0x61, 0])) == "FORMERR")  // forward
        #expect(outcome(packet([0xC0, 2, 0, 1, 0, 1])) == "FORMERR")  // into the header
        #expect(outcome(packet([0xC0])) == "FORMERR")  // half a pointer
    }

    @Test("extended label types, labels past the end and names over 255 bytes are FORMERR")
    func badLabels() {
        #expect(outcome(packet([0x41, 0x61, 0, 0, 1, 0, 1])) == "FORMERR")  // 0x40 label type
        #expect(outcome(packet([0x81, 0x61, 0, 0, 1, 0, 1])) == "FORMERR")  // 0x80 label type
        #expect(outcome(packet([5, 0x61, 0x62, 0])) == "FORMERR")  // label runs off the end
        let long: [UInt8] = (0..<5).flatMap { _ -> [UInt8] in [63] + [UInt8](repeating: 0x61, count: 63) } + [0, 0, 1, 0, 1]
        #expect(outcome(packet(long)) == "FORMERR")  // 320 bytes
        let justFits: [UInt8] = (0..<3).flatMap { _ -> [UInt8] in [63] + [UInt8](repeating: 0x61, count: 63) }
            + [61] + [UInt8](repeating: 0x62, count: 61) + [0, 0, 1, 0, 1]  // 255 bytes exactly
        #expect(outcome(packet(justFits)).hasPrefix("query "))
    }

    @Test("section counts and OPT rules")
    func sections() {
        let question: [UInt8] = [1, 0x61, 0, 0, 1, 0, 1]
        var none = packet(question)
        none[5] = 0
        #expect(outcome(none) == "FORMERR")  // no question
        var two = packet(question + question)
        two[5] = 2
        #expect(outcome(two) == "FORMERR")
        let opt: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        #expect(outcome(packet(question + opt, arcount: 1)) == "query a")
        #expect(outcome(packet(question + opt + opt, arcount: 2)) == "FORMERR")  // two OPTs
        let namedOPT: [UInt8] = [1, 0x62, 0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        #expect(outcome(packet(question + namedOPT, arcount: 1)) == "FORMERR")  // OPT not at root
        var response = packet(question)
        response[2] |= 0x80
        #expect(outcome(response) == "drop")
        var notify = packet(question)
        notify[2] = 0x20  // opcode 4
        #expect(outcome(notify) == "NOTIMP")
    }

    @Test("name index: case-insensitive, exact length, first value wins, absent is nil")
    func nameIndex() {
        let pairs: [(String, Int32)] = [("Web-01", 1), ("web-1", 2), ("web-01", 3), (String(repeating: "x", count: 63), 4), ("", 5)]
        let index = NameIndex(pairs)
        #expect(index.find("web-01") == 1)
        #expect(index.find("WEB-01") == 1)
        #expect(index.find("web-1") == 2)
        #expect(index.find("web-0") == nil && index.find("web-011") == nil)
        #expect(index.find(String(repeating: "x", count: 63)) == 4)
        #expect(index.find(String(repeating: "x", count: 62)) == nil)
        #expect(index.find("") == 5)
        #expect(index.count == 4)  // "Web-01" and "web-01" are one label
        // Many names, all found, none confused.
        let big = NameIndex((0..<5000).map { ("n\($0)", Int32($0)) })
        #expect((0..<5000).allSatisfy { big.find("n\($0)") == Int32($0) })
        #expect(big.find("n5000") == nil)
    }

    @Test("ResponseWriter keeps the OPT and sets TC when a record does not fit")
    func writerOverflow() throws {
        let query = try LDNSQuery.make("c01", udpSize: 512)
        var output = [UInt8](repeating: 0, count: 4096)
        let length = query.withUnsafeBytes { input -> Int in
            guard case .query(let parsed) = QueryParser().parse(input) else { return 0 }
            return output.withUnsafeMutableBytes { out in
                var writer = ResponseWriter(buffer: out, limit: 60)
                writer.start(answering: parsed, from: input, authoritative: true)
                writer.appendA(1, ttl: 5)
                writer.appendA(2, ttl: 5)  // 12 + 6 + 16 + 16 + 11 > 60
                return writer.finish(code: .noError)
            }
        }
        let reply = try LDNSReply(Array(output[0..<length]))
        #expect(reply.truncated && reply.answers.isEmpty && reply.ednsUDPSize == 1232)
    }
}
