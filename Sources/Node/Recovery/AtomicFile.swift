import Foundation

/// The daemon's own state files (journal entries, the cluster cache): written whole to a
/// temporary file, synced, then renamed over the old one, so a crash leaves the old file or the
/// new one, never half of either.
enum AtomicFile {
    static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw NodeError.failed("open \(temporary): \(String(cString: strerror(errno)))") }
        let count = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        // A failed fsync means the data may not be on disk: the old file stays.
        let synced = fsync(fd) == 0
        close(fd)
        guard count == data.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw NodeError.failed("write \(path): \(reason)")
        }
    }
}
