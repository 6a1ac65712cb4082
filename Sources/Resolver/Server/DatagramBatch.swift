import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Buffers for receiving and answering up to `capacity` datagrams with one recvmmsg and one
/// sendmmsg. Allocated once per serving thread; the C structures stay inside this type.
final class DatagramBatch {
    let capacity: Int
    static let slotSize = 4096

    private let input: UnsafeMutableRawPointer
    private let output: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let receiveIOV: UnsafeMutablePointer<iovec>
    private let sendIOV: UnsafeMutablePointer<iovec>
    private let receiveHeaders: UnsafeMutablePointer<dnsd_mmsghdr>
    private let sendHeaders: UnsafeMutablePointer<dnsd_mmsghdr>
    private(set) var received = 0
    private var queued = 0

    init(capacity: Int = 32) {
        self.capacity = capacity
        input = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        output = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        receiveIOV = .allocate(capacity: capacity)
        sendIOV = .allocate(capacity: capacity)
        receiveHeaders = .allocate(capacity: capacity)
        sendHeaders = .allocate(capacity: capacity)
        for i in 0..<capacity {
            receiveIOV[i] = iovec(iov_base: input + i * Self.slotSize, iov_len: Self.slotSize)
            receiveHeaders[i] = dnsd_mmsghdr(
                msg_hdr: msghdr(
                    msg_name: UnsafeMutableRawPointer(addresses + i),
                    msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                    msg_iov: receiveIOV + i, msg_iovlen: 1,
                    msg_control: nil, msg_controllen: 0, msg_flags: 0),
                msg_len: 0)
        }
    }

    deinit {
        input.deallocate()
        output.deallocate()
        addresses.deallocate()
        receiveIOV.deallocate()
        sendIOV.deallocate()
        receiveHeaders.deallocate()
        sendHeaders.deallocate()
    }

    /// Reads what is waiting on `fd` (non-blocking); returns the count, 0 when nothing was there.
    @inline(__always)
    func receive(from fd: Int32, upTo limit: Int) -> Int {
        // The headers are built once; the kernel overwrites only the name length, flags and
        // length of the slots it filled last time, so only those are reset.
        for i in 0..<received {
            receiveHeaders[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            receiveHeaders[i].msg_hdr.msg_flags = 0
        }
        let n = dnsd_recvmmsg(fd, receiveHeaders, UInt32(min(limit, capacity)), Int32(MSG_DONTWAIT))
        received = max(0, Int(n))
        queued = 0
        return received
    }

    /// Datagram `i` of the last receive; empty if the kernel had to cut it (MSG_TRUNC).
    @inline(__always)
    func packet(_ i: Int) -> UnsafeRawBufferPointer {
        if receiveHeaders[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 {
            return UnsafeRawBufferPointer(start: input + i * Self.slotSize, count: 0)
        }
        return UnsafeRawBufferPointer(start: input + i * Self.slotSize, count: Int(receiveHeaders[i].msg_len))
    }

    /// Where the answer to datagram `i` is written.
    @inline(__always)
    func output(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: output + i * Self.slotSize, count: Self.slotSize)
    }

    /// The sender of datagram `i`, as raw bytes (copied into a pending forward).
    @inline(__always)
    func sender(_ i: Int) -> (address: sockaddr_storage, length: socklen_t) {
        (addresses[i], receiveHeaders[i].msg_hdr.msg_namelen)
    }

    /// Queues `length` bytes of output slot `i` as the reply to datagram `i`'s sender.
    @inline(__always)
    func queueReply(_ i: Int, length: Int) {
        sendIOV[queued] = iovec(iov_base: output + i * Self.slotSize, iov_len: length)
        sendHeaders[queued] = dnsd_mmsghdr(
            msg_hdr: msghdr(
                msg_name: UnsafeMutableRawPointer(addresses + i),
                msg_namelen: receiveHeaders[i].msg_hdr.msg_namelen,
                msg_iov: sendIOV + queued, msg_iovlen: 1,
                msg_control: nil, msg_controllen: 0, msg_flags: 0),
            msg_len: 0)
        queued += 1
    }

    /// Sends every queued reply. A reply the socket cannot take now is dropped, as a full
    /// socket buffer would drop it anyway; the client retries.
    @inline(__always)
    func sendQueued(on fd: Int32) {
        var sent = 0
        while sent < queued {
            let n = dnsd_sendmmsg(fd, sendHeaders + sent, UInt32(queued - sent), Int32(MSG_DONTWAIT))
            if n <= 0 {
                // Skip the datagram that failed (e.g. the client's socket is gone) and go on.
                if n < 0 && errno == EAGAIN { break }
                sent += 1
            } else {
                sent += Int(n)
            }
        }
        queued = 0
    }
}
