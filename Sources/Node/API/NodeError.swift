import Addressing
import ClusterState
import Store

/// What the core refuses or fails at, in its own terms. Front-ends say it in theirs: the control
/// API as an HTTP status (`dnsd-daemon`'s `APIError(_:)`), the Docker plugin as its `Err` field,
/// the CNI plugin as a CNI error code. Every error a command throws is one of these (`from`).
public enum NodeError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The request itself is wrong: a name, an address, a missing field.
    case invalid(String)
    /// What it names does not exist here (or in the cluster).
    case notFound(String)
    /// It collides with what exists: a name or address taken, a network in use.
    case conflict(String)
    /// The store cannot be reached, or the daemon is stopping: try again later.
    case unavailable(String)
    /// A step on this host failed (the kernel, the disk).
    case failed(String)

    public var description: String {
        switch self {
        case .invalid(let line), .notFound(let line), .conflict(let line), .unavailable(let line), .failed(let line): line
        }
    }

    /// `error` as the core's: refusals of the cluster and of parsers kept with their line, a
    /// store that failed as unavailable, anything else as a failure here.
    public static func from(_ error: Error) -> NodeError {
        switch error {
        case let error as NodeError: return error
        case let error as ClusterError:
            switch error {
            case .noSuchNetwork: return .notFound(error.description)
            case .networkExists, .networkInUse, .addressesInUse, .nameTaken, .addressTaken, .networkChanged: return .conflict(error.description)
            case .subnetExhausted, .addressOutside, .addressReserved, .vniExhausted, .subnetOverlaps, .noFamily, .prefixTooLong, .unusablePrefix,
                 .noSubnet, .beyondLowHosts:
                return .invalid(error.description)
            }
        case is StoreError, is ContendedKey: return .unavailable("\(error)")
        case is HostLabel.Invalid, is IPSubnet.ParseError: return .invalid("\(error)")
        default: return .failed("\(error)")
        }
    }
}
