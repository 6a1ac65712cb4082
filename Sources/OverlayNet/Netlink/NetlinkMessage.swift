import Addressing
import CMnl
#if canImport(Glibc)
import Glibc
#endif

/// One rtnetlink request being built in a buffer owned by the message. The C pointers stay in
/// here; callers add typed attributes.
struct NetlinkMessage: ~Copyable {
    private let buffer: UnsafeMutableRawPointer
    let header: UnsafeMutablePointer<nlmsghdr>
    private static let capacity = 8192

    init(type: UInt16, flags: Int32) {
        buffer = .allocate(byteCount: Self.capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.capacity)
        header = mnl_nlmsg_put_header(buffer)
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = UInt16(flags | NLM_F_REQUEST)
    }

    deinit { buffer.deallocate() }

    /// Appends the family header (ifinfomsg, ndmsg, ...) and returns it for filling in.
    func familyHeader<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        mnl_nlmsg_put_extra_header(header, MemoryLayout<T>.size).bindMemory(to: T.self, capacity: 1)
    }

    func put(_ type: some BinaryInteger, u8 value: UInt8) { mnl_attr_put_u8(header, UInt16(type), value) }
    func put(_ type: some BinaryInteger, u16 value: UInt16) { mnl_attr_put_u16(header, UInt16(type), value) }
    func put(_ type: some BinaryInteger, u32 value: UInt32) { mnl_attr_put_u32(header, UInt16(type), value) }
    func put(_ type: some BinaryInteger, string value: String) { mnl_attr_put_strz(header, UInt16(type), value) }
    func put(_ type: some BinaryInteger, bytes: [UInt8]) {
        bytes.withUnsafeBytes { mnl_attr_put(header, UInt16(type), $0.count, $0.baseAddress) }
    }

    /// An address attribute in network order: 4 bytes for IPv4, 16 for IPv6 (no allocation).
    func put(_ type: some BinaryInteger, address: IPAddress) {
        switch address.family {
        case .v4: put(type, u32: UInt32(truncatingIfNeeded: address.value).bigEndian)
        case .v6: withUnsafeBytes(of: address.value.bigEndian) { mnl_attr_put(header, UInt16(type), 16, $0.baseAddress) }
        }
    }

    /// A nested attribute: `body` adds its members.
    func nest(_ type: some BinaryInteger, _ body: () -> Void) {
        let start = mnl_attr_nest_start(header, UInt16(type))
        body()
        mnl_attr_nest_end(header, start)
    }

    var length: Int { Int(header.pointee.nlmsg_len) }
    var bytes: UnsafeRawPointer { UnsafeRawPointer(buffer) }
}

/// Reads the attributes of a received message into a small table by type.
struct NetlinkAttributes {
    private(set) var values: [UInt16: UnsafeRawBufferPointer] = [:]

    init(_ header: UnsafePointer<nlmsghdr>, familyHeaderSize: Int) {
        var table: [UInt16: UnsafeRawBufferPointer] = [:]
        withUnsafeMutablePointer(to: &table) { pointer in
            _ = mnl_attr_parse(header, UInt32(familyHeaderSize), { attribute, context in
                guard let attribute, let context else { return MNL_CB_OK }
                let table = context.assumingMemoryBound(to: [UInt16: UnsafeRawBufferPointer].self)
                let type = mnl_attr_get_type(attribute)
                table.pointee[type] = UnsafeRawBufferPointer(
                    start: mnl_attr_get_payload(attribute), count: Int(mnl_attr_get_payload_len(attribute)))
                return MNL_CB_OK
            }, pointer)
        }
        values = table
    }

    /// Attributes nested inside `payload` (e.g. IFLA_LINKINFO).
    init(nested payload: UnsafeRawBufferPointer) {
        var table: [UInt16: UnsafeRawBufferPointer] = [:]
        var offset = 0
        while offset + 4 <= payload.count {
            let length = Int(payload.load(fromByteOffset: offset, as: UInt16.self))
            let type = payload.load(fromByteOffset: offset + 2, as: UInt16.self) & 0x3FFF
            guard length >= 4, offset + length <= payload.count else { break }
            table[type] = UnsafeRawBufferPointer(rebasing: payload[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        values = table
    }

    subscript(_ type: some BinaryInteger) -> UnsafeRawBufferPointer? { values[UInt16(type)] }

    func string(_ type: some BinaryInteger) -> String? {
        guard let raw = self[type] else { return nil }
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }

    func u32(_ type: some BinaryInteger) -> UInt32? {
        guard let raw = self[type], raw.count >= 4 else { return nil }
        return raw.loadUnaligned(as: UInt32.self)
    }

    func bytes(_ type: some BinaryInteger) -> [UInt8]? { self[type].map(Array.init) }

    /// An address attribute of `family` (nil when absent or of the other size).
    func address(_ type: some BinaryInteger, _ family: IPFamily) -> IPAddress? {
        guard let raw = self[type], raw.count == family.bitWidth / 8 else { return nil }
        switch family {
        case .v4: return IPAddress(IPv4Address(UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self))))
        case .v6: return IPAddress(IPv6Address(value: UInt128(bigEndian: raw.loadUnaligned(as: UInt128.self))))
        }
    }
}

extension IPFamily {
    /// The family's AF_ constant.
    var addressFamily: Int32 { self == .v4 ? AF_INET : AF_INET6 }
}
