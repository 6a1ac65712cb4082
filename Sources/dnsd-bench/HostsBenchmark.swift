import Addressing
import Foundation
import HostsWriter
import Logging

/// `dnsd-bench hosts DIR SANDBOXES PEERS ROUNDS`: SANDBOXES hosts files on one network with
/// PEERS peers; then ROUNDS times one peer is added and removed, each change reaching every
/// file. Measured side by side with the naive way (render the whole file and rewrite it in
/// place, what a simple writer or Docker 1.9 does) on the same number of files.
enum HostsBenchmark {
    static func run(directory: String, sandboxes: Int, peers: Int, rounds: Int) throws {
        let network = try HostLabel("vnet")
        let writer = HostsWriter(mode: .dns, hostResolvConf: ResolvConf(nameservers: ["198.18.0.53"]), logger: Logger(label: "bench"))
        func address(_ i: Int) -> IPv4Address { IPv4Address(UInt32(0xC0A8_0000) + UInt32(i + 2)) }
        for s in 0..<sandboxes {
            let files = HostsWriter.Files(hosts: "\(directory)/s\(s)/hosts", resolvConf: "\(directory)/s\(s)/resolv.conf")
            try writer.addSandbox("s\(s)", files: files, hostname: try HostLabel("s\(s)"))
            writer.attach("s\(s)", to: network, ownAddresses: [address(s)])
        }
        let rssBefore = residentMiB()
        let setupStart = Date()
        // In batches of 100, as the daemon gets them from a store watch or listing.
        for batch in stride(from: 0, to: peers, by: 100) {
            writer.update(removing: [], setting: try (batch..<min(peers, batch + 100)).map { p in
                ("p\(p)", network, EndpointRecord(name: try HostLabel("peer\(p)"), aliases: [try HostLabel("svc\(p % 10)")], ipv4: [address(1000 + p)]))
            })
        }
        let setup = Date().timeIntervalSince(setupStart)
        let rssAfter = residentMiB()
        let fileSize = (try FileManager.default.attributesOfItem(atPath: "\(directory)/s0/hosts")[.size] as? Int) ?? 0

        func bytes() -> Int { (0..<sandboxes).reduce(0) { $0 + (writer.statistics("s\($1)")?.bytesWritten ?? 0) } }
        var addTimes: [Double] = [], removeTimes: [Double] = [], addBytes: [Int] = [], removeBytes: [Int] = []
        var middleRemoveTimes: [Double] = [], middleRemoveBytes: [Int] = [], reuseTimes: [Double] = [], reuseBytes: [Int] = []
        for r in 0..<rounds {
            let record = EndpointRecord(name: try HostLabel("newpeer\(r)"), ipv4: [address(5000 + r)])
            var before = bytes()
            var start = Date()
            writer.setEndpoint("new\(r)", on: network, record)
            addTimes.append(Date().timeIntervalSince(start))
            addBytes.append(bytes() - before)
            before = bytes()
            start = Date()
            writer.removeEndpoint("new\(r)", from: network)
            removeTimes.append(Date().timeIntervalSince(start))
            removeBytes.append(bytes() - before)
            // A peer in the middle of the file goes, and comes back into its freed slot.
            let middle = EndpointRecord(name: try HostLabel("peer\(r)"), aliases: [try HostLabel("svc\(r % 10)")], ipv4: [address(1000 + r)])
            before = bytes()
            start = Date()
            writer.removeEndpoint("p\(r)", from: network)
            middleRemoveTimes.append(Date().timeIntervalSince(start))
            middleRemoveBytes.append(bytes() - before)
            before = bytes()
            start = Date()
            writer.setEndpoint("p\(r)", on: network, middle)
            reuseTimes.append(Date().timeIntervalSince(start))
            reuseBytes.append(bytes() - before)
        }

        // The naive peer: every change renders the full file and rewrites it (truncate + write).
        var naiveTimes: [Double] = []
        var naiveBytes = 0
        let lines = (0..<peers).map { "\(address(1000 + $0))\tpeer\($0) peer\($0).vnet svc\($0 % 10) svc\($0 % 10).vnet" }
        for r in 0..<rounds {
            let content = Data(((["127.0.0.1\tlocalhost"] + lines + ["\(address(5000 + r))\tnewpeer\(r) newpeer\(r).vnet"]).joined(separator: "\n") + "\n").utf8)
            let start = Date()
            for s in 0..<sandboxes {
                let handle = FileHandle(forUpdatingAtPath: "\(directory)/naive\(s)") ?? {
                    _ = FileManager.default.createFile(atPath: "\(directory)/naive\(s)", contents: nil)
                    return FileHandle(forUpdatingAtPath: "\(directory)/naive\(s)")!
                }()
                try handle.truncate(atOffset: 0)
                try handle.write(contentsOf: content)
                try handle.close()
            }
            naiveTimes.append(Date().timeIntervalSince(start))
            naiveBytes = content.count * sandboxes
        }
        for s in 0..<sandboxes { writer.removeSandbox("s\(s)", deleteFiles: true) }

        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        func medianInt(_ values: [Int]) -> Int { values.sorted()[values.count / 2] }
        let perFile = { (t: Double) in t / Double(sandboxes) * 1e6 }
        print("hosts files: \(sandboxes) sandboxes on one network, \(peers) peers, each file \(fileSize) bytes; set-up (the peers in batches of 100) \(String(format: "%.2f", setup)) s")
        print(String(format: "memory: RSS %.0f MiB before the peers, %.0f MiB after: %.1f bytes per hosts-file line (%d lines)",
                     rssBefore, rssAfter, (rssAfter - rssBefore) * 1_048_576 / Double(max(1, sandboxes * peers)), sandboxes * peers))
        func row(_ label: String, _ columns: [String]) {
            print(label.padding(toLength: 34, withPad: " ", startingAt: 0)
                + columns.map { String(repeating: " ", count: max(0, 16 - $0.count)) + $0 }.joined())
        }
        row("one peer, across all files", ["total ms", "us per file", "bytes per file"])
        for (label, times, written) in [("dnsd add (median of \(rounds))", addTimes, medianInt(addBytes)),
                                        ("dnsd remove, last in file", removeTimes, medianInt(removeBytes)),
                                        ("dnsd remove, middle of file", middleRemoveTimes, medianInt(middleRemoveBytes)),
                                        ("dnsd add into a freed slot", reuseTimes, medianInt(reuseBytes)),
                                        ("naive full rewrite (median)", naiveTimes, naiveBytes)] {
            row(label, [String(format: "%.2f", median(times) * 1e3), String(format: "%.1f", perFile(median(times))),
                        String(format: "%.1f", Double(written) / Double(sandboxes))])
        }
        print(String(format: "add: %.1fx faster and %.0fx fewer bytes than a full rewrite; aim well under 1000 us per file: %@",
                     median(naiveTimes) / median(addTimes), Double(naiveBytes) / Double(max(1, medianInt(addBytes))),
                     (perFile(median(addTimes)) < 1000 ? "PASS" : "FAIL") as NSString))
    }
}

/// This process's resident memory (VmRSS) in MiB.
func residentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kib / 1024
}
