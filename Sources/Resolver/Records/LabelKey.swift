import Addressing

/// One DNS label (at most 63 bytes), lower-cased, stored inline: a dictionary key that
/// building from a packet never allocates for.
public struct LabelKey: Hashable, Sendable, CustomStringConvertible {
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var length: UInt8 = 0

    /// From label bytes already lower-cased by the parser; nil when longer than 63 bytes.
    @inline(__always)
    public init?(lowercased bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= 63 else { return nil }
        length = UInt8(bytes.count)
        withUnsafeMutableBytes(of: &words) { dst in
            dst.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
    }

    public init(_ label: HostLabel) {
        var text = label.text
        self = text.withUTF8 { LabelKey(lowercased: UnsafeRawBufferPointer($0))! }
    }

    /// Lower-cases `text`; nil when it is longer than 63 bytes.
    public init?(_ text: String) {
        var lowered = text.lowercased()
        guard let key = lowered.withUTF8({ LabelKey(lowercased: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = key
    }

    public var text: String {
        withUnsafeBytes(of: words) { String(decoding: $0[0..<Int(length)], as: UTF8.self) }
    }

    public var description: String { text }

    @inline(__always)
    public static func == (lhs: LabelKey, rhs: LabelKey) -> Bool {
        guard lhs.length == rhs.length else { return false }
        return lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3 && lhs.words.4 == rhs.words.4 && lhs.words.5 == rhs.words.5
            && lhs.words.6 == rhs.words.6 && lhs.words.7 == rhs.words.7
    }

    /// Hashes only the words the label occupies: most names fit in one or two.
    @inline(__always)
    public func hash(into hasher: inout Hasher) {
        hasher.combine(length)
        withUnsafeBytes(of: words) { raw in
            let used = (Int(length) + 7) / 8
            for i in 0..<used { hasher.combine(raw.load(fromByteOffset: i * 8, as: UInt64.self)) }
        }
    }
}
