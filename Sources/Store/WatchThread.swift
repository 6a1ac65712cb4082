import Foundation

/// The thread behind a watch, and its handle: runs the watch's loop until the loop returns or
/// the watch is cancelled; `cancel()` waits until the loop has noticed and ended, so no event
/// handler runs after it returns. Loops check `isCancelled` between steps.
final class WatchThread: WatchHandle, @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private let done = DispatchSemaphore(value: 0)

    var isCancelled: Bool { lock.withLock { cancelled } }

    func start(name: String, _ loop: @escaping @Sendable (WatchThread) -> Void) {
        let thread = Thread { [self] in
            defer { done.signal() }
            loop(self)
        }
        thread.name = name
        thread.start()
    }

    func cancel() {
        let wasRunning = lock.withLock { () -> Bool in
            defer { cancelled = true }
            return !cancelled
        }
        if wasRunning { done.wait() }
    }
}
