import FoundationEssentials

/// The bodies of the control API's requests and replies (JSON), shared by the daemon and its
/// clients: the CLI, the CNI plugin, curl.

/// `POST /v1/networks`
public struct NetworkCreation: Codable, Sendable {
    public var name: String
    public var driver: String?
    public var subnet: String
    public var gateway: String?
    /// A dual-stack network's IPv6 prefix and gateway.
    public var subnet6: String?
    public var gateway6: String?
    public init(name: String, driver: String?, subnet: String, gateway: String?, subnet6: String? = nil, gateway6: String? = nil) {
        self.name = name
        self.driver = driver
        self.subnet = subnet
        self.gateway = gateway
        self.subnet6 = subnet6
        self.gateway6 = gateway6
    }
}

/// `POST /v1/sandboxes` (`dnsd run`)
public struct SandboxCreation: Codable, Sendable {
    public var name: String
    public var hostname: String?
    public var network: String?
    public var aliases: [String]?
    public var ip: String?
    /// A requested IPv6 address (`--ip6`) on a dual-stack network.
    public var ip6: String?
    public init(name: String, hostname: String?, network: String?, aliases: [String]?, ip: String?, ip6: String? = nil) {
        self.ip6 = ip6
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
    public var ip6: String?
    public init(network: String, aliases: [String]?, ip: String?, ip6: String? = nil) {
        self.ip6 = ip6
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
    /// Requested addresses (CNI_ARGS `IP=`, runtimeConfig.ips): `ip` IPv4, `ip6` IPv6.
    public var ip: String?
    public var ip6: String?
    public var aliases: [String]?
    /// A hosts file the runtime bind-mounts as the container's /etc/hosts, kept in place.
    public var hostsFile: String?
    public init(containerID: String, netns: String, interface: String, network: String, name: String?, ip: String?,
                ip6: String? = nil, aliases: [String]?, hostsFile: String?) {
        self.ip6 = ip6
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
    /// The IPv4 address with its prefix length, e.g. 192.168.0.2/24 ("" on an IPv6-only network).
    public var address: String
    /// Its IPv6 address with its prefix length on a dual-stack network (fd00:db8:1::2/64).
    public var address6: String?
    public var gateway: String
    /// What the container's resolv.conf should say: 127.0.0.11 and the network as search
    /// domain with the DNS responder, the host's servers in hosts mode.
    public var nameservers: [String]
    public var search: [String]
    /// The container's way out: its leg on the host's gateway bridge with the default route
    /// (overlay networks; nil on a bridge network, which routes out itself).
    public var egress: Egress?
    /// Whether this attachment carries the container's default route, through `gateway` (the
    /// first network of a container, when it is a bridge network: its bridge NATs the way out).
    public var defaultRoute: Bool?

    public struct Egress: Codable, Sendable {
        public var interface: String
        public var mac: String
        public var address: String
        public var gateway: String
        public init(interface: String, mac: String, address: String, gateway: String) {
            self.interface = interface
            self.mac = mac
            self.address = address
            self.gateway = gateway
        }
    }

    public init(containerID: String, name: String, network: String, netns: String, interface: String, mac: String, address: String,
                address6: String? = nil, gateway: String, nameservers: [String], search: [String], egress: Egress? = nil,
                defaultRoute: Bool = false) {
        self.address6 = address6
        self.egress = egress
        self.defaultRoute = defaultRoute ? true : nil
        self.containerID = containerID
        self.name = name
        self.network = network
        self.netns = netns
        self.interface = interface
        self.mac = mac
        self.address = address
        self.gateway = gateway
        self.nameservers = nameservers
        self.search = search
    }
}

/// One sandbox of this host (`GET /v1/sandboxes/NAME`).
public struct SandboxInfo: Codable, Sendable {
    public struct Attachment: Codable, Sendable {
        public var network: String
        public var driver: String
        public var interface: String
        public var address: String
        /// Its IPv6 address on a dual-stack network.
        public var address6: String?
        public var mac: String
        /// Whether its names are published (false for the nameless default and gateway bridges).
        public var named: Bool
        public init(network: String, driver: String, interface: String, address: String, address6: String? = nil, mac: String, named: Bool) {
            self.address6 = address6
            self.network = network
            self.driver = driver
            self.interface = interface
            self.address = address
            self.mac = mac
            self.named = named
        }
    }
    public var name: String
    public var hostname: String
    public var aliases: [String]
    public var netns: String
    public var hostsFile: String
    public var resolvConf: String
    public var adopted: Bool
    public var attachments: [Attachment]
    public init(name: String, hostname: String, aliases: [String], netns: String, hostsFile: String, resolvConf: String, adopted: Bool, attachments: [Attachment]) {
        self.name = name
        self.hostname = hostname
        self.aliases = aliases
        self.netns = netns
        self.hostsFile = hostsFile
        self.resolvConf = resolvConf
        self.adopted = adopted
        self.attachments = attachments
    }
}

/// What was removed (`DELETE`, `stop`).
public struct Removed: Codable, Sendable {
    public var name: String
    public init(name: String) {
        self.name = name
    }
}

/// What a sandbox's resolver answers (`GET /v1/sandboxes/NAME/dns`): its networks, in the order
/// a short name is looked up, and the names each offers.
public struct DNSView: Codable, Sendable {
    public struct Network: Codable, Sendable {
        public var name: String
        public var subnet: String
        /// A dual-stack network's IPv6 prefix.
        public var subnet6: String?
        public var names: [Name]
        public init(name: String, subnet: String, subnet6: String? = nil, names: [Name]) {
            self.name = name
            self.subnet = subnet
            self.subnet6 = subnet6
            self.names = names
        }
    }
    public struct Name: Codable, Sendable {
        public var name: String
        public var aliases: [String]
        public var address: String
        /// Its IPv6 address (AAAA), if it has one.
        public var address6: String?
        public var host: String
        public init(name: String, aliases: [String], address: String, address6: String? = nil, host: String) {
            self.address6 = address6
            self.name = name
            self.aliases = aliases
            self.address = address
            self.host = host
        }
    }
    public var sandbox: String
    public var resolver: String
    public var networks: [Network]
    public init(sandbox: String, resolver: String, networks: [Network]) {
        self.sandbox = sandbox
        self.resolver = resolver
        self.networks = networks
    }
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
