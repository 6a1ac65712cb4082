#if canImport(Glibc)
import Glibc
#endif

/// `/proc/sys/net/...` settings. Each network namespace has its own: they apply to the namespace
/// of the thread that opens the file, so call this on a thread inside the namespace to change
/// (a `NamespaceThread` closure).
public enum NetworkSysctl {
    /// Writes `value` to `/proc/sys/net/<path>`, e.g. `ipv4/ip_forward`.
    public static func set(_ path: String, _ value: String) throws {
        let file = "/proc/sys/net/" + path
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError.last("open \(file)") }
        defer { close(fd) }
        let text = value + "\n"
        guard write(fd, text, text.utf8.count) == text.utf8.count else { throw SystemCallError.last("write \(file)") }
    }

    /// New interfaces in this namespace get no IPv6 (no link-local address, no duplicate address
    /// detection, no router or multicast listener messages). dnsd's networks are IPv4: this is
    /// what Docker does for a network without IPv6, and it spares the kernel work per interface
    /// that otherwise grows with the number of ports on a bridge (each such message is flooded
    /// to every port). Interfaces that already exist (lo and its ::1) keep theirs.
    public static func disableIPv6OnNewInterfaces() throws {
        try set("ipv6/conf/default/disable_ipv6", "1")
    }
}
