#if canImport(Glibc)
import Glibc
#endif

/// An open network namespace: a file descriptor on an nsfs inode that keeps it alive.
///
/// Opening by name mirrors `ip netns`: `/run/netns/NAME`. The descriptor is closed when the
/// handle goes away; a handle is what `NamespaceThread` enters.
public final class NamespaceHandle: Sendable {
    public let fd: Int32
    /// Where it was opened from, for messages.
    public let path: String

    public init(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError.last("open netns \(path)") }
        self.fd = fd
        self.path = path
    }

    /// The namespace a named netns file refers to, like `ip netns exec NAME`.
    public convenience init(name: String, directory: String = NamedNamespaces.defaultDirectory) throws {
        try self.init(path: "\(directory)/\(name)")
    }

    /// The calling thread's own network namespace.
    public static func current() throws -> NamespaceHandle {
        try NamespaceHandle(path: "/proc/thread-self/ns/net")
    }

    /// The nsfs inode number: two handles on the same namespace have the same one.
    public func inode() throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemCallError.last("fstat \(path)") }
        return UInt64(st.st_ino)
    }

    deinit { close(fd) }
}
