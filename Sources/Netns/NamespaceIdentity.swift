import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Which network namespace a path names, and which namespaces processes are in: how dnsd tells
/// that a runtime's container is gone when the runtime never says so.
public enum NamespaceIdentity {
    /// The nsfs inode the path names now (a /run/netns bind mount, /proc/PID/ns/net), or nil when
    /// it names nothing (unmounted, the process exited).
    public static func inodeIfPresent(atPath path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }

    /// The inode the path names when it is a namespace (nsfs: a bind mount of one, /proc/PID/ns/net),
    /// nil for anything else: a runtime's namespace file whose mount is not visible here (made in
    /// another mount namespace) is a plain empty file, whose inode names no namespace.
    public static func namespaceInodeIfPresent(atPath path: String) -> UInt64? {
        guard dnsd_fs_type(path) == nsfsMagic else { return nil }
        return inodeIfPresent(atPath: path)
    }

    /// NSFS_MAGIC (linux/magic.h).
    private static let nsfsMagic: Int64 = 0x6e73_6673

    /// The nsfs inode the path names now; an error says why there is none.
    public static func inode(atPath path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemCallError.last("stat netns \(path)") }
        return UInt64(st.st_ino)
    }

    /// The network namespaces some process is in now (each process's `/proc/PID/ns/net`).
    /// A namespace held only by a bind mount or by open descriptors (dnsd's own sockets) is not
    /// in the set. One readlink per process, on a reused buffer.
    public static func namespacesInUse(procRoot: String = "/proc") -> Set<UInt64> {
        var inUse = Set<UInt64>()
        guard let directory = opendir(procRoot) else { return inUse }
        defer { closedir(directory) }
        var target = [CChar](repeating: 0, count: 64)
        while let entry = readdir(directory) {
            let isPID = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Bool in
                guard let first = raw.first, first >= 0x31, first <= 0x39 else { return false }
                return true
            }
            guard isPID else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            let count = readlink("\(procRoot)/\(name)/ns/net", &target, target.count - 1)
            guard count > 0 else { continue }
            // "net:[4026532000]"
            var inode: UInt64 = 0
            var digits = false
            for index in 0..<count {
                let byte = UInt8(bitPattern: target[index])
                if byte >= 0x30, byte <= 0x39 {
                    inode = inode &* 10 &+ UInt64(byte - 0x30)
                    digits = true
                } else if digits {
                    break
                }
            }
            if digits { inUse.insert(inode) }
        }
        return inUse
    }
}
