import Addressing

/// A hosts-style records file for `dnsd serve-dns`: each line `IP name [alias...]`, `#` starts
/// a comment. One line is one endpoint, of one address (IPv4 or IPv6); several lines may share
/// a name or alias, so a dual-stack name is two lines, one per family, and answers A and AAAA.
public enum RecordsFile {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var line: Int
        public var reason: String
        public var description: String { "records line \(line): \(reason)" }
    }

    /// Parses the whole file or fails on the first bad line (nothing is half-loaded).
    public static func parse(_ text: String) throws -> [String: EndpointRecord] {
        var endpoints: [String: EndpointRecord] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.prefix { $0 != "#" }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let first = words.first else { continue }
            guard words.count >= 2 else { throw Invalid(line: number + 1, reason: "expected 'IP name [alias...]'") }
            var record: EndpointRecord
            do {
                let labels = try words.dropFirst().map { try HostLabel(String($0)) }
                record = EndpointRecord(name: labels[0], aliases: Array(labels.dropFirst()))
            } catch {
                throw Invalid(line: number + 1, reason: "\(error)")
            }
            if let v4 = IPv4Address(first) {
                record.ipv4 = [v4]
            } else if let v6 = IPv6Address(String(first)) {
                record.ipv6 = [v6]
            } else {
                throw Invalid(line: number + 1, reason: "'\(first)' is not an IPv4 or IPv6 address")
            }
            endpoints["line\(number + 1)"] = record
        }
        return endpoints
    }
}
