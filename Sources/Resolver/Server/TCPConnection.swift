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
    /// Answers owed beyond this: the connection is not read until the client takes some (a
    /// client that pipelines queries and never reads cannot grow the daemon's memory).
    static let maxPendingOutput = 64 * 1024
    /// Answers owed beyond this (forwarded answers still arrive while reading is paused):
    /// the client is not reading at all, and the connection is closed.
    static let maxOutput = 4 * 65537

    init(fd: Int32, sandbox: SandboxID, token: Int, now: UInt64) {
        self.fd = fd
        self.sandbox = sandbox
        self.token = token
        self.lastActive = now
    }

    /// Answers queued and not yet taken by the client.
    var pendingOutput: Int { output.count - outputSent }

    /// True while the client owes us reading: the loop stops reading its queries.
    var isBackedUp: Bool { pendingOutput > Self.maxPendingOutput }

    /// Set when the client let more than `maxOutput` pile up: the loop closes the connection.
    private(set) var overflowed = false

    /// Reads what is available and calls `handle` with each complete message, stopping early
    /// while the answers owed are backed up (the rest stays buffered for later).
    /// Returns false when the connection should be closed (error, or EOF with nothing owed).
    func readMessages(_ handle: (UnsafeRawBufferPointer) -> Void) -> Bool {
        if !isBackedUp, input.count < Self.maxBuffered {
            if receive() { return false }
        }
        return handleBuffered(handle)
    }

    /// Answers the complete messages already buffered, until the output backs up.
    private func handleBuffered(_ handle: (UnsafeRawBufferPointer) -> Void) -> Bool {
        var consumed = 0
        input.withUnsafeBytes { bytes in
            while bytes.count - consumed >= 2, !isBackedUp, !overflowed {
                let length = Int(bytes[consumed]) << 8 | Int(bytes[consumed + 1])
                guard bytes.count - consumed - 2 >= length else { break }
                handle(UnsafeRawBufferPointer(rebasing: bytes[(consumed + 2)..<(consumed + 2 + length)]))
                consumed += 2 + length
            }
        }
        if consumed > 0 { input.removeFirst(consumed) }
        return !overflowed && !isFinished
    }

    /// Whether complete messages wait in the input buffer.
    var hasBufferedMessage: Bool {
        guard input.count >= 2 else { return false }
        return input.count - 2 >= Int(input[0]) << 8 | Int(input[1])
    }

    /// Reads into `input`; true on an error (close the connection).
    private func receive() -> Bool {
        let failed = withUnsafeTemporaryAllocation(byteCount: Self.maxReadChunk, alignment: 16) { chunk -> Bool in
            while true {
                let n = recv(fd, chunk.baseAddress!, chunk.count, Int32(MSG_DONTWAIT))
                if n > 0 {
                    input.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                    // Enough buffered for at least one whole message: answer before reading
                    // more (epoll is level-triggered, the rest is read next turn).
                    if n < chunk.count || input.count >= Self.maxBuffered { return false }
                    continue
                }
                if n == 0 {
                    readClosed = true
                    return false
                }
                return !(errno == EAGAIN || errno == EINTR)
            }
        }
        return failed
    }

    /// Queues one answer (the length prefix is added here).
    func enqueue(_ message: UnsafeRawBufferPointer) {
        guard !overflowed else { return }
        if pendingOutput + message.count + 2 > Self.maxOutput {
            overflowed = true
            return
        }
        if outputSent > 0, outputSent >= output.count / 2 {
            // Keep the buffer from growing by what was sent already.
            output.removeFirst(outputSent)
            outputSent = 0
        }
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
    var isFinished: Bool { readClosed && pendingForwards == 0 && outputSent == output.count && !hasBufferedMessage }

    func close() {
        guard isOpen else { return }
        isOpen = false
        Glibc.close(fd)
    }
}
