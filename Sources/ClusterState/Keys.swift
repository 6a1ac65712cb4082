import Addressing
import Foundation

/// The cluster's state as stored (DESIGN.md §3), versioned under `dnsd/v1/`. Values are JSON;
/// a value that does not decode is skipped (and logged by the reader), never fatal.
public enum Keys {
    public static let root = "dnsd/v1/"
    public static let networks = root + "networks/"
    public static let vnis = root + "vni/"
    public static let names = root + "names/"
    public static let hosts = root + "hosts/"
    public static let endpoints = root + "endpoints/"
    public static let ipamRoot = root + "ipam/"
    public static func ipam(_ network: String) -> String { ipamRoot + "\(network)/" }
    /// Every endpoint of one network (names are labels: no prefix holds another network's).
    public static func networkEndpoints(_ network: String) -> String { endpoints + "\(network)/" }
    /// Rewritten by every address claim on a network, so that a removal which found no claims
    /// can tell, atomically, that none was made since (`ClusterRegistry.deleteNetwork`).
    /// Under no lease: every host rewrites it.
    public static func claimsMarker(_ network: HostLabel) -> String { root + "ipam-marker/\(network.text)" }

    public static func network(_ name: HostLabel) -> String { networks + name.text }
    public static func vni(_ vni: UInt32) -> String { vnis + String(vni) }
    public static func name(_ name: HostLabel) -> String { names + name.text }
    public static func host(_ id: String) -> String { hosts + id }
    public static func endpoint(_ network: HostLabel, _ id: String) -> String { endpoints + "\(network.text)/\(id)" }
    /// An address claim: `ipam/NET/192.168.0.3` or `ipam/NET/fd00:db8:1::3` (IPv6 in its RFC 5952
    /// text, so one address has one key; ':' is an ordinary byte in etcd and Consul keys).
    public static func address(_ network: HostLabel, _ address: IPAddress) -> String { ipam(network.text) + address.description }
}

/// The stored values' JSON, bounded on the way in.
enum JSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        // Bounded: a huge value written by hand is refused, not parsed.
        guard bytes.count <= 64 * 1024 else { return nil }
        return try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
