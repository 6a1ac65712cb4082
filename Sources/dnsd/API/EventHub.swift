import Foundation

/// A change the reconciler applied (`GET /v1/events`, `dnsd events`): one JSON line each.
struct ChangeEvent: Codable, Sendable {
    enum Kind: String, Codable, Sendable { case endpoint, network }
    enum Action: String, Codable, Sendable { case add, remove }
    var time: String
    var kind: Kind
    var action: Action
    var network: String
    /// For an endpoint: its name, aliases, address and host; `local` when it is this host's.
    var name: String?
    var aliases: [String]?
    var address: String?
    var host: String?
    var local: Bool?
    /// For a network: its driver and subnet.
    var driver: String?
    var subnet: String?
}

/// Fans the reconciler's changes out to the clients following `GET /v1/events`. A subscriber's
/// sink must not block (it hands the line to the client's event loop); a sink that answers
/// false (its client is gone or does not keep up) is dropped.
final class EventHub: @unchecked Sendable {
    private let lock = NSLock()
    private var sinks: [Int: @Sendable (Data) -> Bool] = [:]
    private var next = 0
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    nonisolated(unsafe) private static let clock = ISO8601DateFormatter()  // thread-safe since macOS 10.x / swift-corelibs
    private static let clockLock = NSLock()

    /// Whether anyone follows (the reconciler skips building events when nobody does).
    var isFollowed: Bool { lock.withLock { !sinks.isEmpty } }

    func subscribe(_ sink: @escaping @Sendable (Data) -> Bool) -> Int {
        lock.withLock {
            next += 1
            sinks[next] = sink
            return next
        }
    }

    func unsubscribe(_ id: Int) { lock.withLock { sinks[id] = nil } }

    func publish(_ events: [ChangeEvent]) {
        guard !events.isEmpty else { return }
        let lines = events.compactMap { event -> Data? in
            guard var line = try? encoder.encode(event) else { return nil }
            line.append(UInt8(ascii: "\n"))
            return line
        }
        let current = lock.withLock { sinks }
        for (id, sink) in current {
            for line in lines where !sink(line) {
                unsubscribe(id)
                break
            }
        }
    }

    static func now() -> String { clockLock.withLock { clock.string(from: Date()) } }
}
