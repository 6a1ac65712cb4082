import ClusterHarness
import Foundation
import Netns
import TestSupport
import Testing

/// The test harness's own promises (issue 16): a hung command fails instead of hanging, and the
/// sweep removes what a dead run left and nothing of a live one.
@Suite("Harness: bounded commands, sweeping dead runs", .serialized, .timeLimit(.minutes(5)))
struct HarnessTests {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    @Test("a command that hangs is killed at its time limit and the call fails")
    func shellTimeout() throws {
        let start = Date()
        #expect(throws: ShellError.self) { try Shell.run(["sleep", "30"], timeout: 0.5) }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("the sweep removes a dead run's namespaces, /etc/netns entries, links, files and processes, and leaves a live run alone")
    func sweep() throws {
        let dead = "zz" + String(TestRun.token.prefix(4))
        let directory = "/tmp/dnsdt-runs/\(dead)"
        let namespace = "dnsdt-\(dead)-left", link = "dt\(dead)l", file = "/tmp/dnsdt-e2e-\(dead)-work"
        // Whatever the sweep leaves (if the test fails) is removed here.
        defer {
            try? NamedNamespaces().delete(namespace)
            _ = try? Shell.run(["ip", "link", "del", link], timeout: 10)
            for path in [directory, "/etc/netns/\(namespace)", file] { try? FileManager.default.removeItem(atPath: path) }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The dead run's test process: a child that already exited.
        let gone = try ChildProcess(["true"])
        _ = gone.waitForExit(seconds: 5)
        try "\(gone.pid) 1\n".write(toFile: directory + "/owner", atomically: true, encoding: .utf8)
        // What it left: a process, a namespace with its /etc/netns entry, a link, a work file.
        let orphan = try ChildProcess(["sleep", "120"])
        defer { orphan.stop() }
        try "\(orphan.pid) \(Self.startTime(orphan.pid))\n".write(toFile: directory + "/pids", atomically: true, encoding: .utf8)
        let thread = try NamespaceThread(name: "sweep-test")
        defer { thread.shutdown() }
        try NamedNamespaces().create(namespace, on: thread)
        try FileManager.default.createDirectory(atPath: "/etc/netns/\(namespace)", withIntermediateDirectories: true)
        try Shell.check(["ip", "link", "add", link, "type", "veth", "peer", "name", "dt\(dead)m"], timeout: 10)
        try "\(link)\n".write(toFile: directory + "/links", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: true)
        // A live run (this one) is recorded too, with something of its own.
        let mine = "\(TestRun.namePrefix)keep"
        try NamedNamespaces().create(mine, on: thread)
        defer { try? NamedNamespaces().delete(mine) }
        TestRun.record(pid: getpid())

        let output = try Shell.check([Self.repository + "/scripts/sweep-test-runs.sh"], timeout: 60)
        #expect(output.contains("swept test run \(dead)"), "\(output)")
        #expect(!orphan.isRunning || orphan.waitForExit(seconds: 2), "the dead run's child still runs")
        #expect(!NamedNamespaces().exists(namespace))
        #expect(!FileManager.default.fileExists(atPath: "/etc/netns/\(namespace)"))
        #expect(try Shell.run(["ip", "link", "show", link], timeout: 10).status != 0)
        #expect(!FileManager.default.fileExists(atPath: file) && !FileManager.default.fileExists(atPath: directory))
        #expect(NamedNamespaces().exists(mine), "the live run's namespace was swept")
        #expect(FileManager.default.fileExists(atPath: TestRun.directory))
    }

    static func startTime(_ pid: pid_t) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return "0" }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : "0"
    }
}
