import Addressing
import Foundation
@testable import HostsWriter
import TestSupport
import Testing

@Suite("Hosts files: the user's lines survive, broken files are repaired", .timeLimit(.minutes(5)))
struct RepairTests {
    static let vnet = label("vnet")

    private func setUp(_ fx: HostsFixture) throws -> (HostsWriter, String) {
        let files = fx.files("a")
        try FileManager.default.createDirectory(atPath: (files.hosts as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "10.1.1.1 above\n".write(toFile: files.hosts, atomically: false, encoding: .utf8)
        let writer = fx.writer()
        try writer.addSandbox("a", files: files, hostname: label("c01"))
        writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
        for i in 2..<12 { writer.setEndpoint("e\(i)", on: Self.vnet, record("c\(i)", "192.168.0.\(i + 1)")) }
        return (writer, files.hosts)
    }

    private func expectIntact(_ path: String, user: [String], peers: ClosedRange<Int> = 2...11, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = liveLines(path)
        for line in user { #expect(lines.contains(line), "user line \(line) kept", sourceLocation: sourceLocation) }
        for i in peers { #expect(lines.contains("192.168.0.\(i + 1) c\(i) c\(i).vnet"), "peer c\(i)", sourceLocation: sourceLocation) }
        #expect(lines.filter { $0 == "127.0.0.1 localhost" }.count == 1, sourceLocation: sourceLocation)
    }

    @Test("lines above the marker survive every update")
    func userLinesSurvive() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            for i in 2..<12 { writer.removeEndpoint("e\(i)", from: Self.vnet) }
            for i in 2..<12 { writer.setEndpoint("e\(i)", on: Self.vnet, record("c\(i)", "192.168.0.\(i + 1)")) }
            expectIntact(path, user: ["10.1.1.1 above"])
            #expect(liveLines(path).first == "10.1.1.1 above")
            #expect(writer.statistics("a")!.repairs == 0)
        }
    }

    @Test("a line the user appended at the end is kept (moved above the marker) on the next update")
    func appendedLine() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            let handle = FileHandle(forWritingAtPath: path)!
            handle.seekToEndOfFile()
            handle.write(Data("10.2.2.2 appended\n".utf8))
            try handle.close()
            writer.setEndpoint("e20", on: Self.vnet, record("c20", "192.168.0.21"))
            expectIntact(path, user: ["10.1.1.1 above", "10.2.2.2 appended"], peers: 2...11)
            #expect(liveLines(path).contains("192.168.0.21 c20 c20.vnet"))
            #expect(writer.statistics("a")!.repairs == 1)
            let marker = liveLines(path).firstIndex(of: "127.0.0.1 localhost")!
            #expect(liveLines(path).firstIndex(of: "10.2.2.2 appended")! < marker)
        }
    }

    @Test("a file replaced by the user (new inode) is rebuilt with the user's new lines and every entry")
    func replacedFile() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            try "10.3.3.3 replaced\n".write(toFile: path, atomically: true, encoding: .utf8)  // rename over: new inode
            let replacedInode = inode(path)
            writer.removeEndpoint("e11", from: Self.vnet)
            expectIntact(path, user: ["10.3.3.3 replaced"], peers: 2...10)
            #expect(!liveLines(path).contains { $0.contains("c11") })
            #expect(!liveLines(path).contains("10.1.1.1 above"))  // the user replaced that away
            #expect(inode(path) == replacedInode, "rebuilt in place in the user's new file")
        }
    }

    @Test("a corrupted file (managed part cut, garbage written) is repaired without losing the user's lines")
    func corruptedFile() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let cut = String(text.prefix(text.count / 2)) + "\u{0}\u{1}garbage\n"
            try cut.write(toFile: path, atomically: false, encoding: .utf8)
            writer.setEndpoint("e12", on: Self.vnet, record("c12", "192.168.0.13"))
            expectIntact(path, user: ["10.1.1.1 above"], peers: 2...12)
        }
    }

    @Test("an update that cannot be written is reported, and the next update writes it too")
    func failedWrite() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)  // open(O_WRONLY) fails
            #expect(writer.setEndpoint("e12", on: Self.vnet, record("c12", "192.168.0.13")).count == 1)
            #expect(writer.removeEndpoint("e2", from: Self.vnet).count == 1)
            try FileManager.default.removeItem(atPath: path)
            #expect(writer.setEndpoint("e13", on: Self.vnet, record("c13", "192.168.0.14")).isEmpty)
            expectIntact(path, user: [], peers: 3...13)
            #expect(!liveLines(path).contains { $0.contains("c2 ") })
            #expect(liveLines(path).contains("192.168.0.2 c01"), "own line")
        }
    }

    @Test("a deleted file is recreated on the next update")
    func deletedFile() throws {
        try withHostsFixture { fx in
            let (writer, path) = try setUp(fx)
            try FileManager.default.removeItem(atPath: path)
            writer.setEndpoint("e12", on: Self.vnet, record("c12", "192.168.0.13"))
            expectIntact(path, user: [], peers: 2...12)
        }
    }
}

