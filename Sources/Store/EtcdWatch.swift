import Foundation
import Logging

/// Several key ranges watched at once, one stream each (`EtcdWatch`), with one liveness check
/// for all of them (`StreamLiveness`).
///
/// One stream per range rather than several create requests on one stream: etcd's JSON gateway
/// (3.4, Go's HTTP/1.1 server) discards whatever of the request body it has not read when it
/// writes its first reply, so the create requests after the first are lost whenever the gateway
/// answers the first before it has read them (verified: 31 of 200 created in one try, and
/// occasionally 1 of 3 on a busy machine), and it cannot take more requests after that.
final class EtcdRangeWatch: RangeWatch, @unchecked Sendable {
    private let endpoints: [String]
    private let logger: Logger
    private let events: @Sendable ([WatchEvent]) -> Void
    private let failed: @Sendable (StoreError) -> Void
    private let liveness: StreamLiveness
    private let streams = PrefixLoops()
    private let lock = NSLock()
    private var cancelled = false
    /// Set once one stream failed: `failed` is called once for the whole watch.
    private var failedOnce = false

    init(endpoints: [String], logger: Logger, events: @escaping @Sendable ([WatchEvent]) -> Void,
         failed: @escaping @Sendable (StoreError) -> Void) {
        self.endpoints = endpoints
        self.logger = logger
        self.events = events
        self.failed = failed
        liveness = StreamLiveness(logger: logger)
    }

    func add(prefix: String, from revision: Int64) {
        let watch = EtcdWatch(endpoints: endpoints, prefix: prefix, from: revision, liveness: liveness, logger: logger,
                              events: events, failed: { [weak self] error in self?.streamFailed(error) })
        streams.start(prefix, name: "dnsd-etcd-watch") { watch.run($0) }
    }

    func remove(prefix: String) { streams.stop(prefix) }

    func cancel() {
        lock.withLock { cancelled = true }
        streams.stopAll()
        liveness.stop()
    }

    private func streamFailed(_ error: StoreError) {
        let first = lock.withLock {
            defer { failedOnce = true }
            return !failedOnce && !cancelled
        }
        if first { failed(error) }
    }
}

/// One streaming watch of one range: a thread that keeps a `/v3/watch` POST open, splits the
/// stream on newlines, and reconnects (to the next member) from the revision after the last one
/// seen. Its silence is judged by the shared `StreamLiveness`.
final class EtcdWatch: @unchecked Sendable {
    private let endpoints: [String]
    private let prefix: String
    private let liveness: StreamLiveness
    private let logger: Logger
    private let events: @Sendable ([WatchEvent]) -> Void
    private let failed: @Sendable (StoreError) -> Void
    /// Touched only by the watch's thread.
    private var nextRevision: Int64

