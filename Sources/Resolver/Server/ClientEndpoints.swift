#if canImport(Glibc)
import Glibc
#endif

/// A sandbox's UDP listener as the serving loop tracks it. `isOpen` turns false when the
/// sandbox stops being served, so a late upstream answer is dropped instead of being sent
/// on a descriptor number the kernel may already have reused.
final class UDPListener {
    let fd: Int32
    let sandbox: SandboxID
    var isOpen = true

    init(fd: Int32, sandbox: SandboxID) {
        self.fd = fd
        self.sandbox = sandbox
    }
}

/// Who gets a forwarded answer.
enum ForwardClient {
    case udp(UDPListener, address: sockaddr_storage, addressLength: socklen_t, limit: Int)
    case tcp(TCPConnection)

    var isGone: Bool {
        switch self {
        case .udp(let listener, _, _, _): !listener.isOpen
        case .tcp(let connection): !connection.isOpen
        }
    }

    var overTCP: Bool {
        if case .tcp = self { return true }
        return false
    }
}
