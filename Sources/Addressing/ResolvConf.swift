/// The parts of a resolv.conf(5) that dnsd uses: nameservers, search domains and options.
public struct ResolvConf: Equatable, Sendable {
    public var nameservers: [String] = []
    public var search: [String] = []
    public var options: [String] = []

    public init(nameservers: [String] = [], search: [String] = [], options: [String] = []) {
        self.nameservers = nameservers
        self.search = search
        self.options = options
    }

    /// Parses resolv.conf text. Unknown lines are ignored, as the C library does; the last
    /// `search` or `domain` line wins.
    public init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = words.first, !keyword.hasPrefix("#"), !keyword.hasPrefix(";") else { continue }
            let rest = words.dropFirst().map(String.init)
            switch keyword {
            case "nameserver": if let server = rest.first { nameservers.append(server) }
            case "search", "domain": search = rest
            case "options": options.append(contentsOf: rest)
            default: continue
            }
        }
    }

    /// IPv4 nameservers that are not loopback: what a sandbox (with its own loopback) can reach.
    public var reachableFromSandbox: [String] {
        nameservers.filter { IPv4Address($0).map { !$0.isLoopback } ?? false }
    }
}
