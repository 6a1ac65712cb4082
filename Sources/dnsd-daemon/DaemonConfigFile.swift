import ArgumentParser
import Foundation

/// `dnsd daemon --config FILE`: the daemon's flags from a JSON object, one key per flag (its long
/// name without the dashes: `"store"`, `"host-id"`, `"lease-ttl"`...; `"upstream"` takes a list).
/// The file's settings go before the command line's, and a key the command line also sets is
/// left out: flags override the file. An unknown key, a value of the wrong kind or a file that
/// is not a JSON object is one line, and the daemon does not start.
enum DaemonConfigFile {
    enum Kind { case text, number, list }

    /// Every flag of `dnsd daemon` but `--config` and `--help`; scripts/test-package.sh checks
    /// this table against the flags `dnsd daemon --help` lists.
    static let keys: [String: Kind] = [
        "store": .text, "host-id": .text, "advertise": .text, "state-dir": .text, "sock": .text, "dns-mode": .text,
        "lease-ttl": .number, "liveness-interval": .number, "metrics": .text, "docker-plugin": .text, "docker-api": .text,
        "upstream": .list, "upstream-timeout": .number, "log-level": .text,
    ]

    /// The daemon's arguments (after `daemon`) with those of the file named by `--config`, if any.
    static func expand(_ arguments: [String]) throws -> [String] {
        guard let path = configPath(arguments) else { return arguments }
        let given = Set(arguments.compactMap { argument -> String? in
            guard argument.hasPrefix("--") else { return nil }
            return String(argument.dropFirst(2).prefix { $0 != "=" })
        })
        // One word per flag (`--lease-ttl=-5`): a value that starts with '-' stays a value.
        return try settings(path).filter { !given.contains($0.key) }.sorted { $0.key < $1.key }.flatMap { key, values in
            values.map { "--\(key)=\($0)" }
        } + arguments
    }

    /// The path after the last `--config` (or in `--config=PATH`), as the parser takes the last.
    static func configPath(_ arguments: [String]) -> String? {
        var path: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--config" { path = index + 1 < arguments.count ? arguments[index + 1] : nil }
            if argument.hasPrefix("--config=") { path = String(argument.dropFirst("--config=".count)) }
        }
        return path
    }

    /// A JSON value, as strictly as JSON has it (`true` is not the number 1).
    private enum Value: Decodable {
        case text(String), number(Double), bool(Bool), list([Value]), other

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let bool = try? container.decode(Bool.self) { self = .bool(bool) }
            else if let number = try? container.decode(Double.self) { self = .number(number) }
            else if let text = try? container.decode(String.self) { self = .text(text) }
            else if let list = try? container.decode([Value].self) { self = .list(list) }
            else { self = .other }
        }
    }

    /// Each key of the file and its values as command-line words.
    static func settings(_ path: String) throws -> [String: [String]] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("cannot read the config file \(path): \((error as NSError).localizedDescription)")
        }
        guard let settings = try? JSONDecoder().decode([String: Value].self, from: data) else {
            throw ValidationError("config file \(path): expected one JSON object, e.g. {\"store\": \"etcd://198.18.0.254:2379\", \"host-id\": \"h1\"}")
        }
        var words: [String: [String]] = [:]
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
            guard let kind = keys[key] else {
                throw ValidationError("config file \(path): unknown key '\(key)' (known: \(keys.keys.sorted().joined(separator: ", ")))")
            }
            func wrong(_ expected: String) -> ValidationError { ValidationError("config file \(path): '\(key)' must be \(expected)") }
            switch (kind, value) {
            case (.text, .text(let text)): words[key] = [text]
            case (.text, _): throw wrong("a string")
            case (.number, .number(let number)):
                words[key] = [number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)]
            case (.number, _): throw wrong("a number")
            case (.list, .list(let list)):
                words[key] = try list.map { item in
                    guard case .text(let text) = item else { throw wrong("a list of strings") }
                    return text
                }
            case (.list, _): throw wrong("a list of strings")
            }
        }
        return words
    }
}
