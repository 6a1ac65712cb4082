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
