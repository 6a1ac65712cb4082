import CoreMetrics
import Foundation
import Metrics
import Prometheus
import BuildInfo
import Node
import Resolver

/// The daemon's metrics, through the swift-metrics API with swift-prometheus as its backend,
/// served by `MetricsServer` at `GET /metrics` in Prometheus's text format. Counters that are
/// kept elsewhere as plain totals (the responder's, the hosts files') are brought up to date at
/// each scrape by the amount they grew; the forwarder reports each answer's latency and each
/// failed try as it happens (forwarding is the slow path).
final class DaemonMetrics: ForwardObserver, @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let sample: @Sendable () -> MetricsSample
    private let lock = NSLock()
    /// Last total pushed into each counter, by its label and dimensions.
    private var pushed: [String: UInt64] = [:]
    private var counters: [String: CoreMetrics.Counter] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    /// Gauges set at the last scrape (one no longer reported is set to 0).
    private var lastGauges: Set<String> = []
    private let forwardDuration: CoreMetrics.Timer

    static let forwardBuckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                             .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                             .milliseconds(500), .seconds(1), .seconds(2), .seconds(5)]

    /// Installs the Prometheus backend for the process (once: the daemon or serve-dns).
    init(sample: @escaping @Sendable () -> MetricsSample) {
        self.sample = sample
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = ["dnsd_dns_forward_duration_seconds": Self.forwardBuckets]
        MetricsSystem.bootstrap(factory)
        forwardDuration = CoreMetrics.Timer(label: "dnsd_dns_forward_duration_seconds")
    }

    // MARK: ForwardObserver (the serving loop's thread)

    func answered(by upstream: SocketAddress, afterNanoseconds nanoseconds: UInt64) {
        forwardDuration.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func failed(upstream: SocketAddress) {
        lock.withLock { counter("dnsd_dns_forward_failures_total", [("upstream", upstream.description)]) }.increment()
    }

    // MARK: scrape

    /// The exposition text, after bringing every metric up to date.
    func render() -> [UInt8] {
        let now = sample()
        lock.withLock {
            for entry in now.dns {
                push("dnsd_dns_queries_total", [("path", entry.path.label), ("rcode", Self.rcodeName(entry.rcode))], total: entry.count)
            }
            var current: Set<String> = []
            func gauge(_ label: String, _ dimensions: [(String, String)], _ value: Double) {
                let key = Self.key(label, dimensions)
                current.insert(key)
                gauges[key, default: CoreMetrics.Gauge(label: label, dimensions: dimensions)].record(value)
            }
            if let endpoints = now.endpoints {
                for (network, counts) in endpoints {
                    gauge("dnsd_endpoints", [("network", network), ("scope", "local")], Double(counts.local))
                    gauge("dnsd_endpoints", [("network", network), ("scope", "remote")], Double(counts.remote))
                }
            }
            gauge("dnsd_build_info", [("version", BuildInfo.version), ("commit", BuildInfo.commit), ("build_date", BuildInfo.buildDate)], 1)
            if let value = now.sandboxes { gauge("dnsd_sandboxes", [], Double(value)) }
            if let value = now.storeUp { gauge("dnsd_store_up", [], value ? 1 : 0) }
            if let value = now.pendingWithdrawals { gauge("dnsd_pending_withdrawals", [], Double(value)) }
            if let value = now.watchRevision { gauge("dnsd_store_watch_revision", [], Double(value)) }
            if let value = now.lastStoreEvent { gauge("dnsd_store_seconds_since_last_event", [], Date().timeIntervalSince(value)) }
            if let value = now.storeEvents { push("dnsd_store_events_total", [], total: UInt64(value)) }
            if let value = now.watchedNetworks { gauge("dnsd_watched_networks", [], Double(value)) }
            if let value = now.hostsFileWrites { push("dnsd_hosts_file_writes_total", [], total: UInt64(value)) }
            if let value = now.hostsFileRepairs { push("dnsd_hosts_file_repairs_total", [], total: UInt64(value)) }
            if let value = now.peerProgrammingErrors { push("dnsd_peer_programming_errors_total", [], total: UInt64(value)) }
            // A network that went: its gauges read 0 rather than their last value.
            for key in lastGauges.subtracting(current) { gauges[key]?.record(0) }
            lastGauges = current
        }
        return registry.emitToBuffer()
    }

    /// Under `lock`: the counter for `label` and `dimensions`, made once.
    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = Self.key(label, dimensions)
        if let existing = counters[key] { return existing }
        let made = CoreMetrics.Counter(label: label, dimensions: dimensions)
        counters[key] = made
        return made
    }

    /// Under `lock`: moves a counter up to `total` (a total kept elsewhere).
    private func push(_ label: String, _ dimensions: [(String, String)], total: UInt64) {
        let key = Self.key(label, dimensions)
        let before = pushed[key] ?? 0
        let made = counter(label, dimensions)
        if total > before { made.increment(by: Int64(clamping: total - before)) }
        pushed[key] = max(before, total)
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// The code's name as dig prints it (NOERROR, NXDOMAIN...), from the wire codec's own table.
    static func rcodeName(_ rcode: Int) -> String { ResponseCode(rawValue: UInt16(rcode)).description }
}
