import Foundation
import Netns
import OverlayNet
import TestSupport
import Testing

@Suite("Warm namespaces", .timeLimit(.minutes(5)))
struct NamespacePoolTests {
    @Test("a warm namespace becomes a named sandbox like a new one (ip netns, lo up, no IPv6 on new links, its own netns); the pool refills when quiet; nothing is left")
    func warmSandboxes() throws {
        try withNamespaces { fixture in
            let factory = try SandboxFactory(thread: fixture.thread, warmNamespaces: 2)
            var ready = false
            for _ in 0..<250 where !ready {
                ready = factory.warmCount == 2
                if !ready { usleep(20_000) }
            }
            #expect(ready, "the pool filled")
            let names = [fixture.prefix + "w1", fixture.prefix + "w2", fixture.prefix + "w3"]
            // Two come from the pool, the third is made the ordinary way (the pool is empty and
            // refills only after 5 ms without a take: on a loaded machine it may already have
            // started again, so the count is not checked here; the refill is, below).
            let sandboxes = try names.map { try factory.create($0) }
            var inodes = Set<UInt64>()
            for sandbox in sandboxes {
                #expect(NamedNamespaces().exists(sandbox.name))
                #expect(sandbox.namespace.path == "/run/netns/\(sandbox.name)")
                inodes.insert(try sandbox.namespace.inode())
                let lo = try Shell.check(["ip", "-n", sandbox.name, "-o", "link", "show", "lo"])
                #expect(lo.contains("UP"), "\(lo)")
                #expect(try sandbox.interfaces(.v4).isEmpty, "lo has no IPv4 address of its own to report")
                #expect(try Shell.check(["cat", "/proc/sys/net/ipv6/conf/default/disable_ipv6"]).hasPrefix("0"), "the test's own namespace is untouched")
                #expect(try Shell.check(["ip", "netns", "exec", sandbox.name, "cat", "/proc/sys/net/ipv6/conf/default/disable_ipv6"]).hasPrefix("1"))
            }
            let own = try NamespaceHandle.current().inode()
            #expect(inodes.count == 3 && !inodes.contains(own))
            // Quiet again: it tops up.
            var refilled = false
            for _ in 0..<250 where !refilled {
                refilled = factory.warmCount == 2
                if !refilled { usleep(20_000) }
            }
            #expect(refilled)
            for sandbox in sandboxes { try factory.delete(sandbox) }
            factory.shutdown()
            #expect(factory.warmCount == 0)
            let left = MachineNamespaceLock.shared.reading { MachineState.now().ours(fixture.prefix) }
            #expect(left == MachineState(namespaces: [], hostLinks: [], mounts: []))
        }
    }
}
