import Netns

/// The optional DNAT mode: the responder binds random ports on 127.0.0.11 and an nftables
/// rule in the sandbox sends :53 there, so an application in the sandbox can bind port 53
/// itself. Replies need no SNAT: conntrack rewrites their source back to :53.
///
/// One nft run per sandbox set-up is fine (it is not a hot path); `nsenter --net` puts nft
/// in the sandbox's namespace without a mount namespace of its own.
enum PacketRedirect {
    static let table = "dnsd_dns"

    static func install(namespacePath: String, address: SocketAddress, udpPort: UInt16, tcpPort: UInt16) throws {
        let ruleset = """
            table ip \(table) {
                chain output {
                    type nat hook output priority -100; policy accept;
                    ip daddr \(address.address) udp dport \(address.port) dnat to \(address.address):\(udpPort)
                    ip daddr \(address.address) tcp dport \(address.port) dnat to \(address.address):\(tcpPort)
                }
            }

            """
        try nft(namespacePath: namespacePath, script: "add table ip \(table)\ndelete table ip \(table)\n" + ruleset)
    }

    static func remove(namespacePath: String) {
        try? nft(namespacePath: namespacePath, script: "delete table ip \(table)\n")
    }

    private static func nft(namespacePath: String, script: String) throws {
        try NamespaceCommand.run(["nft", "-f", "-"], in: namespacePath, input: script)
    }
}
