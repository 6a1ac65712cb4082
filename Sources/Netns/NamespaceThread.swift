import CShim
import Foundation

/// A dedicated OS thread that runs closures inside a chosen network namespace.
///
/// `setns(CLONE_NEWNET)` changes only the calling thread, so it must never run on a Swift
/// concurrency or Dispatch thread that other work shares. Every job enters its namespace,
/// runs, and returns to the thread's original namespace (saved from /proc/thread-self, not
/// /proc/self) before the next job. Sockets created inside a job stay in that namespace for
/// their whole life, which is how one process serves 127.0.0.11:53 inside many sandboxes.
public final class NamespaceThread: @unchecked Sendable {
    private let queue = JobQueue()
    private let home: NamespaceHandle

    public init(name: String = "dnsd-netns") throws {
        let ready = DispatchSemaphore(value: 0)
        let queue = self.queue
        nonisolated(unsafe) var opened: Result<NamespaceHandle, Error>!
        let thread = Thread {
            opened = Result { try NamespaceHandle.current() }
            ready.signal()
            queue.drain()
        }
        thread.name = name
        thread.start()
        ready.wait()
        do { home = try opened.get() } catch {
            queue.stop()
            throw error
        }
    }

    deinit { queue.stop() }

    /// Stops the thread after the jobs already queued.
    public func shutdown() { queue.stop() }

    /// Runs `body` on the thread inside `namespace` (or the thread's own namespace when nil)
    /// and returns its result. Blocks the caller until done.
    public func run<T>(in namespace: NamespaceHandle?, _ body: @escaping () throws -> T) throws -> T {
        try perform { [home] in
            guard let namespace else { return try body() }
            guard dnsd_setns(namespace.fd, dnsd_CLONE_NEWNET) == 0 else {
                throw SystemCallError.last("setns \(namespace.path)")
            }
            defer { Self.returnHome(home) }
            return try body()
        }
    }

    /// Runs `body` with the thread in a brand-new, anonymous network namespace, then returns
    /// the thread home. Used to create named namespaces.
    func runInNewNamespace<T>(_ body: @escaping () throws -> T) throws -> T {
        try perform { [home] in
            guard dnsd_unshare(dnsd_CLONE_NEWNET) == 0 else { throw SystemCallError.last("unshare(CLONE_NEWNET)") }
            defer { Self.returnHome(home) }
            return try body()
        }
    }

    private func perform<T>(_ body: @escaping () throws -> T) throws -> T {
        nonisolated(unsafe) var result: Result<T, Error>!
        let done = DispatchSemaphore(value: 0)
        let accepted = queue.submit {
            result = Result { try body() }
            done.signal()
        }
        guard accepted else { throw SystemCallError("namespace thread stopped", errno: ESHUTDOWN) }
        done.wait()
        return try result.get()
    }

    /// Going home cannot fail for a namespace the thread started in; if it did, the thread
    /// would serve from the wrong namespace from then on, so stop the process instead.
    private static func returnHome(_ home: NamespaceHandle) {
        if dnsd_setns(home.fd, dnsd_CLONE_NEWNET) != 0 {
            fatalError("\(SystemCallError.last("setns back to \(home.path)"))")
        }
    }
}

/// The jobs waiting for a `NamespaceThread`; the thread holds it, not the other way round,
/// so the thread never touches a released owner.
private final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false

    func submit(_ job: @escaping () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    func drain() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
