import Foundation
import Netns

/// Tells which adopted sandboxes are gone although nobody said so: a runtime that never calls
/// CNI `DEL` (`ctr run -d --cni` never does), one that crashed, a namespace deleted by hand.
///
/// - Any adopted sandbox whose path no longer names its namespace (the bind mount is gone, the
///   process behind /proc/PID/ns/net exited, the PID was reused) is gone at once.
/// - A container's namespace (CNI) that a process was in, and that no process has been in for
///   `missesAllowed` checks in a row, is gone: dnsd's own sockets keep the namespace alive, so
///   only the processes count. One that no process ever joined within `neverJoinedGrace` is gone
///   too (a runtime that failed between `ADD` and starting the container, and never cleaned up).
///
/// Plain `dnsd attach` sandboxes are judged by their path only: an empty named namespace is a
/// legitimate thing to attach.
struct NamespaceLiveness {
    struct Subject {
        var name: String
        var path: String
        var inode: UInt64
        var isContainer: Bool
    }

    var missesAllowed = 2
    var neverJoinedGrace: TimeInterval = 30

    private struct Seen {
        var firstSeen: Date
        var everHeld = false
        var misses = 0
    }
    /// What was seen of each namespace, by its identity (nsfs inode), not by the sandbox's name:
    /// a container restarted under the same name has a new namespace and starts afresh.
    private var seen: [UInt64: Seen] = [:]

    /// The subjects that are gone, with why. `inUse` is nil when no subject needs it.
    mutating func gone(_ subjects: [Subject], inUse: Set<UInt64>?, now: Date = Date()) -> [(subject: Subject, reason: String)] {
        var verdicts: [(subject: Subject, reason: String)] = []
        var next: [UInt64: Seen] = [:]
        for subject in subjects {
            guard NamespaceIdentity.inodeIfPresent(atPath: subject.path) == subject.inode else {
                verdicts.append((subject, "its namespace \(subject.path) is gone"))
                continue
            }
            guard subject.isContainer, let inUse else { continue }
            var state = seen[subject.inode] ?? Seen(firstSeen: now)
            if inUse.contains(subject.inode) {
                state.everHeld = true
                state.misses = 0
            } else if state.everHeld {
                state.misses += 1
                if state.misses >= missesAllowed {
                    verdicts.append((subject, "no process is in its namespace any more"))
                    continue
                }
            } else if now.timeIntervalSince(state.firstSeen) >= neverJoinedGrace {
                verdicts.append((subject, "no process joined its namespace within \(Int(neverJoinedGrace)) s"))
                continue
            }
            next[subject.inode] = state
        }
        seen = next
        return verdicts
    }
}
