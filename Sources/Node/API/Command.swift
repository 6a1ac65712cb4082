import Addressing
import ClusterState
@_exported import ControlAPI
import Foundation

/// The daemon's API: one case per command, each with its inputs parsed (names are `HostLabel`s,
/// addresses `IPv4Address`es, subnets `IPv4Subnet`s). Every front-end (the control API for the
/// CLI, curl and the CNI plugin; the Docker plugin) builds one of these from its own wire format
/// (`Command+Parsing.swift` for the control API's bodies), and `Daemon.perform` carries it out.
public enum Command: Sendable {
    case createNetwork(NetworkSpec)
    case listNetworks
    case inspectNetwork(HostLabel)
    case removeNetwork(HostLabel)
    case run(RunSpec)
    case attach(AdoptionSpec)
    case connect(sandbox: HostLabel, ConnectionSpec)
    case disconnect(sandbox: HostLabel, network: HostLabel)
    case stop(HostLabel)
    case remove(HostLabel)
    case listSandboxes
    case inspectSandbox(HostLabel)
    case dnsView(HostLabel)
    /// A runtime's container joins a network (a CNI `ADD`); keyed by the runtime's container id.
    case attachContainer(ContainerSpec)
    /// A container leaves a network (a CNI `DEL`); done when it is already gone.
    case detachContainer(ContainerID, network: HostLabel)
    /// A container's attachment as the kernel has it now (a CNI `CHECK`).
    case checkContainer(ContainerID, network: HostLabel)
    /// Docker's IPAM driver: an address of the dnsd network whose subnet is `pool` (the gateway,
    /// or a claim of this host).
    case dockerRequestAddress(pool: IPSubnet, requested: IPAddress?, gateway: Bool)
    case dockerReleaseAddress(pool: IPSubnet, IPAddress)
    /// Docker's network driver: an endpoint with the addresses Docker took from the IPAM (IPv6
    /// on a dual-stack network).
    case dockerCreateEndpoint(DockerEndpointID, address: IPv4Address, address6: IPAddress?)
    /// `sandboxKey`: where Docker makes the container's namespace (an absolute path, or none).
    case dockerJoin(DockerEndpointID, sandboxKey: String?)
    /// `Leave` (`delete` false) or `DeleteEndpoint` (true).
    case dockerLeave(DockerEndpointID, delete: Bool)

    /// Whether the command changes anything (refused while the store is unreachable).
    public var changes: Bool {
        switch self {
        case .listNetworks, .inspectNetwork, .listSandboxes, .inspectSandbox, .dnsView, .checkContainer: false
        default: true
        }
    }
}

/// `network create`.
public struct NetworkSpec: Sendable {
    public var name: HostLabel
    public var driver: NetworkRecord.Driver
    /// The IPv4 subnet (nil: an IPv6-only network).
    public var subnet: IPv4Subnet?
    public var gateway: IPv4Address?
    /// A dual-stack or IPv6-only network's IPv6 prefix and gateway.
    public var subnet6: IPSubnet? = nil
    public var gateway6: IPAddress? = nil
}

/// `run`.
public struct RunSpec: Sendable {
    public var name: HostLabel
    public var hostname: HostLabel
    public var network: HostLabel?
    public var aliases: [HostLabel]
    /// Requested addresses, at most one per family (`--ip`, `--ip6`).
    public var addresses: [IPAddress] = []
}

/// `attach`: a namespace someone else made.
public struct AdoptionSpec: Sendable {
    public var name: HostLabel
    public var netns: String
    public var network: HostLabel
    public var hostsFile: String?
    public var aliases: [HostLabel]
}

/// `network connect`.
public struct ConnectionSpec: Sendable {
    public var network: HostLabel
    /// Replaces the sandbox's aliases when given.
    public var aliases: [HostLabel]?
    public var addresses: [IPAddress] = []
}

/// A runtime's container id: what CNI and containerd allow (letters, digits, `_.-`), 1-128.
public struct ContainerID: Hashable, Sendable, CustomStringConvertible {
    public let text: String
    public var description: String { text }

    public init(_ text: String) throws {
        let allowed = text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        guard (1...128).contains(text.utf8.count), allowed else {
            throw NodeError.invalid("invalid container id '\(text.prefix(140))': 1-128 letters, digits, '_', '.' or '-'")
        }
        self.text = text
    }
}

/// Docker's endpoint id (64 hex digits; anything non-empty and printable is taken).
public struct DockerEndpointID: Hashable, Sendable, CustomStringConvertible {
    public let text: String
    public var description: String { text }

    public init(_ text: String) throws {
        guard (1...128).contains(text.utf8.count), text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") }) else {
            throw NodeError.invalid("invalid endpoint id '\(text.prefix(140))'")
        }
        self.text = text
    }
}

/// A CNI `ADD`.
public struct ContainerSpec: Sendable {
    public var id: ContainerID
    public var netns: String
    /// The interface name inside the namespace (CNI_IFNAME), checked as Linux checks one.
    public var interface: String
    public var network: HostLabel
    /// The sandbox's (and its DNS) name: the container's name, or its id.
    public var name: HostLabel
    public var addresses: [IPAddress] = []
    public var aliases: [HostLabel]?
    public var hostsFile: String?
}

/// What a command answers.
public enum CommandResult: Sendable {
    case network(NetworkRecord)
    case networks([NetworkRecord])
    case networkDetail(NetworkDetail)
    case sandbox(SandboxInfo)
    case sandboxes([SandboxInfo])
    case removed(Removed)
    case dnsView(DNSView)
    case containerAttachment(ContainerAttachment)
    /// Docker's IPAM: an address with its prefix length ("192.168.0.2/24").
    case dockerAddress(String)
    /// Docker's CreateEndpoint: the MAC dnsd gives the endpoint.
    case dockerEndpoint(mac: String)
    /// Docker's Join: the interface to move into the container, and the network's gateway.
    case dockerJoined(interface: String, gateway: String)
    /// Done, with nothing to say.
    case done

    /// The JSON body of the HTTP answer.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        switch self {
        case .network(let value): return try encoder.encode(value)
        case .networks(let value): return try encoder.encode(value)
        case .networkDetail(let value): return try encoder.encode(value)
        case .sandbox(let value): return try encoder.encode(value)
        case .sandboxes(let value): return try encoder.encode(value)
        case .removed(let value): return try encoder.encode(value)
        case .dnsView(let value): return try encoder.encode(value)
        case .containerAttachment(let value): return try encoder.encode(value)
        case .dockerAddress(let value): return try encoder.encode(["Address": value])
        case .dockerEndpoint(let mac): return try encoder.encode(["MacAddress": mac])
        case .dockerJoined(let interface, let gateway): return try encoder.encode(["InterfaceName": interface, "Gateway": gateway])
        case .done: return Data("{}".utf8)
        }
    }
}
