import Netns
#if canImport(Glibc)
import Glibc
#endif

/// Writes to a file by path without ever replacing it: same inode, so a bind mount of it (what
/// `ip netns exec`, Docker and podman do with /etc/hosts) keeps seeing every update.
struct InPlaceFile {
    /// Identity and version of a file as last written, to notice anyone else's change.
    struct Stamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int
        var modified: Int
    }

    let path: String

    /// The file's stamp now, or nil when it does not exist.
    func stamp() -> Stamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Stamp(st)
    }

    /// An open file to make several writes through: one open, one fstat, one close for them all.
    struct Editor {
        fileprivate let fd: Int32
        let path: String

        /// Writes `bytes` at `offset`, all of them.
        func write(_ bytes: [UInt8], at offset: Int) throws {
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SystemCallError.last("write \(path)") }
                done += n
            }
        }

        func truncate(to size: Int) throws {
            if ftruncate(fd, off_t(size)) != 0 { throw SystemCallError.last("truncate \(path)") }
        }
    }

    /// Opens the file, lets `body` write through it, and returns the stamp after the last write.
    @discardableResult
    func edit(create: Bool = false, _ body: (Editor) throws -> Void) throws -> Stamp {
        let fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
        guard fd >= 0 else { throw SystemCallError.last("open \(path)") }
        defer { close(fd) }
        try body(Editor(fd: fd, path: path))
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemCallError.last("fstat \(path)") }
        return Stamp(st)
    }

    /// Replaces the whole content in place (for first writes and repairs).
    @discardableResult
    func replaceContent(_ bytes: [UInt8]) throws -> Stamp {
        try edit(create: true) { editor in
            try editor.write(bytes, at: 0)
            try editor.truncate(to: bytes.count)
        }
    }

    func read() -> String? {
        guard let fd = Optional(open(path, O_RDONLY | O_CLOEXEC)), fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}

extension InPlaceFile.Stamp {
    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int(st.st_size)
        modified = Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
    }
}
