import Addressing
import Foundation
@testable import HostsWriter
import Logging
import Netns
import Synchronization
import TestSupport

func label(_ text: String) -> HostLabel { try! HostLabel(text) }

/// A temporary directory and, on demand, named namespaces whose hosts files live at
/// /etc/netns/NAME (so `ip netns exec` bind-mounts them). `close()` removes all of it.
final class HostsFixture: @unchecked Sendable {
    private static let counter = Atomic<Int>(0)
    let directory: String
    let namespaces = NamedNamespaces()
    let thread: NamespaceThread
    private(set) var created: [String] = []

    init() throws {
        directory = TestRun.temporaryPath("hosts")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        thread = try NamespaceThread(name: "hosts-fixture")
    }

    func files(_ name: String) -> HostsWriter.Files {
        HostsWriter.Files(hosts: "\(directory)/\(name)/hosts", resolvConf: "\(directory)/\(name)/resolv.conf")
    }

    /// A named namespace; its files are the default /etc/netns/NAME ones.
    func namespace() throws -> (name: String, files: HostsWriter.Files) {
        let name = "\(TestRun.namePrefix)h\(Self.counter.add(1, ordering: .relaxed).newValue)"
        try namespaces.create(name, on: thread)
        created.append(name)
        return (name, .namedNamespace(name))
    }

    func writer(mode: NameMode = .dns, host: ResolvConf = ResolvConf(nameservers: ["198.18.0.53"], search: ["example.internal"])) -> HostsWriter {
        HostsWriter(mode: mode, hostResolvConf: host, logger: Logger(label: "test"))
    }

    func close() {
        for name in created {
            try? namespaces.delete(name)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
        }
        try? FileManager.default.removeItem(atPath: directory)
        thread.shutdown()
    }
}

func withHostsFixture<T>(_ body: (HostsFixture) throws -> T) throws -> T {
    let fixture = try HostsFixture()
    defer { fixture.close() }
    return try body(fixture)
}

/// The live (non-comment) lines of a hosts file, whitespace folded.
func liveLines(_ path: String) -> [String] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
}

func inode(_ path: String) -> UInt64 {
    var st = stat()
    stat(path, &st)
    return UInt64(st.st_ino)
}

func record(_ name: String, _ ip: String, aliases: [String] = []) -> EndpointRecord {
    EndpointRecord(name: label(name), aliases: aliases.map(label), ipv4: [IPv4Address(ip)!])
}
