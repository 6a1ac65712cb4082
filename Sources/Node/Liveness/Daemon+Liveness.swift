import Foundation
import Netns

extension Daemon {
    /// Every `interval`, withdraws the adopted sandboxes `NamespaceLiveness` finds gone, as
    /// `dnsd rm` would (names everywhere, interfaces here). A store that cannot be reached
    /// leaves them for the next round.
    func startLivenessChecks(interval: TimeInterval) {
        Thread.detachNewThread { [self] in
            var liveness = NamespaceLiveness()
            while !isShutDown.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: interval)
                let subjects: [NamespaceLiveness.Subject] = lock.withLock {
                    sandboxes.values.compactMap { local in
                        guard local.adopted, let inode = local.namespaceInode else { return nil }
                        return .init(name: local.name.text, path: local.sandbox.namespace.path, inode: inode,
                                     isContainer: local.containerID != nil)
                    }
                }
                guard !subjects.isEmpty else { continue }
                let inUse = subjects.contains(where: \.isContainer) ? NamespaceIdentity.namespacesInUse() : nil
                for (name, reason) in liveness.gone(subjects, inUse: inUse) {
                    lock.withLock {
                        // Still the same sandbox (not stopped and re-made meanwhile)?
                        guard !stopping, let local = sandboxes[name], subjects.contains(where: { $0.name == name && $0.inode == local.namespaceInode })
                        else { return }
                        logger.info("withdrawing a sandbox whose container is gone", metadata: ["sandbox": "\(name)", "reason": "\(reason)"])
                        attempt("withdrawing \(name)") { _ = try stop(name, missingIsFine: true) }
                    }
                }
            }
        }
    }
}
