import Addressing

/// Answers PTR queries for endpoint addresses: `d.c.b.a.in-addr.arpa` and the 32-nibble
/// `ip6.arpa` form map back to `name.network.`.
///
/// An address inside any cluster network's prefix, IPv4 subnet or IPv6 prefix alike, is
/// internal: if it is not an endpoint on one of the sandbox's networks the answer is NXDOMAIN,
/// never a forward (the upstream knows nothing of it, and asking would leak the overlay's
/// layout). That holds for a network the sandbox is not attached to as well: its endpoints
/// are not this sandbox's to see. Addresses outside every prefix, and names that are not a
/// well-formed reverse name (a label of two characters, a nibble that is not hex, 33 labels),
/// go to the next link and so upstream. Hex nibbles arrive lower-cased (the parser folds the
/// name's case, as DNS names are case-insensitive), so `B.8.D.0...ip6.arpa` is the same name
/// as `b.8.d.0...ip6.arpa`.
public struct ReverseResolver: QueryResolver {
    public let ttl: UInt32

    public init(ttl: UInt32) { self.ttl = ttl }

    public func resolve(_ request: inout Request) -> Resolution {
        let name = request.query.name
        if name.labelCount == 6, Self.equals(name.label(4), "in-addr"), Self.equals(name.label(5), "arpa"),
           let address = Self.ipv4(name)
        {
            return answer(&request) { zone in zone.reverse4[address.value] } covered: { table in
                table.zones.contains { $0.covers(address) }
            }
        }
        if name.labelCount == 34, Self.equals(name.label(32), "ip6"), Self.equals(name.label(33), "arpa"),
           let address = Self.ipv6(name)
        {
            return answer(&request) { zone in zone.reverse6[address] } covered: { table in
                table.zones.contains { $0.covers(address) }
            }
        }
        return .next
    }

    private func answer(
        _ request: inout Request, lookup: (NetworkZone) -> Int32?, covered: (RecordTable) -> Bool
    ) -> Resolution {
        for zoneIndex in request.attached {
            let zone = request.table.zones[zoneIndex]
            guard let target = lookup(zone) else { continue }
            request.startAuthoritative()
            if request.query.type == .ptr || request.query.type == .any {
                let range = zone.ptrRanges[Int(target)]
                zone.ptrPool.withUnsafeBytes { pool in
                    request.writer.appendPTR(
                        target: UnsafeRawBufferPointer(rebasing: pool[Int(range.lowerBound)..<Int(range.upperBound)]),
                        ttl: ttl)
                }
            }
            return .answered(.noError)
        }
        return covered(request.table) ? request.nameError() : .next
    }

    private static func equals(_ label: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        label.count == text.utf8CodeUnitCount
            && memcmpEqual(label.baseAddress!, UnsafeRawPointer(text.utf8Start), label.count)
    }

    /// The address of `d.c.b.a.in-addr.arpa`; nil unless all four labels are decimal 0-255.
    private static func ipv4(_ name: QueryName) -> IPv4Address? {
        var value: UInt32 = 0
        for i in (0..<4).reversed() {
            let label = name.label(i)
            guard (1...3).contains(label.count) else { return nil }
            var octet: UInt32 = 0
            for byte in label {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                octet = octet * 10 + UInt32(byte - 0x30)
            }
            guard octet <= 255, label.count == 1 || label[0] != 0x30 else { return nil }
            value = value << 8 | octet
        }
        return IPv4Address(value)
    }

    /// The address of a 32-nibble ip6.arpa name (least significant nibble first); nil unless
    /// every label is one hex digit (lower case: the parser has folded the name's case).
    private static func ipv6(_ name: QueryName) -> IPv6Address? {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in (0..<32).reversed() {
            let label = name.label(i)
            guard label.count == 1 else { return nil }
            let c = label[0]
            let nibble: UInt64
            switch c {
            case 0x30...0x39: nibble = UInt64(c - 0x30)
            case 0x61...0x66: nibble = UInt64(c - 0x61 + 10)
            default: return nil
            }
            // Label 31 is the most significant nibble.
            if i >= 16 { high = high << 4 | nibble } else { low = low << 4 | nibble }
        }
        return IPv6Address(high: high, low: low)
    }
}
