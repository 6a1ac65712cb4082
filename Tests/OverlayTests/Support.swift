import Addressing
import Foundation
import Netns
import OverlayNet
import Synchronization
import TestSupport

/// Namespaces a test makes (named `dnsdt-TOKEN-...`, see `TestRun`), removed by `close()` also on failure, and a
/// check that the machine's namespaces, links and mounts are the same afterwards.
final class NamespaceFixture: @unchecked Sendable {
    private static let counter = Atomic<Int>(0)
    let namespaces = NamedNamespaces()
    let thread: NamespaceThread
    /// Every name this fixture makes starts with it, so parallel tests can check for leaks of
    /// their own without seeing each other's.
    let prefix: String
    private(set) var names: [String] = []

    init() throws {
        thread = try NamespaceThread(name: "overlay-fixture")
        prefix = "\(TestRun.namePrefix)\(Self.counter.add(1, ordering: .relaxed).newValue)-"
    }

    func make(_ role: String) throws -> (name: String, handle: NamespaceHandle) {
        let name = prefix + role
        let handle = try namespaces.create(name, on: thread)
        names.append(name)
        return (name, handle)
    }

    func netlink(_ handle: NamespaceHandle?) throws -> NetlinkSocket {
        try NetlinkSocket.open(in: handle, using: thread)
    }

    func close() {
        for name in names.reversed() { try? namespaces.delete(name) }
        thread.shutdown()
    }
}

func withNamespaces<T>(_ body: (NamespaceFixture) throws -> T) throws -> T {
    let fixture = try NamespaceFixture()
    defer { fixture.close() }
    return try body(fixture)
}

/// What a test must leave as it found: named namespaces, the machine's links, mounts.
struct MachineState: Equatable {
    var namespaces: Set<String>
    var hostLinks: Set<String>
    var mounts: Set<String>

    static func now() -> MachineState {
        let names = Set(NamedNamespaces().list())
        let links = Set(((try? Shell.run(["ip", "-o", "link", "show"]).stdout) ?? "").split(separator: "\n").map {
            String($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: "@")[0])
        })
        let mounts = Set(readWhole("/proc/self/mounts").split(separator: "\n").map(String.init))
        return MachineState(namespaces: names, hostLinks: links, mounts: mounts)
    }

    /// Only what one fixture could have made: namespaces and mounts with its prefix, and links
    /// in the machine's own namespace named the way the drivers name what they make (a bridge
    /// port `ve`/`vb` + 8 hex digits, `vxlan0`, `br0`; not `ethN`, which the machine has): every such link of a test belongs
    /// in a namespace of its own, never here, and no other suite makes links of those names here.
    func ours(_ prefix: String) -> MachineState {
        MachineState(namespaces: namespaces.filter { $0.hasPrefix(prefix) },
                     hostLinks: hostLinks.filter { $0.hasPrefix(prefix) || Self.isDriverLink($0) },
                     mounts: mounts.filter { $0.contains(prefix) })
    }

    static func isDriverLink(_ name: String) -> Bool {
        if name == "vxlan0" || name == "br0" { return true }
        guard name.count == 10, name.hasPrefix("ve") || name.hasPrefix("vb") else { return false }
        return name.dropFirst(2).allSatisfy(\.isHexDigit)
    }
}

/// A whole file, /proc ones included (Foundation's `String(contentsOfFile:)` reads only the
/// first page of a /proc file, whose size shows as 0).
func readWhole(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func ip(_ text: String) -> IPv4Address { IPv4Address(text)! }
func ip6(_ text: String) -> IPAddress { IPAddress(text)! }
func ipa(_ text: String) -> IPAddress { IPAddress(text)! }
