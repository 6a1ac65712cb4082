import ClusterState
@_exported import ControlAPI
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


