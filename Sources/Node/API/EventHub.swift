import Foundation

/// A change the reconciler applied (`GET /v1/events`, `dnsd events`): one JSON line each.
public struct ChangeEvent: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case endpoint, network }
    public enum Action: String, Codable, Sendable { case add, remove }
    public var time: String
    public var kind: Kind
    public var action: Action
    public var network: String
    /// For an endpoint: its name, aliases, address and host; `local` when it is this host's.
    public var name: String?
    public var aliases: [String]?
    public var address: String?
    /// Its IPv6 address on a dual-stack network.
    public var address6: String?
    public var host: String?
    public var local: Bool?
    /// For a network: its driver and subnets.
    public var driver: String?
    public var subnet: String?
    public var subnet6: String?
}

/// Fans the reconciler's changes out to the clients following `GET /v1/events`. A subscriber's
/// sink must not block (it hands the line to the client's event loop); a sink that answers
/// false (its client is gone or does not keep up) is dropped.
public final class EventHub: @unchecked Sendable {
    public init() {}

    private let lock = NSLock()
    private var sinks: [Int: @Sendable (Data) -> Bool] = [:]
    private var next = 0
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    /// One formatter for every event; `clockLock` guards it (swift-corelibs does not promise
    /// that a formatter is safe to share between threads).
    nonisolated(unsafe) private static let clock = ISO8601DateFormatter()
    private static let clockLock = NSLock()

    /// Whether anyone follows (the reconciler skips building events when nobody does).
    public var isFollowed: Bool { lock.withLock { !sinks.isEmpty } }

    public func subscribe(_ sink: @escaping @Sendable (Data) -> Bool) -> Int {
        lock.withLock {
            next += 1
            sinks[next] = sink
            return next
        }
    }

    public func unsubscribe(_ id: Int) { lock.withLock { sinks[id] = nil } }

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
