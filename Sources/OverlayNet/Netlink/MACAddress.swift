import Addressing

/// A 48-bit Ethernet address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// The MAC derived from an IPv4 address, as Docker does: 02:42 (locally administered,
    /// unicast) followed by the four address bytes. Deterministic, so every host computes the
    /// same MAC for a remote endpoint without asking.
    public init(derivedFrom address: IPv4Address) {
        let b = address.bytes
        bytes = [0x02, 0x42, b.0, b.1, b.2, b.3]
    }

    /// The same for an address of either family: an IPv6 address (an endpoint of an IPv6-only
    /// network, whose addresses differ in their low 32 bits: the IPAM hands out no others) gives
    /// 02:43 and its low four bytes, apart from every IPv4-derived MAC.
    public init(derivedFrom address: IPAddress) {
        if let v4 = address.v4 {
            self.init(derivedFrom: v4)
        } else {
            let low = UInt32(truncatingIfNeeded: address.value)
            self.init(bytes: [0x02, 0x43, UInt8(low >> 24), UInt8(truncatingIfNeeded: low >> 16), UInt8(truncatingIfNeeded: low >> 8),
                              UInt8(truncatingIfNeeded: low)])!
        }
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public var description: String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
    }
}
