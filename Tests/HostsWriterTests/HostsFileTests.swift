import Addressing
import Foundation
@testable import HostsWriter
import TestSupport
import Testing

@Suite("Hosts files: content, scoping, in-place updates", .timeLimit(.minutes(5)))
struct HostsFileTests {
    static let vnet = label("vnet"), net2 = label("net2")

    @Test("a batch of changes on two networks: each file gets its networks' lines, a removal's slot goes to an addition of the same batch")
    func batch() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            for (sandbox, networks) in [("a", [Self.vnet]), ("b", [Self.net2]), ("both", [Self.vnet, Self.net2])] {
                try writer.addSandbox(sandbox, files: fx.files(sandbox), hostname: label(sandbox))
                for (i, network) in networks.enumerated() { writer.attach(sandbox, to: network, ownAddresses: [IPv4Address("10.9.\(i).\(sandbox.count)")!]) }
            }
            #expect(writer.update(removing: [], setting: (1...40).map { ("e\($0)", $0 % 2 == 0 ? Self.vnet : Self.net2, record("c\($0)", "192.168.0.\($0)")) }).isEmpty)
            let size = try FileManager.default.attributesOfItem(atPath: fx.files("both").hosts)[.size] as! Int
            let before = writer.statistics("both")!.bytesWritten
            // e40's line goes and e41 (a line of the same length) comes, in one batch: same slot, the file does not grow.
            #expect(writer.update(removing: [("e40", Self.vnet), ("nosuch", Self.vnet), ("e1", label("other"))],
                                  setting: [("e41", Self.vnet, record("c41", "192.168.0.41")), ("e2", Self.vnet, record("c2", "192.168.0.2"))]).isEmpty)
            #expect(try FileManager.default.attributesOfItem(atPath: fx.files("both").hosts)[.size] as! Int == size)
            #expect(writer.statistics("both")!.bytesWritten - before <= 64, "one '#' and one line")
            for (sandbox, wanted) in [("a", [Self.vnet]), ("b", [Self.net2]), ("both", [Self.vnet, Self.net2])] {
                let lines = liveLines(fx.files(sandbox).hosts)
                for i in 1...41 where i != 40 {
                    let network = i % 2 == 0 || i == 41 ? Self.vnet : Self.net2
                    #expect(lines.contains("192.168.0.\(i) c\(i) c\(i).\(network)") == wanted.contains(network), "\(sandbox): c\(i)")
                }
                #expect(!lines.contains { $0.contains("c40") })
                #expect(writer.statistics(sandbox)!.repairs == 0)
            }
        }
    }

    @Test("networks that come and go leave no table and no index page behind; a network in use keeps working")
    func networksComeAndGo() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            try writer.addSandbox("a", files: fx.files("a"), hostname: label("a"))
            writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.setEndpoint("keep", on: Self.vnet, record("keeper", "192.168.0.9"))
            for n in 0..<20 {
                let network = label("churn\(n)")
                writer.attach("a", to: network, ownAddresses: [IPv4Address("10.\(n).0.2")!])
                writer.update(removing: [], setting: (0..<600).map { ("e\($0)", network, record("p\($0)", "10.\(n).\($0 / 250 + 1).\($0 % 250 + 1)")) })
                #expect(liveLines(fx.files("a").hosts).count == 6 + 2 + 1 + 600)
                if n % 2 == 0 {
                    // The network's endpoints go first, then the sandbox leaves it.
                    writer.update(removing: (0..<600).map { ("e\($0)", network) }, setting: [])
                    writer.detach("a", from: network)
                } else {
                    // The sandbox leaves first, then the endpoints go.
                    writer.detach("a", from: network)
                    writer.update(removing: (0..<600).map { ("e\($0)", network) }, setting: [])
                }
            }
            #expect(writer.retained.tables == 1, "only vnet's")
            #expect(writer.retained.pages == 1, "vnet's one page")
            #expect(liveLines(fx.files("a").hosts) == HostsFileLayout.standardLines.map { $0.replacingOccurrences(of: "\t", with: " ") }
                + ["192.168.0.2 a", "192.168.0.9 keeper keeper.vnet"])
            // A recycled table number serves a new network correctly.
            writer.attach("a", to: Self.net2, ownAddresses: [IPv4Address("192.168.2.2")!])
            writer.setEndpoint("x", on: Self.net2, record("x", "192.168.2.3"))
            writer.setEndpoint("keep", on: Self.vnet, record("keeper2", "192.168.0.9"))
            let lines = liveLines(fx.files("a").hosts)
            #expect(lines.contains("192.168.2.3 x x.net2") && lines.contains("192.168.2.2 a") && lines.contains("192.168.0.9 keeper2 keeper2.vnet"))
            #expect(lines.count == 6 + 4)
            writer.removeSandbox("a", deleteFiles: true)
            #expect(writer.retained.tables == 2, "vnet and net2 keep their endpoints")
            writer.removeEndpoint("keep", from: Self.vnet)
            writer.removeEndpoint("x", from: Self.net2)
            #expect(writer.retained.tables == 0)
        }
    }

    @Test("standard lines, own line, one line per peer on each attached network, nothing from other networks")
    func content() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            try writer.addSandbox("a", files: fx.files("a"), hostname: label("c01"))
            try writer.addSandbox("b", files: fx.files("b"), hostname: label("c04"))
            writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.attach("b", to: Self.net2, ownAddresses: [IPv4Address("192.168.2.2")!])
            writer.setEndpoint("e1", on: Self.vnet, record("c01", "192.168.0.2"))
            writer.setEndpoint("e2", on: Self.vnet, record("c02", "192.168.0.3", aliases: ["web"]))
            writer.setEndpoint("e4", on: Self.net2, record("c04", "192.168.2.2", aliases: ["secret"]))
            let a = liveLines(fx.files("a").hosts)
            #expect(a.contains("127.0.0.1 localhost"))
            #expect(a.contains("::1 localhost ip6-localhost ip6-loopback"))
            #expect(a.contains("192.168.0.2 c01"))
            #expect(a.contains("192.168.0.2 c01 c01.vnet"))
            #expect(a.contains("192.168.0.3 c02 c02.vnet web web.vnet"))
            #expect(!a.contains { $0.contains("192.168.2.") || $0.contains("secret") || $0.contains("net2") })
            let b = liveLines(fx.files("b").hosts)
            #expect(b.contains("192.168.2.2 c04 c04.net2 secret secret.net2"))
            #expect(!b.contains { $0.contains("vnet") })
            // A sandbox attached later gets the network's existing peers.
            try writer.addSandbox("c", files: fx.files("c"), hostname: label("c09"))
            writer.attach("c", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.9")!])
            #expect(liveLines(fx.files("c").hosts).contains("192.168.0.3 c02 c02.vnet web web.vnet"))
            // Detach: the network's lines go, the standard ones stay.
            writer.detach("a", from: Self.vnet)
            let after = liveLines(fx.files("a").hosts)
            #expect(!after.contains { $0.contains("vnet") || $0.contains("c01") })
            #expect(after.contains("127.0.0.1 localhost"))
        }
    }

    @Test("getent in the sandbox (ip netns exec) sees peers appear and vanish")
    func getentInNamespace() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            let ns = try fx.namespace()
            try writer.addSandbox(ns.name, files: ns.files, hostname: label("c01"))
            writer.attach(ns.name, to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.setEndpoint("e2", on: Self.vnet, record("c02", "192.168.0.3", aliases: ["web"]))
            func getent(_ name: String) throws -> Shell.Result {
                try Shell.run(["ip", "netns", "exec", ns.name, "getent", "hosts", name])
            }
            for name in ["c02", "c02.vnet", "web", "WEB.vnet"] {
                let result = try getent(name)
                #expect(result.status == 0 && result.stdout.hasPrefix("192.168.0.3"), "\(name): \(result.stdout)")
            }
            #expect(try getent("c01").stdout.hasPrefix("192.168.0.2"))
            writer.removeEndpoint("e2", from: Self.vnet)
            #expect(try getent("c02.vnet").status == 2)
            #expect(try getent("localhost").status == 0)
        }
    }

    @Test("updates are in place (same inode) and an add writes bytes in proportion to the line, not the file")
    func incrementalInPlace() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            try writer.addSandbox("a", files: fx.files("a"), hostname: label("c00"))
            try writer.addSandbox("other", files: fx.files("other"), hostname: label("o00"))
            writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.attach("other", to: Self.net2, ownAddresses: [IPv4Address("192.168.2.2")!])
            let path = fx.files("a").hosts
            let firstInode = inode(path)
            for i in 0..<500 { writer.setEndpoint("e\(i)", on: Self.vnet, record("c\(i)", "192.168.\(1 + i / 250).\(i % 250 + 1)")) }
            let otherBefore = try String(contentsOfFile: fx.files("other").hosts, encoding: .utf8)
            let otherStamp = InPlaceFile(path: fx.files("other").hosts).stamp()
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            #expect(size > 15_000)
            let before = writer.statistics("a")!.bytesWritten
            writer.setEndpoint("new", on: Self.vnet, record("newpeer", "192.168.9.9"))
            let added = writer.statistics("a")!.bytesWritten - before
            #expect(added > 0 && added <= 64, "an add wrote \(added) bytes to a \(size)-byte file")
            writer.removeEndpoint("new", from: Self.vnet)
            let removed = writer.statistics("a")!.bytesWritten - before - added
            #expect(removed <= 1)
            #expect(inode(path) == firstInode)
            #expect(writer.statistics("a")!.repairs == 0)
            // The sandbox on another network was not touched at all.
            #expect(try String(contentsOfFile: fx.files("other").hosts, encoding: .utf8) == otherBefore)
            #expect(InPlaceFile(path: fx.files("other").hosts).stamp() == otherStamp)
            // Free slots are reused and trailing ones cut: churn does not grow the file.
            for round in 0..<20 {
                writer.setEndpoint("churn", on: Self.vnet, record("churn\(round)", "192.168.8.\(round + 1)"))
                writer.removeEndpoint("e\(round)", from: Self.vnet)
                writer.setEndpoint("e\(round)", on: Self.vnet, record("c\(round)", "192.168.1.\(round + 1)"))
            }
            let after = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            #expect(after <= size + 64)
        }
    }

    @Test("an existing file keeps its lines; a file from an earlier run loses its stale dnsd lines")
    func adoption() throws {
        try withHostsFixture { fx in
            let files = fx.files("a")
            try FileManager.default.createDirectory(atPath: (files.hosts as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "10.9.9.9 mybox # the user's\n".write(toFile: files.hosts, atomically: false, encoding: .utf8)
            do {
                let writer = fx.writer()
                try writer.addSandbox("a", files: files, hostname: label("c01"))
                writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
                writer.setEndpoint("old", on: Self.vnet, record("stale", "192.168.0.66"))
            }
            // A new writer (the daemon restarted) adopts the file: the user's line stays, the
            // stale entry goes until the new model says otherwise.
            let writer = fx.writer()
            try writer.addSandbox("a", files: files, hostname: label("c01"))
            let lines = liveLines(files.hosts)
            #expect(lines.first == "10.9.9.9 mybox # the user's")
            #expect(!lines.contains { $0.contains("stale") })
            #expect(lines.filter { $0 == "127.0.0.1 localhost" }.count == 1)
        }
    }
}

@Suite("Hosts files: a restarted daemon takes its files over", .timeLimit(.minutes(5)))
struct ResumeTests {
    static let vnet = label("vnet")

    @Test("resuming: lines still wanted are claimed without a write, the rest are swept, the user's lines stay, same inode")
    func resume() throws {
        try withHostsFixture { fx in
            let files = fx.files("a")
            let before = fx.writer()
            try before.addSandbox("a", files: files, hostname: label("c01"))
            before.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            for n in 3...6 { before.setEndpoint("e\(n)", on: Self.vnet, record("c0\(n)", "192.168.0.\(n)")) }
            before.removeEndpoint("e4", from: Self.vnet)  // leaves a free slot behind
            let text = try String(contentsOfFile: files.hosts, encoding: .utf8)
            try ("10.9.9.9 mine\n" + text).write(toFile: files.hosts, atomically: false, encoding: .utf8)
            let node = inode(files.hosts)
            let content = try String(contentsOfFile: files.hosts, encoding: .utf8)

            // A new writer (the daemon restarted): c05 left meanwhile, c07 arrived.
            let after = fx.writer()
            try after.addSandbox("a", files: files, hostname: label("c01"), resuming: true)
            after.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            after.setEndpoint("e3", on: Self.vnet, record("c03", "192.168.0.3"))
            after.setEndpoint("e6", on: Self.vnet, record("c06", "192.168.0.6"))
            #expect(after.statistics("a")?.bytesWritten == 0, "claimed lines are not written again")
            #expect(try String(contentsOfFile: files.hosts, encoding: .utf8) == content)
            after.setEndpoint("e7", on: Self.vnet, record("c07", "192.168.0.7"))
            after.sweepUnclaimed()
            let lines = liveLines(files.hosts)
            #expect(lines.contains("10.9.9.9 mine"))
            #expect(lines.contains("192.168.0.2 c01") && lines.contains("192.168.0.3 c03 c03.vnet"))
            #expect(lines.contains("192.168.0.6 c06 c06.vnet") && lines.contains("192.168.0.7 c07 c07.vnet"))
            #expect(!lines.contains { $0.contains("c05") || $0.contains("c04") }, "\(lines)")
            #expect(inode(files.hosts) == node)
            // Later changes work on the taken-over slots as on any others.
            after.removeEndpoint("e3", from: Self.vnet)
            #expect(!liveLines(files.hosts).contains { $0.contains("c03") })
        }
    }

    @Test("resuming: several unclaimed lines at the end are swept; a new entry never takes an unclaimed line's slot")
    func resumeSweepsTail() throws {
        try withHostsFixture { fx in
            let files = fx.files("t")
            let before = fx.writer()
            try before.addSandbox("t", files: files, hostname: label("c01"))
            before.attach("t", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            for n in 3...8 { before.setEndpoint("e\(n)", on: Self.vnet, record("c0\(n)", "192.168.0.\(n)")) }
            let after = fx.writer()
            try after.addSandbox("t", files: files, hostname: label("c01"), resuming: true)
            after.attach("t", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            after.setEndpoint("e3", on: Self.vnet, record("c03", "192.168.0.3"))
            // A new peer while c04..c08 still wait to be claimed: it must get a slot of its own.
            after.setEndpoint("e9", on: Self.vnet, record("c09", "192.168.0.9"))
            after.setEndpoint("e5", on: Self.vnet, record("c05", "192.168.0.5"))
            after.sweepUnclaimed()
            let lines = liveLines(files.hosts)
            for kept in ["192.168.0.3 c03 c03.vnet", "192.168.0.5 c05 c05.vnet", "192.168.0.9 c09 c09.vnet"] {
                #expect(lines.contains(kept), "\(lines)")
            }
            #expect(!lines.contains { $0.contains("c04") || $0.contains("c06") || $0.contains("c07") || $0.contains("c08") }, "\(lines)")
        }
    }

    @Test("resuming a file of another layout (no dnsd marker) keeps its lines and writes the managed part")
    func resumeForeign() throws {
        try withHostsFixture { fx in
            let files = fx.files("b")
            try FileManager.default.createDirectory(atPath: (files.hosts as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "127.0.0.1 localhost\n10.1.1.1 runtime\n".write(toFile: files.hosts, atomically: false, encoding: .utf8)
            let writer = fx.writer()
            try writer.addSandbox("b", files: files, hostname: label("c01"), resuming: true)
            writer.attach("b", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.sweepUnclaimed()
            let lines = liveLines(files.hosts)
            #expect(lines.contains("10.1.1.1 runtime") && lines.contains("192.168.0.2 c01"))
        }
    }
}
