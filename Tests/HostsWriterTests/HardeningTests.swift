import Addressing
import Foundation
@testable import HostsWriter
import TestSupport
import Testing

/// Issue 11's regressions on hosts files: a departed peer leaves no trace of its name, and a
/// user's line survives a daemon restart wherever and however it was added.
@Suite("Hardening: hosts files", .timeLimit(.minutes(5)))
struct HostsHardeningTests {
    static let vnet = label("vnet")

    /// Whether `name` appears as a whole word anywhere in the file (what `grep -w` does).
    private func mentions(_ path: String, _ name: String) -> Bool {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }).contains { $0 == name }
    }

    @Test("a removed peer's name is gone from the file, also where its slot stays (a peer after it)")
    func removedNameLeavesNoTrace() throws {
        try withHostsFixture { fx in
            let files = fx.files("a")
            let writer = fx.writer()
            try writer.addSandbox("a", files: files, hostname: label("c01"))
            writer.attach("a", to: Self.vnet, ownAddresses: [IPv4Address("192.168.9.2")!])
            writer.setEndpoint("db", on: Self.vnet, record("db", "192.168.9.3", aliases: ["primary"]))
            writer.setEndpoint("web", on: Self.vnet, record("web", "192.168.9.4"))
            #expect(mentions(files.hosts, "db") && mentions(files.hosts, "primary"))
            writer.removeEndpoint("db", from: Self.vnet)
            #expect(!mentions(files.hosts, "db"), "\((try? String(contentsOfFile: files.hosts, encoding: .utf8)) ?? "")")
            #expect(!mentions(files.hosts, "primary"))
            #expect(!((try? String(contentsOfFile: files.hosts, encoding: .utf8)) ?? "").contains("92.168.9.3"))
            #expect(liveLines(files.hosts).contains("192.168.9.4 web web.vnet"))
            // The blanked slot is reused like any free one.
            writer.setEndpoint("api", on: Self.vnet, record("api", "192.168.9.5"))
            #expect(liveLines(files.hosts).contains("192.168.9.5 api api.vnet"))
        }
    }

    /// A file of a sandbox with peers c03...c06, left by a writer that then "stopped".
    private func fileLeftByEarlierRun(_ fx: HostsFixture) throws -> HostsWriter.Files {
        let files = fx.files("r")
        let before = fx.writer()
        try before.addSandbox("r", files: files, hostname: label("c01"))
        before.attach("r", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
        for n in 3...6 { before.setEndpoint("e\(n)", on: Self.vnet, record("c0\(n)", "192.168.0.\(n)")) }
        before.removeEndpoint("e4", from: Self.vnet)
        return files
    }

    private func resume(_ fx: HostsFixture, _ files: HostsWriter.Files) throws -> HostsWriter {
        let after = fx.writer()
        try after.addSandbox("r", files: files, hostname: label("c01"), resuming: true)
        after.attach("r", to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.2")!])
        after.setEndpoint("e3", on: Self.vnet, record("c03", "192.168.0.3"))
        after.setEndpoint("e7", on: Self.vnet, record("c07", "192.168.0.7"))
        after.sweepUnclaimed()
        return after
    }

    @Test("lines appended while the daemon was down survive its restart, with or without a final newline",
          arguments: ["10.2.2.2 appended\n", "10.2.2.2 appended", "# a comment of mine\n10.2.2.2 appended\n"])
    func appendedWhileDown(_ appended: String) throws {
        try withHostsFixture { fx in
            let files = try fileLeftByEarlierRun(fx)
            let handle = try #require(FileHandle(forWritingAtPath: files.hosts))
            handle.seekToEndOfFile()
            handle.write(Data(appended.utf8))
            try handle.close()
            let after = try resume(fx, files)
            let lines = liveLines(files.hosts)
            #expect(lines.contains("10.2.2.2 appended"), "\(lines)")
            #expect(lines.contains("192.168.0.3 c03 c03.vnet") && lines.contains("192.168.0.7 c07 c07.vnet"))
            #expect(!lines.contains { $0.contains("c05") || $0.contains("c06") }, "\(lines)")
            if appended.contains("comment") {
                #expect(((try? String(contentsOfFile: files.hosts, encoding: .utf8)) ?? "").contains("# a comment of mine"))
            }
            // Later updates (peers stopped, the file repaired) keep it too.
            after.removeEndpoint("e3", from: Self.vnet)
            after.removeEndpoint("e7", from: Self.vnet)
            #expect(liveLines(files.hosts).contains("10.2.2.2 appended"))
            #expect(!mentions(files.hosts, "c03") && !mentions(files.hosts, "c07"))
        }
    }

    @Test("a line inserted between dnsd's lines while the daemon was down survives its restart")
    func insertedWhileDown() throws {
        try withHostsFixture { fx in
            let files = try fileLeftByEarlierRun(fx)
            var text = try String(contentsOfFile: files.hosts, encoding: .utf8)
            let at = try #require(text.range(of: "192.168.0.5"))
            text.insert(contentsOf: "10.3.3.3 inserted\n", at: at.lowerBound)
            try text.write(toFile: files.hosts, atomically: false, encoding: .utf8)
            _ = try resume(fx, files)
            #expect(liveLines(files.hosts).contains("10.3.3.3 inserted"), "\(liveLines(files.hosts))")
            #expect(!liveLines(files.hosts).contains { $0.contains("c05") })
        }
    }
}
