/// Identifies a sandbox served by the responder (the daemon's own numbering).
public struct SandboxID: Hashable, Sendable, CustomStringConvertible {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public var description: String { "sandbox#\(value)" }
}
