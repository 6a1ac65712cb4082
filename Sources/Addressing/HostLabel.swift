/// A name a user gives a container, an alias or a network: one RFC 1123 host label.
///
/// Letters, digits and hyphen, 1-63 characters, not starting or ending with a hyphen. Names are
/// compared without case. Validating here, before anything is written, is what keeps a newline,
/// a space or a `#` from ever reaching a hosts file or a DNS record.
public struct HostLabel: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The label in lower case (DNS names are case-insensitive).
    public let text: String

    public enum Invalid: Error, CustomStringConvertible, Equatable {
        case empty(what: String)
        case tooLong(what: String, String)
        case badCharacter(what: String, String)
        case hyphenAtEdge(what: String, String)

        public var description: String {
            switch self {
            case .empty(let what): "invalid \(what): empty"
            case .tooLong(let what, let s): "invalid \(what) '\(Self.printable(s))': longer than 63 characters"
            case .badCharacter(let what, let s):
                "invalid \(what) '\(Self.printable(s))': only letters, digits and '-' are allowed (RFC 1123)"
            case .hyphenAtEdge(let what, let s): "invalid \(what) '\(s)': must not start or end with '-'"
            }
        }

        /// Control characters shown escaped so an error line stays one line.
        private static func printable(_ s: String) -> String {
            String(s.unicodeScalars.flatMap { c -> [Character] in
                c.value < 0x20 || c.value == 0x7f ? Array(c.escaped(asASCII: true)) : [Character(c)]
            })
        }
    }

    /// Validates `text`; `what` names the thing in the error ("name", "alias", "network").
    public init(_ text: String, what: String = "name") throws {
        guard !text.isEmpty else { throw Invalid.empty(what: what) }
        guard text.utf8.count <= 63 else { throw Invalid.tooLong(what: what, text) }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                continue
            default:
                throw Invalid.badCharacter(what: what, text)
            }
        }
        guard text.utf8.first != UInt8(ascii: "-"), text.utf8.last != UInt8(ascii: "-") else {
            throw Invalid.hyphenAtEdge(what: what, text)
        }
        self.text = text.lowercased()
    }

    public var description: String { text }

    public static func < (lhs: HostLabel, rhs: HostLabel) -> Bool { lhs.text < rhs.text }
}

extension HostLabel {
    /// A runtime's container name as a DNS label: Docker's and podman's generated names
    /// (`festive_hopper`) and container ids (`default-c3`, or 64 hex digits) are not always one.
    /// Characters other than letters, digits and '-' become '-'; a 64-hex-digit id is cut to its
    /// 12-digit short form, as Docker and podman print it; anything longer than 63 is cut. Nil
    /// when nothing is left.
    public static func sanitized(_ given: String) -> HostLabel? {
        var text = given
        if text.utf8.count == 64, text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
            text = String(text.prefix(12))
        }
        var label = String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }.prefix(63))
        while label.hasPrefix("-") { label.removeFirst() }
        while label.hasSuffix("-") { label.removeLast() }
        return try? HostLabel(label)
    }
}
