import Foundation
import Logging

/// Background work, one mechanism for all of it (liveness, withdrawals, the lease's keep-alive,
/// Docker's sweeps): a named task run every `period` on a thread of its own until `stop()`. A
/// round that throws is logged once per episode of failures (and once when it recovers), and
/// the next round waits twice as long, up to `maxBackoff`; a round that succeeds resets the pace.
public final class Ticker: @unchecked Sendable {
    public let name: String
    private let logger: Logger
    private let body: () throws -> Void
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false
    private var period: TimeInterval
    private let maxBackoff: TimeInterval

    public init(_ name: String, every period: TimeInterval, maxBackoff: TimeInterval = 8, logger: Logger, _ body: @escaping () throws -> Void) {
        self.name = name
        self.period = period
        self.maxBackoff = max(period, maxBackoff)
        self.logger = logger
        self.body = body
    }

    /// Changes the period from the next round on.
    public func setPeriod(_ seconds: TimeInterval) { condition.withLock { period = seconds } }

    public func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "dnsd-\(name)"
        thread.start()
    }

    /// Ends the task and waits for a round in progress to finish.
    public func stop() {
        condition.withLock {
            stopped = true
            condition.broadcast()
        }
        condition.withLock {
            while !finished { condition.wait() }
        }
    }

    private func loop() {
        var failures = 0
        while true {
            let wait = condition.withLock { period } * pow(2, Double(min(failures, 16)))
            let deadline = Date().addingTimeInterval(min(wait, max(maxBackoff, condition.withLock { period })))
            let stop = condition.withLock { () -> Bool in
                while !stopped, condition.wait(until: deadline) {}
                return stopped
            }
            if stop { break }
            do {
                try body()
                if failures > 0 { logger.info("\(name): working again") }
                failures = 0
            } catch {
                if failures == 0 { logger.warning("\(name) failed; retrying with backoff", metadata: ["error": "\(error)"]) }
                failures += 1
            }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }
}
