/// What one endpoint (a sandbox's attachment to a network) publishes: its name, aliases and
/// addresses on that network. The resolver answers from it and the hosts files list it.
public struct EndpointRecord: Hashable, Sendable {
    public var name: HostLabel
    public var aliases: [HostLabel]
    public var ipv4: [IPv4Address]
    public var ipv6: [IPv6Address]

    public init(name: HostLabel, aliases: [HostLabel] = [], ipv4: [IPv4Address] = [], ipv6: [IPv6Address] = []) {
        self.name = name
        self.aliases = aliases
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }
}

