import Foundation

// Benchmark drivers for library-level figures (bench/*.sh call these). Not installed.
let arguments = CommandLine.arguments
func usage() -> Never {
    FileHandle.standardError.write(Data("usage: dnsd-bench hosts DIR SANDBOXES PEERS ROUNDS | attach COUNT SCALE [ROUNDS]\n".utf8))
    exit(2)
}
guard arguments.count >= 2 else { usage() }
switch arguments[1] {
case "hosts":
    guard arguments.count == 6, let sandboxes = Int(arguments[3]), let peers = Int(arguments[4]), let rounds = Int(arguments[5]),
          sandboxes > 0, peers >= 0, rounds > 0 else { usage() }
    do {
        try HostsBenchmark.run(directory: arguments[2], sandboxes: sandboxes, peers: peers, rounds: rounds)
    } catch {
        FileHandle.standardError.write(Data("dnsd-bench: \(error)\n".utf8))
        exit(1)
    }
case "attach":
    guard (4...5).contains(arguments.count), let count = Int(arguments[2]), let scale = Int(arguments[3]), count >= 50, scale >= 0,
          let rounds = arguments.count == 5 ? Int(arguments[4]) : 1, rounds >= 1 else { usage() }
    do {
        try AttachBenchmark.run(count: count, scale: scale, rounds: rounds)
    } catch {
        FileHandle.standardError.write(Data("dnsd-bench: \(error)\n".utf8))
        exit(1)
    }
default:
    usage()
}