    init(endpoints: [String], prefix: String, from revision: Int64, liveness: StreamLiveness, logger: Logger,
         events: @escaping @Sendable ([WatchEvent]) -> Void, failed: @escaping @Sendable (StoreError) -> Void) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.nextRevision = revision
        self.liveness = liveness
        self.logger = logger
        self.events = events
        self.failed = failed
    }

    func run(_ thread: WatchThread) {
        var attempt = 0
        // A failing stream is logged once per episode (not on every reconnect while a member is down).
        var failureLogged = false
        while !thread.isCancelled {
            let endpoint = endpoints[attempt % endpoints.count]
            let client = HTTPClient(timeoutMilliseconds: 0, interruptible: true)
            thread.onCancel { client.interrupt() }
            let stream = liveness.register(endpoint: endpoint, probePrefix: prefix, client: client)
            defer { liveness.unregister(stream) }
            var buffer = Data()
            // How much of `buffer` is known to hold no newline: a message arriving in many chunks
            // (a 1 MB value) is scanned once, not once per chunk.
            var scanned = 0
            var fatal: StoreError?
            let request: [String: Any] = ["create_request": [
                "key": Data(prefix.utf8).base64EncodedString(),
                "range_end": Data(prefix.prefixRangeEnd).base64EncodedString(),
                "start_revision": String(nextRevision),
            ]]
            let body = (try? JSONSerialization.data(withJSONObject: request)) ?? Data()
            // The transfer has no overall timeout; a stream that stays silent is normal. A cancel
            // interrupts it, and so does the liveness check when the member stops answering.
            var streamError: Error?
            do { _ = try client.post("http://\(endpoint)/v3/watch", body: body, timeoutMilliseconds: 0) { [self] chunk in
                if thread.isCancelled { return false }
                liveness.heard(stream)
                failureLogged = false
                buffer.append(chunk)
                defer { scanned = buffer.count }
                while let newline = buffer[(buffer.startIndex + scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer.removeSubrange(buffer.startIndex...newline)
                    scanned = 0
                    guard !line.isEmpty else { continue }
                    guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                        logger.warning("etcd watch: skipping an unreadable message", metadata: ["prefix": "\(prefix)"])
                        continue
                    }
                    let decoded = EtcdStore.decodeEvents(object)
                    if decoded.skipped > 0 {
                        logger.warning("etcd watch: skipping events without a readable key", metadata: ["prefix": "\(prefix)", "count": "\(decoded.skipped)"])
                    }
                    if let compacted = decoded.compacted {
                        fatal = .compacted(revision: compacted)
                        return false
                    }
                    guard !decoded.events.isEmpty else { continue }
                    if let last = decoded.events.last?.entry.modRevision {
                        nextRevision = max(nextRevision, last + 1)
                    }
                    events(decoded.events)
                }
                return true
            } } catch { streamError = error }
            if let fatal {
                failed(fatal)
                return
            }
            if thread.isCancelled { return }
            if !failureLogged {
                logger.warning("etcd watch: the stream from \(endpoint) ended (\(streamError.map { "\($0)" } ?? "closed by the member")); resuming from revision \(nextRevision) on the next member", metadata: ["prefix": "\(prefix)"])
                failureLogged = true
            }
            attempt += 1
            // The member went away or the stream ended: back off briefly, then resume.
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}

/// The liveness check of a watch's streams. A silent stream is normal (nothing changed), and so
/// it cannot tell a quiet cluster from a member that vanished without a reset (power loss, a
/// partition): it would wait forever while other requests quietly move to other members. So
/// when every stream on a member has been silent for `idleCheckSeconds`, one thread asks that
/// member for a one-key count; when it does not answer within `probeTimeoutMilliseconds`, its
/// streams are dropped and each resumes on the next member from the last revision it saw: a
/// blackholed member costs at most about 5 s of staleness, and an idle host one probe per
/// member every 3 s, however many ranges it watches.
final class StreamLiveness: @unchecked Sendable {
    static let idleCheckSeconds = 3.0
    static let probeTimeoutMilliseconds = 2000

    struct Stream: Hashable { fileprivate let id: Int }
    private struct Entry {
        var endpoint: String
        var probePrefix: String
        var client: HTTPClient
        var lastHeard: Date
    }

    private let logger: Logger
    private let condition = NSCondition()
    private var entries: [Int: Entry] = [:]
    private var nextID = 0
    private var stopped = false
    private var running = false
    private let done = DispatchSemaphore(value: 0)

    init(logger: Logger) { self.logger = logger }

    func register(endpoint: String, probePrefix: String, client: HTTPClient) -> Stream {
        let (stream, start) = condition.withLock { () -> (Stream, Bool) in
            nextID += 1
            entries[nextID] = Entry(endpoint: endpoint, probePrefix: probePrefix, client: client, lastHeard: Date())
            let start = !running && !stopped
            if start { running = true }
            return (Stream(id: nextID), start)
        }
        if start { Thread.detachNewThread { [self] in loop() } }
        return stream
    }

    func unregister(_ stream: Stream) { condition.withLock { _ = entries.removeValue(forKey: stream.id) } }

    func heard(_ stream: Stream) { condition.withLock { entries[stream.id]?.lastHeard = Date() } }

    func stop() {
        // Once: a second stop finds nothing to wait for.
        let wasRunning = condition.withLock { () -> Bool in
            defer {
                stopped = true
                running = false
            }
            condition.broadcast()
            return running && !stopped
        }
        if wasRunning { done.wait() }
    }

    private func loop() {
        defer { done.signal() }
        let probe = HTTPClient(timeoutMilliseconds: Self.probeTimeoutMilliseconds)
        while true {
            // The members whose streams have all been silent long enough.
            let silent: [(endpoint: String, prefix: String)] = condition.withLock {
                // Often enough that a member is probed soon after its streams fell silent (a
                // probe that answers counts as hearing them: the next is 3 s later).
                _ = condition.wait(until: Date().addingTimeInterval(0.25))
                guard !stopped else { return [] }
                let now = Date()
                let byMember = Dictionary(grouping: entries.values, by: \.endpoint)
                return byMember.compactMap { endpoint, streams in
                    guard streams.allSatisfy({ now.timeIntervalSince($0.lastHeard) >= Self.idleCheckSeconds }) else { return nil }
                    return (endpoint, streams[0].probePrefix)
                }
            }
            if condition.withLock({ stopped }) { return }
            for (endpoint, prefix) in silent { check(endpoint, prefix: prefix, with: probe) }
        }
    }

    /// One probe of `endpoint`: an answer counts as hearing from each of its streams; none ends them.
    private func check(_ endpoint: String, prefix: String, with probe: HTTPClient) {
        let body = (try? JSONSerialization.data(withJSONObject: [
            "key": Data(prefix.utf8).base64EncodedString(), "range_end": Data(prefix.prefixRangeEnd).base64EncodedString(),
            "count_only": true,
        ])) ?? Data()
        do {
            let (status, _) = try probe.post("http://\(endpoint)/v3/kv/range", body: body)
            guard status == 200 else { throw StoreError.refused(operation: "watch liveness check", status: status, detail: "") }
            condition.withLock {
                for (id, entry) in entries where entry.endpoint == endpoint { entries[id]?.lastHeard = Date() }
            }
        } catch {
            let streams = condition.withLock { stopped ? [] : entries.values.filter { $0.endpoint == endpoint }.map(\.client) }
            guard !streams.isEmpty else { return }
            logger.warning("etcd watch: member \(endpoint) does not answer (\(error)); resuming the watch on another member")
            for client in streams { client.interrupt() }
        }
    }
}
