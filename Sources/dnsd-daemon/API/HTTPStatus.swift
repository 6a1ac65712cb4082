import ControlAPI
import Node

extension APIError {
    /// How the control API (and the Docker plugin) say what the core refused: the status for
    /// its kind, its one line as the message.
    init(_ error: Error) {
        if let error = error as? APIError {
            self = error
            return
        }
        let refusal = NodeError.from(error)
        let status = switch refusal {
        case .invalid: 400
        case .notFound: 404
        case .conflict: 409
        case .unavailable: 503
        case .failed: 500
        }
        self.init(status: status, message: refusal.description)
    }
}
