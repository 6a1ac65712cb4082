#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which operation, on what, and the errno it returned.
///
/// Every module below the executable reports kernel failures with this type so a log line
/// always says e.g. `bind 127.0.0.11:53 in netns c01: Address already in use (errno 98)`.
public struct SystemCallError: Error, CustomStringConvertible, Equatable, Sendable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// Captures the calling thread's current `errno`.
    public static func last(_ operation: String) -> SystemCallError {
        SystemCallError(operation, errno: Glibc.errno)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
