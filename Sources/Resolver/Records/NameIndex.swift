/// An immutable hash table from DNS labels (lower-case bytes) to small integers, built once
/// per zone and read without allocating: the key bytes live in one arena, the table is two
/// flat arrays, and a lookup hashes the label straight from the packet's decoded name.
///
/// Compared with `Dictionary<String, Int>` this is ~10 bytes per slot instead of ~40, hashes
/// only the label's own bytes, and never builds a key object on the query path.
public struct NameIndex: Sendable {
    private var arena: [UInt8] = []
    private var keyStart: [Int32] = []
    private var keyLength: [UInt8] = []
    private var values: [Int32] = []
    /// Per slot: the entry number + 1 (0 = empty) and the full hash, to skip most byte compares.
    private var slots: [Int32] = []
    private var slotHashes: [UInt32] = []
    private var mask = 0
    private let seed: UInt32

    public private(set) var count = 0

    /// Builds the index from (label, value) pairs; a label seen twice keeps its first value.
    /// Labels are lower-cased here.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, Int32) {
        // A per-table seed so no one can choose names that collide in every zone.
        seed = UInt32.random(in: .min ... .max)
        let items = Array(pairs)
        var capacity = 8
        while capacity < items.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = Array(repeating: 0, count: capacity)
        slotHashes = Array(repeating: 0, count: capacity)
        for (label, value) in items {
            var bytes = Array(label.lowercased().utf8)
            precondition(bytes.count <= 63, "labels are at most 63 bytes")
            let present = bytes.withUnsafeMutableBytes { find(UnsafeRawBufferPointer($0)) != nil }
            if present { continue }
            let hash = bytes.withUnsafeBytes { Self.hash($0, seed: seed) }
            var slot = Int(hash) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            keyStart.append(Int32(arena.count))
            keyLength.append(UInt8(bytes.count))
            arena.append(contentsOf: bytes)
            values.append(value)
            count += 1
            slots[slot] = Int32(count)
            slotHashes[slot] = hash
            bytes.removeAll()
        }
    }

    public init() { self.init([(String, Int32)]()) }

    /// The value stored for `label` (lower-case bytes), if any.
    @inline(__always)
    public func find(_ label: UnsafeRawBufferPointer) -> Int32? {
        let hash = Self.hash(label, seed: seed)
        var slot = Int(hash) & mask
        return arena.withUnsafeBytes { arena in
            while true {
                let entry = Int(slots[slot])
                if entry == 0 { return nil }
                if slotHashes[slot] == hash {
                    let index = entry - 1
                    let length = Int(keyLength[index])
                    if length == label.count {
                        let start = Int(keyStart[index])
                        if length == 0 || memcmpEqual(arena.baseAddress! + start, label.baseAddress!, length) {
                            return values[index]
                        }
                    }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Convenience for tests and set-up code.
    public func find(_ label: String) -> Int32? {
        var bytes = Array(label.lowercased().utf8)
        return bytes.withUnsafeMutableBytes { find(UnsafeRawBufferPointer($0)) }
    }

    /// FNV-1a over the bytes, seeded, with a final avalanche so the low bits (the slot) mix well.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt32) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5 ^ seed
        for byte in bytes {
            h = (h ^ UInt32(byte)) &* 0x0100_0193
        }
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        return h
    }
}

@inline(__always)
func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var i = 0
    while i + 8 <= count {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < count {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i += 1
    }
    return true
}
