import Foundation
import Netns

/// Every round (a `Ticker`), withdraws the adopted sandboxes `NamespaceLiveness` finds gone: at
/// once here (DNS, hosts files, interfaces), and from the store when it answers
/// (`PendingWithdrawals`), so a store that is away never holds a withdrawal, nor anything else.
final class LivenessCheck: @unchecked Sendable {
    private unowned let daemon: Daemon
    /// Touched only by the ticker's thread.
    private var liveness = NamespaceLiveness()

    init(daemon: Daemon) { self.daemon = daemon }

    func round() {
        var subjects: [NamespaceLiveness.Subject] = daemon.sandboxes.all().compactMap { local in
            guard local.adopted, let inode = local.namespaceInode else { return nil }
            return .init(name: local.name.text, path: local.sandbox.namespace.path, inode: inode, isContainer: local.containerID != nil)
        }
        // Docker's containers too (named "docker/ID": no sandbox name has a slash), so one that
        // died is withdrawn also while dockerd does not answer.
        subjects += daemon.dockerLivenessSubjects()
        daemon.dockerPortsVanished()
        guard !subjects.isEmpty else { return }
        let inUse = subjects.contains(where: \.isContainer) ? NamespaceIdentity.namespacesInUse() : nil
        for verdict in liveness.gone(subjects, inUse: inUse) {
            if verdict.subject.name.hasPrefix(Daemon.dockerKey("")) {
                daemon.dockerVanished(verdict.subject, reason: verdict.reason)
            } else {
                daemon.withdrawVanished(verdict.subject, reason: verdict.reason)
            }
        }
    }
}
