import Foundation
import TestSupport

/// Real `dig`, run inside a sandbox with `ip netns exec`, its output parsed.
struct Dig {
    struct Answer: Equatable {
        var name: String
        var ttl: UInt32
        var type: String
        var data: String
    }

    var status: String
    var flags: Set<String>
    var answers: [Answer]
    var output: String

    var addresses: [String] { answers.filter { $0.type == "A" || $0.type == "AAAA" }.map(\.data) }

    /// `dig @127.0.0.11 ARGS` in namespace `netns` (one try, two-second timeout).
    static func run(_ netns: String, _ arguments: [String]) throws -> Dig {
        let result = try Shell.run(
            ["ip", "netns", "exec", netns, "dig", "@127.0.0.11", "+time=2", "+tries=1"] + arguments)
        return Dig(parsing: result.stdout)
    }

    init(parsing output: String) {
        self.output = output
        status = ""
        flags = []
        answers = []
        var inAnswer = false
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            if let range = line.range(of: "status: ") {
                status = String(line[range.upperBound...].prefix { $0 != "," })
            }
            if line.hasPrefix(";; flags:"), let colon = line.dropFirst(9).firstIndex(of: ";") {
                flags = Set(line[line.index(line.startIndex, offsetBy: 9)..<colon].split(separator: " ").map(String.init))
            }
            if line.hasPrefix(";; ANSWER SECTION:") {
                inAnswer = true
                continue
            }
            if inAnswer {
                if line.isEmpty || line.hasPrefix(";") {
                    inAnswer = false
                    continue
                }
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if fields.count >= 5 {
                    answers.append(Answer(
                        name: String(fields[0]), ttl: UInt32(fields[1]) ?? 0, type: String(fields[3]),
                        data: fields[4...].joined(separator: " ")))
                }
            }
        }
    }
}
