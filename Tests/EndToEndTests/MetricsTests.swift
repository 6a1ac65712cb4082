import ClusterHarness
import Foundation
import TestSupport
import Testing

/// `dnsd daemon --metrics ADDR:PORT` (issue 12): Prometheus's text format, parsed line by line;
/// the counters move as queries are made; the state gauges say what the daemon has.
@Suite("Metrics: GET /metrics in Prometheus's text format", .serialized, .timeLimit(.minutes(5)))
struct MetricsTests {
    /// One sample line: name, labels, value.
    struct Sample: Equatable { var name: String; var labels: [String: String]; var value: Double }

    /// Parses the exposition text (format 0.0.4); nil when a line is not valid.
    static func parse(_ text: String) -> (samples: [Sample], types: [String: String])? {
        var samples: [Sample] = [], types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4 else { return nil }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            var labels: [String: String] = [:]
            let name: Substring
            if let brace = series.firstIndex(of: "{") {
                guard series.last == "}" else { return nil }
                name = series[..<brace]
                for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") where !pair.isEmpty {
                    guard let equals = pair.firstIndex(of: "="), pair.last == "\"", pair[pair.index(after: equals)] == "\"" else { return nil }
                    labels[String(pair[..<equals])] = String(pair[pair.index(equals, offsetBy: 2)..<pair.index(before: pair.endIndex)])
                }
            } else {
                name = series
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { return nil }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        return (samples, types)
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
    }

    @Test("the text parses; queries, forwards, endpoints, sandboxes, store and hosts-file metrics say what happened")
    func scrape() throws {
        let cluster = try ClusterHarness(hosts: 2, daemonOptions: ["--metrics", "127.0.0.1:9153"])
        defer { cluster.close() }
        let host = cluster.hosts[0].name
        func scrape(_ path: String = "/metrics") throws -> (status: Int, text: String) {
            let out = try Shell.check(["nsenter", "--net=/run/netns/\(host)", "curl", "-s", "-m", "5", "-w", "\n%{http_code}",
                                       "http://127.0.0.1:9153\(path)"], timeout: 15)
            let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.96.0/24", "mnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=mnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=mnet"]).status == 0)
        #expect(try cluster.eventually(5) { try cluster.exec(a, ["dig", "+short", "\(b).mnet", "@127.0.0.11"]).stdout.contains("192.168.96.") })
        let before = try #require(Self.parse(try scrape().text), "the exposition text did not parse")
        let local0 = Self.value(before.samples, "dnsd_dns_queries_total", ["path": "local", "rcode": "NOERROR"]) ?? 0
        for _ in 0..<5 { _ = try cluster.exec(a, ["dig", "+short", "\(b).mnet", "@127.0.0.11"]) }
        for _ in 0..<3 { _ = try cluster.exec(a, ["dig", "+short", "nosuch.mnet", "@127.0.0.11"]) }
        for _ in 0..<2 { _ = try cluster.exec(a, ["dig", "+short", "+tries=1", "outside.test", "@127.0.0.11"]) }
        let (status, text) = try scrape()
        #expect(status == 200)
        let after = try #require(Self.parse(text), "the exposition text did not parse: \(text.prefix(2000))")
        let samples = after.samples
        #expect((Self.value(samples, "dnsd_dns_queries_total", ["path": "local", "rcode": "NOERROR"]) ?? 0) - local0 == 5, "\(text)")
        #expect((Self.value(samples, "dnsd_dns_queries_total", ["path": "local", "rcode": "NXDOMAIN"]) ?? 0) >= 3)
        #expect((Self.value(samples, "dnsd_dns_queries_total", ["path": "forwarded", "rcode": "SERVFAIL"]) ?? 0) >= 2)
        #expect((Self.value(samples, "dnsd_dns_forward_failures_total", ["upstream": "127.0.0.1:9"]) ?? 0) >= 2)
        #expect(after.types["dnsd_dns_queries_total"] == "counter" && after.types["dnsd_dns_forward_duration_seconds"] == "histogram")
        #expect(Self.value(samples, "dnsd_endpoints", ["network": "mnet", "scope": "local"]) == 1)
        #expect(Self.value(samples, "dnsd_endpoints", ["network": "mnet", "scope": "remote"]) == 1)
        #expect(Self.value(samples, "dnsd_sandboxes") == 1)
        #expect(Self.value(samples, "dnsd_store_up") == 1)
        #expect((Self.value(samples, "dnsd_store_watch_revision") ?? 0) > 0)
        #expect((Self.value(samples, "dnsd_store_seconds_since_last_event") ?? -1) >= 0)
        #expect((Self.value(samples, "dnsd_hosts_file_writes_total") ?? 0) > 0)
        #expect(Self.value(samples, "dnsd_peer_programming_errors_total") == 0)
        // b stops: the remote endpoint gauge follows.
        #expect(try cluster.dnsd(2, ["stop", b]).status == 0)
        #expect(try cluster.eventually(3) { Self.value(Self.parse(try scrape().text)?.samples ?? [], "dnsd_endpoints", ["network": "mnet", "scope": "remote"]) == 0 })
        #expect(try scrape("/other").status == 404)
    }
}
