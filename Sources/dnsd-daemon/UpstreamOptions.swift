import Addressing
import ArgumentParser
import Foundation
import Resolver

/// `--upstream` and its default, the host's resolv.conf.
struct UpstreamOptions: ParsableArguments {
    @Option(name: .customLong("upstream"), help: "Upstream DNS server IP[:PORT] for other names (repeatable; default: the host's /etc/resolv.conf nameservers).")
    var upstreams: [String] = []

    @Option(help: "Milliseconds to wait for one upstream before trying the next.")
    var upstreamTimeout: Int = 1500

    func validate() throws {
        for text in upstreams where SocketAddress(parsing: text) == nil {
            throw ValidationError("invalid --upstream '\(text)': expected IPv4[:PORT]")
        }
        guard (10...60_000).contains(upstreamTimeout) else {
            throw ValidationError("invalid --upstream-timeout \(upstreamTimeout): expected 10-60000 ms")
        }
    }

    /// The explicit upstreams, or the IPv4 nameservers of the host's resolv.conf. The forwarder
    /// runs in the daemon's namespace, so a loopback resolver of the host works too.
    func resolve(resolvConf path: String = "/etc/resolv.conf") -> [SocketAddress] {
        if !upstreams.isEmpty { return upstreams.compactMap { SocketAddress(parsing: $0) } }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return ResolvConf(parsing: text).nameservers.compactMap { SocketAddress(parsing: $0) }
    }
}
