import Foundation
import Netns
@testable import Node
import TestSupport
import Testing

/// How dnsd tells that a runtime's container is gone without being told (issue 13): a path that
/// no longer names the namespace, a namespace no process is in any more, one nobody ever joined.
@Suite("Namespace liveness")
struct NamespaceLivenessTests {
    @Test("a container namespace: alive while a process is in it, gone after the misses allowed")
    func processLeaves() throws {
        let name = TestRun.namePrefix + "live1"
        try Shell.check(["ip", "netns", "add", name])
        defer { _ = try? Shell.run(["ip", "netns", "del", name]) }
        let path = "/run/netns/\(name)"
        let inode = try NamespaceIdentity.inode(atPath: path)
        let subject = NamespaceLiveness.Subject(name: "c", path: path, inode: inode, isContainer: true)
        var liveness = NamespaceLiveness()
        let process = try ChildProcess(["ip", "netns", "exec", name, "sleep", "30"])
        #expect(try waitUntil { NamespaceIdentity.namespacesInUse().contains(inode) }, "the scan finds the process in the namespace")
        #expect(liveness.gone([subject], inUse: NamespaceIdentity.namespacesInUse()).isEmpty)
        process.stop()
        #expect(try waitUntil { !NamespaceIdentity.namespacesInUse().contains(inode) })
        #expect(liveness.gone([subject], inUse: NamespaceIdentity.namespacesInUse()).isEmpty, "one miss is allowed")
        let verdict = liveness.gone([subject], inUse: NamespaceIdentity.namespacesInUse())
        #expect(verdict.map(\.subject.name) == ["c"] && verdict.first?.reason.contains("no process") == true)
    }

    @Test("a container restarted under the same name (a new namespace, its process late) starts afresh: not gone for the old one's misses")
    func restartJoinsLate() throws {
        let old = TestRun.namePrefix + "live4", new = TestRun.namePrefix + "live5"
        try Shell.check(["ip", "netns", "add", old])
        try Shell.check(["ip", "netns", "add", new])
        defer {
            _ = try? Shell.run(["ip", "netns", "del", old])
            _ = try? Shell.run(["ip", "netns", "del", new])
        }
        var liveness = NamespaceLiveness()
        let first = NamespaceLiveness.Subject(name: "c", path: "/run/netns/\(old)", inode: try NamespaceIdentity.inode(atPath: "/run/netns/\(old)"),
                                              isContainer: true)
        // The first life: a process was in it, then left (the container stopped).
        #expect(liveness.gone([first], inUse: [first.inode]).isEmpty)
        #expect(liveness.gone([first], inUse: []).isEmpty, "one miss")
        // Restarted: same name, a new namespace, and its process takes its time to join.
        let second = NamespaceLiveness.Subject(name: "c", path: "/run/netns/\(new)", inode: try NamespaceIdentity.inode(atPath: "/run/netns/\(new)"),
                                               isContainer: true)
        for round in 0..<5 {
            #expect(liveness.gone([second], inUse: []).isEmpty, "round \(round): the new namespace owes nothing to the old one's misses")
        }
        #expect(liveness.gone([second], inUse: [second.inode]).isEmpty, "its process joined")
    }

    @Test("a path that names nothing, or another namespace, is gone at once; a plain attach needs no process")
    func pathChecks() throws {
        let name = TestRun.namePrefix + "live2"
        try Shell.check(["ip", "netns", "add", name])
        defer { _ = try? Shell.run(["ip", "netns", "del", name]) }
        let path = "/run/netns/\(name)"
        let inode = try NamespaceIdentity.inode(atPath: path)
        var liveness = NamespaceLiveness()
        let attached = NamespaceLiveness.Subject(name: "byhand", path: path, inode: inode, isContainer: false)
        let reused = NamespaceLiveness.Subject(name: "reused", path: path, inode: inode + 1, isContainer: true)
        let missing = NamespaceLiveness.Subject(name: "missing", path: "/proc/999999999/ns/net", inode: inode, isContainer: true)
        for _ in 0..<3 {
            let gone = liveness.gone([attached, reused, missing], inUse: [])
            #expect(Set(gone.map(\.subject.name)) == ["reused", "missing"], "\(gone)")
        }
    }

    @Test("a container namespace no process ever joined is gone after the grace period")
    func neverJoined() throws {
        let name = TestRun.namePrefix + "live3"
        try Shell.check(["ip", "netns", "add", name])
        defer { _ = try? Shell.run(["ip", "netns", "del", name]) }
        let path = "/run/netns/\(name)"
        let subject = NamespaceLiveness.Subject(name: "c", path: path, inode: try NamespaceIdentity.inode(atPath: path), isContainer: true)
        var liveness = NamespaceLiveness()
        let start = Date()
        #expect(liveness.gone([subject], inUse: [], now: start).isEmpty)
        #expect(liveness.gone([subject], inUse: [], now: start.addingTimeInterval(29)).isEmpty)
        #expect(liveness.gone([subject], inUse: [], now: start.addingTimeInterval(31)).map(\.subject.name) == ["c"])
    }

    private func waitUntil(_ condition: () throws -> Bool) throws -> Bool {
        for _ in 0..<100 {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }
}
