import ClusterState
import Foundation

/// The daemon's API: one case per command, each with its typed inputs. Every front-end (the
/// CLI through the HTTP API, the HTTP API itself for curl, later the CNI and Docker plugins)
/// builds one of these; `Daemon.perform` carries it out and answers a `CommandResult`.
public enum Command: Sendable {
    case createNetwork(NetworkCreation)
    case listNetworks
    case inspectNetwork(String)
    case removeNetwork(String)
    case run(SandboxCreation)
    case attach(SandboxAdoption)
    case connect(sandbox: String, NetworkConnection)
    case disconnect(sandbox: String, network: String)
    case stop(String)
    case remove(String)
    case listSandboxes
    case inspectSandbox(String)
    case dnsView(String)
    /// A runtime's container joins a network (a CNI `ADD`); keyed by the runtime's container id.
    case attachContainer(ContainerAttach)
    /// A container leaves a network (a CNI `DEL`); done when it is already gone.
    case detachContainer(containerID: String, network: String)
    /// A container's attachment as the kernel has it now (a CNI `CHECK`).
    case checkContainer(containerID: String, network: String)

    /// Whether the command changes anything (refused while the store is unreachable).
    public var changes: Bool {
        switch self {
        case .listSandboxes, .inspectSandbox, .dnsView, .checkContainer: false
        default: true
        }
    }
}

/// `POST /v1/networks`
public struct NetworkCreation: Codable, Sendable {
    public var name: String
    public var driver: String?
    public var subnet: String
    public var gateway: String?
    public init(name: String, driver: String?, subnet: String, gateway: String?) {
        self.name = name
        self.driver = driver
        self.subnet = subnet
        self.gateway = gateway
    }
}

/// `POST /v1/sandboxes` (`dnsd run`)
public struct SandboxCreation: Codable, Sendable {
    public var name: String
    public var hostname: String?
    public var network: String?
    public var aliases: [String]?
    public var ip: String?
    public init(name: String, hostname: String?, network: String?, aliases: [String]?, ip: String?) {
        self.name = name
        self.hostname = hostname
        self.network = network
        self.aliases = aliases
        self.ip = ip
    }
}

/// `POST /v1/sandboxes/attach` (`dnsd attach`)
public struct SandboxAdoption: Codable, Sendable {
    public var name: String
    public var netns: String
    public var network: String
    public var hostsFile: String?
    public var aliases: [String]?
    public init(name: String, netns: String, network: String, hostsFile: String?, aliases: [String]?) {
        self.name = name
        self.netns = netns
        self.network = network
        self.hostsFile = hostsFile
        self.aliases = aliases
    }
}

/// `POST /v1/sandboxes/NAME/networks` (`dnsd network connect`)
public struct NetworkConnection: Codable, Sendable {
    public var network: String
    public var aliases: [String]?
    public var ip: String?
    public init(network: String, aliases: [String]?, ip: String?) {
        self.network = network
        self.aliases = aliases
        self.ip = ip
    }
}

/// `POST /v1/containers/ID/networks`: a namespace a container runtime made joins `network` as
/// `interface`. The first attachment of a container adopts its namespace as a sandbox named
/// `name`; later ones (a container on several networks) connect that sandbox.
public struct ContainerAttach: Codable, Sendable {
    /// The runtime's container id (CNI_CONTAINERID): what later calls name the container by.
    public var containerID: String
    /// The namespace's path (CNI_NETNS): /run/netns/..., /proc/PID/ns/net, ...
    public var netns: String
    /// The interface name inside it (CNI_IFNAME).
    public var interface: String
    public var network: String
    /// The container's name (its DNS name); the container id when nil.
    public var name: String?
    /// A requested address (CNI_ARGS `IP=`, runtimeConfig.ips).
    public var ip: String?
    public var aliases: [String]?
    /// A hosts file the runtime bind-mounts as the container's /etc/hosts, kept in place.
    public var hostsFile: String?
    public init(containerID: String, netns: String, interface: String, network: String, name: String?, ip: String?,
                aliases: [String]?, hostsFile: String?) {
        self.containerID = containerID
        self.netns = netns
        self.interface = interface
        self.network = network
        self.name = name
        self.ip = ip
        self.aliases = aliases
        self.hostsFile = hostsFile
    }
}

/// A container's attachment to one network, as a runtime needs it back (a CNI result).
public struct ContainerAttachment: Codable, Sendable {
    public var containerID: String
    /// The sandbox's (and the container's DNS) name.
    public var name: String
    public var network: String
    public var netns: String
    public var interface: String
    public var mac: String
    /// The address with its prefix length, e.g. 192.168.0.2/24.
    public var address: String
    public var gateway: String
    /// What the container's resolv.conf should say: 127.0.0.11 and the network as search
    /// domain with the DNS responder, the host's servers in hosts mode.
    public var nameservers: [String]
    public var search: [String]
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
        }
    }
}

/// A network and its endpoints (`GET /v1/networks/NAME`).
public struct NetworkDetail: Codable, Sendable {
    public var network: NetworkRecord
    public var endpoints: [EndpointState]
}

/// One sandbox of this host (`GET /v1/sandboxes/NAME`).
public struct SandboxInfo: Codable, Sendable {
    public struct Attachment: Codable, Sendable {
        public var network: String
        public var driver: String
        public var interface: String
        public var address: String
        public var mac: String
        /// Whether its names are published (false for the nameless default and gateway bridges).
        public var named: Bool
    }
    public var name: String
    public var hostname: String
    public var aliases: [String]
    public var netns: String
    public var hostsFile: String
    public var resolvConf: String
    public var adopted: Bool
    public var attachments: [Attachment]
}

/// What was removed (`DELETE`, `stop`).
public struct Removed: Codable, Sendable {
    public var name: String
}

/// What a sandbox's resolver answers (`GET /v1/sandboxes/NAME/dns`): its networks, in the order
/// a short name is looked up, and the names each offers.
public struct DNSView: Codable, Sendable {
    public struct Network: Codable, Sendable {
        public var name: String
        public var subnet: String
        public var names: [Name]
    }
    public struct Name: Codable, Sendable {
        public var name: String
        public var aliases: [String]
        public var address: String
        public var host: String
    }
    public var sandbox: String
    public var resolver: String
    public var networks: [Network]
}

/// A refusal with its HTTP status; `message` is the one line the CLI prints.
public struct APIError: Error, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var description: String { message }

    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    public static func badRequest(_ message: String) -> APIError { APIError(status: 400, message: message) }
    public static func notFound(_ message: String) -> APIError { APIError(status: 404, message: message) }
    public static func conflict(_ message: String) -> APIError { APIError(status: 409, message: message) }
    public static func unavailable(_ message: String) -> APIError { APIError(status: 503, message: message) }
}
