import ClusterState
import Foundation

/// The daemon's API: one case per command, each with its typed inputs. Every front-end (the
/// CLI through the HTTP API, the HTTP API itself for curl, later the CNI and Docker plugins)
/// builds one of these; `Daemon.perform` carries it out and answers a `CommandResult`.
enum Command: Sendable {
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

    /// Whether the command changes anything (refused while the store is unreachable).
    var changes: Bool {
        switch self {
        case .listSandboxes, .inspectSandbox, .dnsView: false
        default: true
        }
    }
}

/// `POST /v1/networks`
struct NetworkCreation: Codable, Sendable {
    var name: String
    var driver: String?
    var subnet: String
    var gateway: String?
}

/// `POST /v1/sandboxes` (`dnsd run`)
struct SandboxCreation: Codable, Sendable {
    var name: String
    var hostname: String?
    var network: String?
    var aliases: [String]?
    var ip: String?
}

/// `POST /v1/sandboxes/attach` (`dnsd attach`)
struct SandboxAdoption: Codable, Sendable {
    var name: String
    var netns: String
    var network: String
    var hostsFile: String?
    var aliases: [String]?
}

/// `POST /v1/sandboxes/NAME/networks` (`dnsd network connect`)
struct NetworkConnection: Codable, Sendable {
    var network: String
    var aliases: [String]?
    var ip: String?
}

/// What a command answers.
enum CommandResult: Sendable {
    case network(NetworkRecord)
    case networks([NetworkRecord])
    case networkDetail(NetworkDetail)
    case sandbox(SandboxInfo)
    case sandboxes([SandboxInfo])
    case removed(Removed)
    case dnsView(DNSView)

    /// The JSON body of the HTTP answer.
    func json() throws -> Data {
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
        }
    }
}

/// A network and its endpoints (`GET /v1/networks/NAME`).
struct NetworkDetail: Codable, Sendable {
    var network: NetworkRecord
    var endpoints: [EndpointState]
}

/// One sandbox of this host (`GET /v1/sandboxes/NAME`).
struct SandboxInfo: Codable, Sendable {
    struct Attachment: Codable, Sendable {
        var network: String
        var driver: String
        var interface: String
        var address: String
        var mac: String
        /// Whether its names are published (false for the nameless default and gateway bridges).
        var named: Bool
    }
    var name: String
    var hostname: String
    var aliases: [String]
    var netns: String
    var hostsFile: String
    var resolvConf: String
    var adopted: Bool
    var attachments: [Attachment]
}

/// What was removed (`DELETE`, `stop`).
struct Removed: Codable, Sendable {
    var name: String
}

/// What a sandbox's resolver answers (`GET /v1/sandboxes/NAME/dns`): its networks, in the order
/// a short name is looked up, and the names each offers.
struct DNSView: Codable, Sendable {
    struct Network: Codable, Sendable {
        var name: String
        var subnet: String
        var names: [Name]
    }
    struct Name: Codable, Sendable {
        var name: String
        var aliases: [String]
        var address: String
        var host: String
    }
    var sandbox: String
    var resolver: String
    var networks: [Network]
}

/// A refusal with its HTTP status; `message` is the one line the CLI prints.
struct APIError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var description: String { message }

    static func badRequest(_ message: String) -> APIError { APIError(status: 400, message: message) }
    static func notFound(_ message: String) -> APIError { APIError(status: 404, message: message) }
    static func conflict(_ message: String) -> APIError { APIError(status: 409, message: message) }
    static func unavailable(_ message: String) -> APIError { APIError(status: 503, message: message) }
}
