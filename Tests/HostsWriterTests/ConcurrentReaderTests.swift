import Addressing
import Foundation
@testable import HostsWriter
import TestSupport
import Testing

/// DESIGN.md §5: "a process reading it at any moment sees every entry that exists both before
/// and after the update". A reader inside `ip netns exec` (so it reads through the bind mount,
/// as any process in the sandbox does) re-reads /etc/hosts in a tight loop while thousands of
/// adds and removes happen, and checks every read.
@Suite("Hosts files: a concurrent reader never sees a torn or missing line", .timeLimit(.minutes(5)))
struct ConcurrentReaderTests {
    static let vnet = label("vnet")

    /// Checks each read: every stable entry present with its exact names, and every live line
    /// one of the lines that can exist (a torn line would show as an unknown name or address).
    static let reader = #"""
    import os, sys, time
    path, stop, stable_count, universe_count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    def line(i, prefix): return f"192.168.{i // 250 + (0 if prefix == 's' else 100)}.{i % 250 + 1} {prefix}{i} {prefix}{i}.vnet"
    stable = {line(i, "s") for i in range(stable_count)}
    allowed = stable | {line(i, "p") for i in range(universe_count)} | {
        "127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", "fe00::0 ip6-localnet",
        "ff00::0 ip6-mcastprefix", "ff02::1 ip6-allnodes", "ff02::2 ip6-allrouters", "192.168.0.1 reader"}
    reads = violations = 0
    versions = set()
    first = ""
    while not os.path.exists(stop) or reads < 100:
        with open(path) as f:
            text = f.read()
        reads += 1
        versions.add(hash(text))
        live = {" ".join(l.split()) for l in text.split("\n") if l.strip() and not l.startswith("#")}
        bad = [l for l in live if l not in allowed]
        missing = stable - live
        if bad or missing:
            violations += 1
            if not first: first = f"bad={bad[:3]} missing={sorted(missing)[:3]}"
    # versions: how many different contents were seen, i.e. how far the reads overlapped the churn
    print(f"reads={reads} versions={len(versions)} violations={violations} {first}")
    """#

    @Test("3000 adds and removes under a reader holding the bind mount")
    func readerSeesConsistentFile() throws {
        try withHostsFixture { fx in
            let writer = fx.writer()
            let ns = try fx.namespace()
            try writer.addSandbox(ns.name, files: ns.files, hostname: label("reader"))
            writer.attach(ns.name, to: Self.vnet, ownAddresses: [IPv4Address("192.168.0.1")!])
            let stableCount = 50, universe = 300
            func ip(_ i: Int, _ base: Int) -> String { "192.168.\(i / 250 + base).\(i % 250 + 1)" }
            for i in 0..<stableCount { writer.setEndpoint("s\(i)", on: Self.vnet, record("s\(i)", ip(i, 0))) }

            let script = fx.directory + "/reader.py"
            try Self.reader.write(toFile: script, atomically: true, encoding: .utf8)
            let stop = fx.directory + "/stop"
            let output = fx.directory + "/reader.out"
            let reader = try ChildProcess(["ip", "netns", "exec", ns.name, "python3", script, "/etc/hosts", stop,
                                           "\(stableCount)", "\(universe)"], output: output)
            defer { reader.stop() }
            usleep(200_000)

            // Churn: peers come and go in a pseudo-random order; stable ones never change.
            var rng = SystemRandomNumberGenerator()
            var present = Set<Int>()
            for _ in 0..<3000 {
                let i = Int.random(in: 0..<universe, using: &rng)
                if present.remove(i) != nil {
                    writer.removeEndpoint("p\(i)", from: Self.vnet)
                } else {
                    writer.setEndpoint("p\(i)", on: Self.vnet, record("p\(i)", ip(i, 100)))
                    present.insert(i)
                }
            }
            FileManager.default.createFile(atPath: stop, contents: nil)
            for _ in 0..<500 where reader.isRunning { usleep(10_000) }
            let report = try String(contentsOfFile: output, encoding: .utf8)
            print("concurrent reader: \(report.trimmingCharacters(in: .whitespacesAndNewlines))")
            let fields = Dictionary(uniqueKeysWithValues: report.split(separator: " ").compactMap { part -> (String, Int)? in
                let kv = part.split(separator: "=")
                return kv.count == 2 ? (String(kv[0]), Int(kv[1].trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1) : nil
            })
            #expect(fields["violations"] == 0, "\(report)")
            // The reads overlapped the churn: the reader saw the file change many times (not just
            // before or after it).
            #expect((fields["versions"] ?? 0) >= 10, "\(report)")
            // And the final file is exactly the model.
            let live = Set(liveLines(ns.files.hosts))
            for i in present { #expect(live.contains("\(ip(i, 100)) p\(i) p\(i).vnet")) }
            #expect(live.filter { $0.contains(" p") }.count == present.count)
            #expect(writer.statistics(ns.name)!.repairs == 0)
        }
    }

    @Test("the reader check can fail: a naive truncate-and-rewrite is caught")
    func controlNaiveRewriteIsCaught() throws {
        try withHostsFixture { fx in
            let ns = try fx.namespace()
            let path = ns.files.hosts
            try FileManager.default.createDirectory(atPath: "/etc/netns/\(ns.name)", withIntermediateDirectories: true)
            func render(_ peers: [Int]) -> String {
                (["127.0.0.1\tlocalhost"] + (0..<50).map { "192.168.0.\($0 + 1)\ts\($0) s\($0).vnet" }
                    + peers.map { "192.168.100.\($0 + 1)\tp\($0) p\($0).vnet" }).joined(separator: "\n") + "\n"
            }
            try render([]).write(toFile: path, atomically: false, encoding: .utf8)
            let script = fx.directory + "/reader.py"
            try Self.reader.write(toFile: script, atomically: true, encoding: .utf8)
            let stop = fx.directory + "/stop"
            let output = fx.directory + "/reader.out"
            let reader = try ChildProcess(["ip", "netns", "exec", ns.name, "python3", script, "/etc/hosts", stop, "50", "300"], output: output)
            defer { reader.stop() }
            usleep(200_000)
            // What a simple writer does: open with O_TRUNC and write the new content.
            for round in 0..<3000 {
                let handle = FileHandle(forUpdatingAtPath: path)!
                try handle.truncate(atOffset: 0)
                try handle.write(contentsOf: Data(render(Array(0..<(round % 200))).utf8))
                try handle.close()
            }
            FileManager.default.createFile(atPath: stop, contents: nil)
            for _ in 0..<500 where reader.isRunning { usleep(10_000) }
            let report = try String(contentsOfFile: output, encoding: .utf8)
            print("control (naive rewrite): \(report.trimmingCharacters(in: .whitespacesAndNewlines))")
            let fields = Dictionary(uniqueKeysWithValues: report.split(separator: " ").compactMap { part -> (String, Int)? in
                let kv = part.split(separator: "=")
                return kv.count == 2 ? (String(kv[0]), Int(kv[1].trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1) : nil
            })
            // The reader ran, overlapped the churn, and caught the naive writer.
            #expect((fields["versions"] ?? 0) >= 10, "\(report)")
            #expect((fields["violations"] ?? 0) > 0, "the naive writer should have been caught: \(report)")
        }
    }
}
