import Foundation
import CMnl
import Netns
#if canImport(Glibc)
import Glibc
#endif

/// A NETLINK_ROUTE socket bound in one network namespace: the namespace it was opened in is
/// the one every request acts on, whichever thread sends it. Requests are synchronous: each
/// waits for the kernel's acknowledgement (or its dump) and failures throw `NetlinkError`.
public final class NetlinkSocket: @unchecked Sendable {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    private let receiveBuffer: UnsafeMutableRawPointer
    private let receiveSize: Int
    private let lock = NSLock()

    /// Opens a socket in the calling thread's namespace.
    public init() throws {
        guard let socket = mnl_socket_open2(NETLINK_ROUTE, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw SystemCallError.last("netlink socket")
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let error = SystemCallError.last("netlink bind")
            mnl_socket_close(socket)
            throw error
        }
        self.socket = socket
        portID = mnl_socket_get_portid(socket)
        sequence = UInt32(truncatingIfNeeded: time(nil))
        // Dumps of many links or neighbours come in several large messages.
        receiveSize = 1 << 16
        receiveBuffer = .allocate(byteCount: receiveSize, alignment: 8)
        var size: Int32 = 1 << 20
        setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Opens a socket inside `namespace` (made on `thread`, used from anywhere afterwards).
    public static func open(in namespace: NamespaceHandle?, using thread: NamespaceThread) throws -> NetlinkSocket {
        try thread.run(in: namespace) { try NetlinkSocket() }
    }

    deinit {
        mnl_socket_close(socket)
        receiveBuffer.deallocate()
    }

    /// Sends `message` with NLM_F_ACK and waits for the acknowledgement; a reply message
    /// before it (a GET) goes to `handle`.
    func perform(_ message: borrowing NetlinkMessage, _ operation: String, _ object: String,
                 _ handle: ((UnsafePointer<nlmsghdr>) -> Void)? = nil) throws {
        message.header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
        try exchange(message, operation, object, handle ?? { _ in })
    }

    /// Sends a dump request and calls `handle` with every message of the reply.
    func dump(_ message: borrowing NetlinkMessage, _ operation: String, _ handle: (UnsafePointer<nlmsghdr>) -> Void) throws {
        message.header.pointee.nlmsg_flags |= UInt16(NLM_F_DUMP)
        try exchange(message, operation, "", handle)
    }

    private func exchange(_ message: borrowing NetlinkMessage, _ operation: String, _ object: String,
                          _ handle: (UnsafePointer<nlmsghdr>) -> Void) throws {
        try lock.withLock {
            let seq = nextSequence()
            message.header.pointee.nlmsg_seq = seq
            try send(message, operation, object)
            try withoutActuallyEscaping(handle) { handle in
                var box = handle
                try withUnsafeMutablePointer(to: &box) { context in
                    try receive(seq: seq, operation, object, callback: { header, context in
                        guard let header, let context else { return MNL_CB_OK }
                        let handle = context.assumingMemoryBound(to: ((UnsafePointer<nlmsghdr>) -> Void).self).pointee
                        handle(header)
                        return MNL_CB_OK
                    }, context: context)
                }
            }
        }
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    private func send(_ message: borrowing NetlinkMessage, _ operation: String, _ object: String) throws {
        guard mnl_socket_sendto(socket, message.bytes, message.length) >= 0 else {
            throw NetlinkError(operation, object, errno: Glibc.errno)
        }
    }

    private func receive(seq: UInt32, _ operation: String, _ object: String,
                         callback: mnl_cb_t?, context: UnsafeMutableRawPointer?) throws {
        while true {
            let n = mnl_socket_recvfrom(socket, receiveBuffer, receiveSize)
            guard n >= 0 else { throw NetlinkError(operation, object, errno: Glibc.errno) }
            let rc = mnl_cb_run(receiveBuffer, n, seq, portID, callback, context)
            if rc < 0 { throw NetlinkError(operation, object, errno: Glibc.errno) }
            if rc <= MNL_CB_STOP { return }
        }
    }
}
