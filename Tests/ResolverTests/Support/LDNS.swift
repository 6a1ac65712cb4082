import CLDNS
import Foundation

/// libldns as the independent reference: every reply a test looks at is decoded by ldns, and
/// the test asserts on ldns's reading, not on dnsd's own codec.
struct LDNSReply: CustomStringConvertible {
    struct Record: Equatable, CustomStringConvertible {
        var owner: String
        var type: UInt16
        var ttl: UInt32
        var data: String
        /// Every rdata field (the first is `data`).
        var fields: [String] = []
        var description: String { "\(owner) \(ttl) TYPE\(type) \(fields.joined(separator: " "))" }
    }

    var id: UInt16
    var rcode: Int
    var authoritative: Bool
    var truncated: Bool
    var recursionAvailable: Bool
    var questionName: String
    var questionType: UInt16
    var answers: [Record]
    var authorities: Int { authorityRecords.count }
    var authorityRecords: [Record]
    var ednsUDPSize: Int?
    var text: String

    /// The extended response code: 4 bits from the header, 8 from the OPT record.
    var extendedRcode: Int { rcode }

    var description: String { text }

    var addresses: [String] { answers.filter { $0.type == 1 || $0.type == 28 }.map(\.data) }

    /// Decodes `bytes`; throws when ldns rejects them.
    init(_ bytes: [UInt8]) throws {
        var packet: UnsafeMutablePointer<ldns_pkt>?
        let status = bytes.withUnsafeBufferPointer { ldns_wire2pkt(&packet, $0.baseAddress, $0.count) }
        guard status == LDNS_STATUS_OK, let packet else {
            throw LDNSError(message: "ldns_wire2pkt: \(String(cString: ldns_get_errorstr_by_id(status)))")
        }
        defer { ldns_pkt_free(packet) }
        id = ldns_pkt_id(packet)
        let base = Int(ldns_pkt_get_rcode(packet).rawValue)
        ednsUDPSize = ldns_pkt_edns(packet) ? Int(ldns_pkt_edns_udp_size(packet)) : nil
        rcode = base | Int(ldns_pkt_edns_extended_rcode(packet)) << 4
        authoritative = ldns_pkt_aa(packet)
        truncated = ldns_pkt_tc(packet)
        recursionAvailable = ldns_pkt_ra(packet)
        let question = ldns_pkt_question(packet)
        if ldns_rr_list_rr_count(question) > 0, let q = ldns_rr_list_rr(question, 0) {
            questionName = Self.string(ldns_rdf2str(ldns_rr_owner(q)))
            questionType = UInt16(ldns_rr_get_type(q).rawValue)
        } else {
            questionName = ""
            questionType = 0
        }
        answers = Self.records(ldns_pkt_answer(packet))
        authorityRecords = Self.records(ldns_pkt_authority(packet))
        text = Self.string(ldns_pkt2str(packet))
    }

    private static func records(_ list: UnsafeMutablePointer<ldns_rr_list>?) -> [Record] {
        var records: [Record] = []
        for i in 0..<ldns_rr_list_rr_count(list) {
            guard let rr = ldns_rr_list_rr(list, i) else { continue }
            let fields = (0..<ldns_rr_rd_count(rr)).map { Self.string(ldns_rdf2str(ldns_rr_rdf(rr, $0))) }
            records.append(Record(owner: Self.string(ldns_rdf2str(ldns_rr_owner(rr))), type: UInt16(ldns_rr_get_type(rr).rawValue),
                                  ttl: ldns_rr_ttl(rr), data: fields.first ?? "", fields: fields))
        }
        return records
    }

    private static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}

struct LDNSError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Queries built by ldns, so the bytes a test sends were not made by dnsd's codec either.
enum LDNSQuery {
    /// A standard query for `name`/`type`; `udpSize` adds an OPT record with that size.
    static func make(_ name: String, type: UInt16 = 1, recordClass: UInt16 = 1, id: UInt16 = 0x1234,
                     recursionDesired: Bool = true, udpSize: UInt16? = nil, ednsVersion: UInt8 = 0) throws -> [UInt8] {
        guard let owner = ldns_dname_new_frm_str(name) else { throw LDNSError(message: "bad name \(name)") }
        guard let packet = ldns_pkt_query_new(
            owner, ldns_rr_type(rawValue: UInt32(type)), ldns_rr_class(rawValue: UInt32(recordClass)),
            UInt16(recursionDesired ? LDNS_RD : 0))
        else { throw LDNSError(message: "ldns_pkt_query_new failed") }
        defer { ldns_pkt_free(packet) }
        ldns_pkt_set_id(packet, id)
        if let udpSize {
            ldns_pkt_set_edns_udp_size(packet, udpSize)
            ldns_pkt_set_edns_version(packet, ednsVersion)
        }
        var buffer: UnsafeMutablePointer<UInt8>?
        var size = 0
        guard ldns_pkt2wire(&buffer, packet, &size) == LDNS_STATUS_OK, let buffer else {
            throw LDNSError(message: "ldns_pkt2wire failed")
        }
        defer { free(buffer) }
        return Array(UnsafeBufferPointer(start: buffer, count: size))
    }
}
