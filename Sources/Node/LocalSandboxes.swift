import Addressing
import ClusterState
import HostsWriter
import OverlayNet
import Resolver
import Store

/// One attachment of a local sandbox, as made here and as published.
struct LocalAttachment {
    var network: NetworkRecord
    var endpoint: AttachedEndpoint
    /// Nil for the nameless default bridge and the gateway bridge: nothing published.
    var published: EndpointState?
}

/// A sandbox running on this host.
struct LocalSandbox {
    var name: HostLabel
    var hostname: HostLabel
    var aliases: [HostLabel]
    var sandbox: Sandbox
    var id: SandboxID
    var attachments: [LocalAttachment] = []
    /// Whether dnsd made the namespace (run) or adopted it (attach).
    var adopted: Bool
    /// A runtime's own hosts file (attach --hosts-file).
    var hostsFile: String? = nil
    /// The runtime's id of the container whose namespace this is (CNI), nil otherwise.
    var containerID: String? = nil
    /// The namespace's nsfs inode when adopted: a path that now names another namespace (a
    /// reused /proc/PID) is not this sandbox's any more.
    var namespaceInode: UInt64? = nil
    /// The lease its claims were last written under: one written under an older lease (the
    /// lease lapsed and was renewed while this sandbox was being made) is published again.
    var lease: LeaseID? = nil

    /// Its hosts file and resolv.conf: /etc/netns/NAME, with a runtime's own hosts file instead
    /// when it has one.
    var files: HostsWriter.Files {
        var files = HostsWriter.Files.namedNamespace(name.text)
        if let hostsFile { files.hosts = hostsFile }
        return files
    }

    /// Whether its hosts file and resolv.conf are dnsd's own, deleted with it: /etc/netns/NAME of
    /// a sandbox `run` made, or of a runtime's container (nothing else reads them). A namespace
    /// adopted with `dnsd attach` keeps its files, which `ip netns exec` shows and a user may
    /// have written to, and a runtime's own hosts file stays.
    var ownsFiles: Bool { Self.ownsFiles(adopted: adopted, containerID: containerID, hostsFile: hostsFile) }

    /// The same rule for a journal entry of a sandbox that is gone.
    static func ownsFiles(adopted: Bool, containerID: String?, hostsFile: String?) -> Bool {
        !adopted || (containerID != nil && hostsFile == nil)
    }

    /// Networks whose names this sandbox resolves, in attachment order.
    var namedNetworks: [HostLabel] {
        attachments.compactMap { $0.published == nil ? nil : try? $0.network.label }
    }
}

extension LocalSandbox {
    /// What the journal keeps of this sandbox.
    var journalEntry: SandboxJournal.Entry {
        SandboxJournal.Entry(name: name.text, hostname: hostname.text, aliases: aliases.map(\.text), netnsPath: sandbox.namespace.path,
                             hostsFile: hostsFile, adopted: adopted, endpoints: attachments.compactMap(\.published),
                             containerID: containerID, namespaceInode: namespaceInode)
    }
}