@Suite("resolv.conf and the hosts-mode file path", .timeLimit(.minutes(5)))
struct ResolvConfTests {
    static let vnet = label("vnet")

    @Test("dns mode: nameserver 127.0.0.11, ndots:0, the host's search domains")
    func dnsMode() throws {
        try withHostsFixture { fx in
            let writer = fx.writer(mode: .dns, host: ResolvConf(nameservers: ["127.0.0.53", "198.18.0.53"], search: ["corp.example", "example"]))
            try writer.addSandbox("a", files: fx.files("a"), hostname: label("c01"))
            let lines = liveLines(fx.files("a").resolvConf)
            #expect(lines == ["search corp.example example", "nameserver 127.0.0.11", "options ndots:0"])
        }
    }

    @Test("hosts mode: the host's real, non-loopback nameservers (or the configured upstreams)")
    func hostsMode() throws {
        try withHostsFixture { fx in
            let host = ResolvConf(nameservers: ["127.0.0.53", "198.18.0.53", "198.18.0.54"], search: ["corp.example"])
            let writer = fx.writer(mode: .hosts, host: host)
            try writer.addSandbox("a", files: fx.files("a"), hostname: label("c01"))
            #expect(liveLines(fx.files("a").resolvConf) == ["search corp.example", "nameserver 198.18.0.53", "nameserver 198.18.0.54"])
            let upstreams = HostsWriter(mode: .hosts, hostResolvConf: host, upstreams: ["198.18.0.99"], logger: .init(label: "t"))
            try upstreams.addSandbox("b", files: fx.files("b"), hostname: label("c02"))
            #expect(liveLines(fx.files("b").resolvConf).contains("nameserver 198.18.0.99"))
            #expect(!liveLines(fx.files("b").resolvConf).contains("nameserver 198.18.0.53"))
        }
    }

    @Test("hosts mode: with no responder anywhere, getent resolves every name from the hosts file")
    func hostsModeResolves() throws {
        try withHostsFixture { fx in
            let writer = fx.writer(mode: .hosts)
            let ns = try fx.namespace()
            try writer.addSandbox(ns.name, files: ns.files, hostname: label("c01"))
            writer.attach(ns.name, to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
            writer.setEndpoint("e1", on: Self.vnet, record("c01", "192.168.0.2"))
            writer.setEndpoint("e2", on: Self.vnet, record("c02", "192.168.0.3", aliases: ["db"]))
            for (name, ip) in [("c02", "192.168.0.3"), ("c02.vnet", "192.168.0.3"), ("db.vnet", "192.168.0.3"), ("c01.vnet", "192.168.0.2")] {
                let result = try Shell.run(["ip", "netns", "exec", ns.name, "getent", "hosts", name])
                #expect(result.stdout.hasPrefix(ip), "\(name)")
            }
            // Nothing listens at 127.0.0.11 in this sandbox, and resolv.conf does not point there.
            #expect(!liveLines(ns.files.resolvConf).contains("nameserver 127.0.0.11"))
        }
    }

    @Test("names are validated before anything is written: newline, space, '#', over 63 characters")
    func validation() throws {
        for bad in ["c0\n1.2.3.4 evil", "c 01", "c#01", String(repeating: "a", count: 64), "", "-c01", "c01.", "c_01"] {
            #expect(throws: HostLabel.Invalid.self) { try HostLabel(bad) }
            let message = "\((try? HostLabel(bad)).map { _ in "" } ?? { do { _ = try HostLabel(bad); return "" } catch { return "\(error)" } }())"
            #expect(!message.contains("\n"), "one line: \(message)")
        }
        #expect(try HostLabel("C-01").text == "c-01")
    }
}
