import Addressing

/// One line of a hosts file: an address and the names it answers to.
///
/// Built only from validated `HostLabel`s, so a line can never carry a newline, a space inside a
/// name or a `#`: nothing a container name can do injects a line into another sandbox's file.
public struct HostsEntry: Hashable, Sendable, CustomStringConvertible {
    public let address: String
    public let names: [String]
    /// `IP<TAB>names...`, made once: every file holding the line writes these bytes.
    public let line: String

    /// `IP name name.net alias alias.net ...`: the peer line of DESIGN.md §5, with each alias
    /// also qualified by the network so the hosts path answers what DNS answers.
    public init(address: IPAddress, name: HostLabel, network: HostLabel, aliases: [HostLabel] = []) {
        self.address = address.description
        var names = [name.text, "\(name.text).\(network.text)"]
        for alias in aliases where alias != name {
            names += [alias.text, "\(alias.text).\(network.text)"]
        }
        self.names = names
        line = Self.line(self.address, names)
    }

    public init(address: IPv4Address, name: HostLabel, network: HostLabel, aliases: [HostLabel] = []) {
        self.init(address: IPAddress(address), name: name, network: network, aliases: aliases)
    }

    public init(address: IPv6Address, name: HostLabel, network: HostLabel, aliases: [HostLabel] = []) {
        self.init(address: IPAddress(address), name: name, network: network, aliases: aliases)
    }

    /// The sandbox's own line: `IP hostname` (one per address: IPv4 and IPv6 on a dual-stack
    /// network).
    public init(address: IPAddress, hostname: HostLabel) {
        self.address = address.description
        self.names = [hostname.text]
        line = Self.line(self.address, names)
    }

    public init(address: IPv4Address, hostname: HostLabel) {
        self.init(address: IPAddress(address), hostname: hostname)
    }

    private static func line(_ address: String, _ names: [String]) -> String { "\(address)\t\(names.joined(separator: " "))" }

    /// The line's first byte: writing it over a `#` turns a prepared slot live.
    var firstByte: UInt8 { line.utf8.first! }
    public var description: String { line }
}

extension EndpointRecord {
    /// Its hosts lines on `network`: one per address.
    func entries(on network: HostLabel) -> [HostsEntry] {
        ipv4.map { HostsEntry(address: $0, name: name, network: network, aliases: aliases) }
            + ipv6.map { HostsEntry(address: $0, name: name, network: network, aliases: aliases) }
    }
}
