import Foundation
import Netns

/// A few sandbox namespaces made ahead of time, so that one is ready when `run` asks: taking
/// one costs a file and a bind mount (giving it its name) instead of a new namespace, the
/// largest part of setting a sandbox up. A background thread tops the pool up, but only once
/// nobody has taken one for a moment: in a burst of creations the pool runs dry and sandboxes
/// are made the ordinary way, without a refill competing with them for the kernel.
///
/// Pooled namespaces are anonymous (held by a descriptor): they vanish with the process.
final class NamespacePool: @unchecked Sendable {
    /// A namespace with `lo` up, no IPv6 on new interfaces, and a netlink socket inside.
    struct Warm {
        let handle: NamespaceHandle
        let netlink: NetlinkSocket
    }

    private let size: Int
    private let namespaces: NamedNamespaces
    private let thread: NamespaceThread
    private let condition = NSCondition()
    private var warm: [Warm] = []
    private var lastTaken: UInt64 = 0
    private var stopped = false
    /// How long the pool waits after the last take before making another namespace.
    private static let quietNanoseconds: UInt64 = 5_000_000

    init(size: Int, namespaces: NamedNamespaces) throws {
        self.size = size
        self.namespaces = namespaces
        thread = try NamespaceThread(name: "dnsd-netns-pool")
        let filler = Thread { [self] in fill() }
        filler.name = "dnsd-netns-pool-fill"
        filler.start()
    }

    /// A warm namespace, if one is ready.
    func take() -> Warm? {
        condition.lock()
        defer { condition.unlock() }
        lastTaken = DispatchTime.now().uptimeNanoseconds
        condition.signal()
        return warm.popLast()
    }

    /// How many are ready now.
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return warm.count
    }

    /// Stops topping up and drops the warm namespaces.
    func shutdown() {
        condition.lock()
        stopped = true
        warm.removeAll()
        condition.signal()
        condition.unlock()
        thread.shutdown()
    }

    private func fill() {
        while true {
            condition.lock()
            while !stopped && warm.count >= size { condition.wait() }
            // Quiet first: no refill beside a burst of creations.
            while !stopped, DispatchTime.now().uptimeNanoseconds &- lastTaken < Self.quietNanoseconds {
                _ = condition.wait(until: Date().addingTimeInterval(Double(Self.quietNanoseconds) / 1e9))
            }
            if stopped {
                condition.unlock()
                return
            }
            condition.unlock()
            do {
                let (handle, netlink) = try namespaces.createAnonymous(on: thread, also: NetlinkSocket.inNewNamespace)
                condition.lock()
                if !stopped { warm.append(Warm(handle: handle, netlink: netlink)) }
                condition.unlock()
            } catch {
                // Out of memory or namespaces: sandboxes are made the ordinary way; try later.
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
