import CShim
#if canImport(Glibc)
import Glibc
#endif

/// One client connection to a sandbox's TCP listener: length-framed messages in, answers out,
/// several in flight at once (RFC 7766 pipelining). Owned by the serving loop's thread.
final class TCPConnection {
    let fd: Int32
    let sandbox: SandboxID
    let token: Int
    private(set) var isOpen = true
    /// The client closed its sending side; close once every answer is out.
    private(set) var readClosed = false
    var pendingForwards = 0
    var lastActive: UInt64

    private var input: [UInt8] = []
    private var output: [UInt8] = []
    private var outputSent = 0

    static let maxReadChunk = 16384
    /// More unprocessed input than two maximum-size messages means a misbehaving client.
    static let maxBuffered = 2 * 65537

    init(fd: Int32, sandbox: SandboxID, token: Int, now: UInt64) {
        self.fd = fd
        self.sandbox = sandbox
        self.token = token
        self.lastActive = now
    }

    /// Reads what is available and calls `handle` with each complete message.
    /// Returns false when the connection should be closed (error, or EOF with nothing owed).
    func readMessages(_ handle: (UnsafeRawBufferPointer) -> Void) -> Bool {
        let failed = withUnsafeTemporaryAllocation(byteCount: Self.maxReadChunk, alignment: 16) { chunk -> Bool in
            while true {
                let n = recv(fd, chunk.baseAddress!, chunk.count, Int32(MSG_DONTWAIT))
                if n > 0 {
                    input.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                    if input.count > Self.maxBuffered { return true }
                    if n < chunk.count { return false }
                    continue
                }
                if n == 0 {
                    readClosed = true
                    return false
                }
                return !(errno == EAGAIN || errno == EINTR)
            }
        }
        if failed { return false }
        var consumed = 0
        input.withUnsafeBytes { bytes in
            while bytes.count - consumed >= 2 {
                let length = Int(bytes[consumed]) << 8 | Int(bytes[consumed + 1])
                guard bytes.count - consumed - 2 >= length else { break }
                handle(UnsafeRawBufferPointer(rebasing: bytes[(consumed + 2)..<(consumed + 2 + length)]))
                consumed += 2 + length
            }
        }
        if consumed > 0 { input.removeFirst(consumed) }
        return !isFinished
    }

    /// Queues one answer (the length prefix is added here).
    func enqueue(_ message: UnsafeRawBufferPointer) {
        output.append(UInt8(message.count >> 8))
        output.append(UInt8(truncatingIfNeeded: message.count))
        output.append(contentsOf: message)
    }

    /// Writes what it can. Returns whether output remains (the loop then waits for EPOLLOUT).
    func flush() -> Bool {
        while outputSent < output.count {
            let n = output.withUnsafeBytes { send(fd, $0.baseAddress! + outputSent, $0.count - outputSent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n > 0 { outputSent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
            // The peer is gone: drop what is owed.
            output.removeAll()
            outputSent = 0
            return false
        }
        output.removeAll(keepingCapacity: output.capacity <= 65536)
        outputSent = 0
        return false
    }

    /// True when the client half-closed and nothing more is owed.
    var isFinished: Bool { readClosed && pendingForwards == 0 && outputSent == output.count }

    func close() {
        guard isOpen else { return }
        isOpen = false
        Glibc.close(fd)
    }
}
