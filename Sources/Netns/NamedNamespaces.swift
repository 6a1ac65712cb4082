import CShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Named network namespaces, the way `ip netns add/del` makes them: a file in a shared-mount
/// directory with the namespace bind-mounted onto it, so `ip netns exec NAME` works and the
/// namespace outlives the process that made it.
public struct NamedNamespaces: Sendable {
    public static let defaultDirectory = "/run/netns"

    public let directory: String

    public init(directory: String = NamedNamespaces.defaultDirectory) {
        self.directory = directory
    }

    public func path(_ name: String) -> String { "\(directory)/\(name)" }

    public func exists(_ name: String) -> Bool { access(path(name), F_OK) == 0 }

    /// Creates namespace `name` (with `lo` up) and returns a handle on it.
    /// Fails with EEXIST when the name is taken.
    @discardableResult
    public func create(_ name: String, on thread: NamespaceThread) throws -> NamespaceHandle {
        try create(name, on: thread, also: { () }).0
    }

    /// Creates namespace `name` and, while the thread is still inside it, runs `also` (e.g. to
    /// open a socket there without a second trip into the namespace): an anonymous namespace
    /// given its name at once.
    public func create<T>(_ name: String, on thread: NamespaceThread, also: @escaping () throws -> T) throws -> (NamespaceHandle, T) {
        let (anonymous, extra) = try createAnonymous(on: thread, also: also)
        return (try self.name(anonymous, as: name), extra)
    }

    /// Creates an anonymous namespace (with `lo` up), runs `also` inside it, and returns a handle
    /// that keeps it alive: it has no name until `name(_:as:)` gives it one, and vanishes when
    /// the handle is dropped (a warm namespace, made before anyone asks for it).
    public func createAnonymous<T>(on thread: NamespaceThread, also: @escaping () throws -> T) throws -> (NamespaceHandle, T) {
        try thread.runInNewNamespace { () throws -> (NamespaceHandle, T) in
            guard dnsd_link_set_up("lo") == 0 else { throw SystemCallError.last("set lo up in a new namespace") }
            return (try NamespaceHandle.current(), try also())
        }
    }

    /// Gives the namespace behind `handle` the name `name` (like `ip netns attach NAME`): a file
    /// in the directory with the namespace bind-mounted onto it. Returns a handle opened by name.
    /// Fails with EEXIST when the name is taken.
    public func name(_ handle: NamespaceHandle, as name: String) throws -> NamespaceHandle {
        try prepareDirectory()
        let file = path(name)
        let fd = open(file, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard fd >= 0 else { throw SystemCallError.last("create \(file)") }
        close(fd)
        guard mount("/proc/self/fd/\(handle.fd)", file, "none", UInt(MS_BIND), nil) == 0 else {
            let error = SystemCallError.last("bind-mount netns onto \(file)")
            unlink(file)
            throw error
        }
        do { return try NamespaceHandle(path: file) } catch {
            _ = umount2(file, Int32(MNT_DETACH))
            unlink(file)
            throw error
        }
    }

    /// Removes namespace `name`: unmount, then unlink. The namespace itself lives on while any
    /// process or socket still holds it.
    public func delete(_ name: String) throws {
        let file = path(name)
        if umount2(file, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            throw SystemCallError.last("umount \(file)")
        }
        if unlink(file) != 0 && errno != ENOENT { throw SystemCallError.last("unlink \(file)") }
    }

    /// Names present in the directory.
    public func list() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Directories already made shared by this process. `ip netns add` re-applies MS_SHARED |
    /// MS_REC on every call, which walks every namespace mount below: O(namespaces) per create.
    private static let prepared = Mutex<Set<String>>([])

    /// `ip netns add` makes the directory a shared mount point (bind-mounting it onto itself
    /// first if it is not a mount point), so namespace mounts propagate to other mount
    /// namespaces. Done once per directory per process.
    private func prepareDirectory() throws {
        if Self.prepared.withLock({ $0.contains(directory) }) && access(directory, F_OK) == 0 { return }
        try makeShared()
        _ = Self.prepared.withLock { $0.insert(directory) }
    }

    private func makeShared() throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw SystemCallError.last("mkdir \(directory)") }
        let shared = UInt(MS_SHARED | MS_REC)
        if mount("", directory, "none", shared, nil) == 0 { return }
        guard errno == EINVAL else { throw SystemCallError.last("make \(directory) shared") }
        guard mount(directory, directory, "none", UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw SystemCallError.last("bind \(directory) onto itself")
        }
        guard mount("", directory, "none", shared, nil) == 0 else {
            throw SystemCallError.last("make \(directory) shared")
        }
    }
}

