#if canImport(Glibc)
import Glibc
#endif

/// A kernel refusal of a netlink request: what was asked, on what, and the errno.
public struct NetlinkError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let object: String
    public let errno: Int32

    public init(_ operation: String, _ object: String, errno: Int32) {
        self.operation = operation
        self.object = object
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(object): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
