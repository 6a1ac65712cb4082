import Dispatch
import Foundation

/// Runs closures on signals, on a private queue (never inside a signal handler).
final class SignalHandlers {
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "dnsd.signals")

    func on(_ signal: Int32, _ action: @escaping @Sendable () -> Void) {
        Foundation.signal(signal, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
        source.setEventHandler(handler: action)
        source.resume()
        sources.append(source)
    }
}
