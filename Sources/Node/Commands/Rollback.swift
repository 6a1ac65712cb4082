import Logging

/// The steps a multi-step command has done so far, undone in reverse order when a later step
/// fails: the one rollback mechanism of every command (`run`, `attach`, `connect` and the
/// attachments they make). An undo that itself fails is logged with what it was undoing;
/// nothing is dropped silently.
final class Rollback {
    private var steps: [(what: String, undo: () throws -> Void)] = []
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Records how to undo a step just done (`what`: for the log, should the undo fail).
    func add(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Undoes every recorded step, newest first, and forgets them.
    func run() {
        for step in steps.reversed() {
            do { try step.undo() } catch {
                logger.warning("rollback: undoing '\(step.what)' failed", metadata: ["error": "\(error)"])
            }
        }
        steps.removeAll()
    }

    /// Runs `body`; when it throws, undoes what it recorded, then rethrows.
    func perform<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            run()
            throw error
        }
    }
}
