import Foundation

/// The thread behind a watch, and its handle: runs the watch's loop until the loop returns or
/// the watch is cancelled; `cancel()` waits until the loop has noticed and ended, so no event
/// handler runs after it returns. Loops check `isCancelled` between steps, and wake their
/// waiting transfer through `onCancel` (an interruptible `HTTPClient`).
final class WatchThread: WatchHandle, @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private var wake: (() -> Void)?
    private let done = DispatchSemaphore(value: 0)

    var isCancelled: Bool { lock.withLock { cancelled } }

    /// Runs `wake` on cancel (at once if already cancelled): what ends the loop's current wait.
    func onCancel(_ wake: @escaping () -> Void) {
        let already = lock.withLock { () -> Bool in
            self.wake = wake
            return cancelled
        }
        if already { wake() }
    }

    func start(name: String, _ loop: @escaping @Sendable (WatchThread) -> Void) {
        let thread = Thread { [self] in
            defer { done.signal() }
            loop(self)
        }
        thread.name = name
        thread.start()
    }

    func cancel() {
        let (wasRunning, wake) = lock.withLock { () -> (Bool, (() -> Void)?) in
            defer { cancelled = true }
            return (!cancelled, self.wake)
        }
        wake?()
        if wasRunning { done.wait() }
    }
}

/// One watch loop per prefix, each on a thread of its own: the ranges of a `RangeWatch` on a
/// store whose watches are per prefix (etcd's streams, Consul's blocking queries).
final class PrefixLoops: @unchecked Sendable {
    private let lock = NSLock()
    private var loops: [String: WatchThread] = [:]
    private var stopped = false

    /// Starts `loop` for `prefix` on a thread named `name`, unless one runs for it or all stopped.
    func start(_ prefix: String, name: String, _ loop: @escaping @Sendable (WatchThread) -> Void) {
        let thread = WatchThread()
        let added = lock.withLock {
            guard !stopped, loops[prefix] == nil else { return false }
            loops[prefix] = thread
            return true
        }
        if added { thread.start(name: name, loop) }
    }

    /// Ends `prefix`'s loop; returns once it no longer runs.
    func stop(_ prefix: String) {
        let thread = lock.withLock { loops.removeValue(forKey: prefix) }
        thread?.cancel()
    }

    /// Ends every loop, and starts none after.
    func stopAll() {
        let threads = lock.withLock {
            stopped = true
            defer { loops = [:] }
            return Array(loops.values)
        }
        for thread in threads { thread.cancel() }
    }
}
