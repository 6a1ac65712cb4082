import Addressing
import Foundation
import Netns
@testable import OverlayNet
import TestSupport
import Testing

@Suite("Netlink client", .timeLimit(.minutes(5)))
struct NetlinkTests {
    @Test("links: bridge, veth with its peer created in another namespace, vxlan; set, dump, delete")
    func links() throws {
        try withNamespaces { fx in
            let (_, a) = try fx.make("a")
            let (bName, b) = try fx.make("b")
            let nl = try fx.netlink(a)
            try nl.createLink(LinkSpec(name: "br0", kind: .bridge(), mtu: 1450, up: true))
            let bridge = try nl.linkIndex("br0")
            let mac = MACAddress(derivedFrom: ip("192.168.0.5"))
            try nl.createLink(LinkSpec(
                name: "veth0", kind: .veth(peer: VethPeer(name: "eth0", namespaceFD: b.fd, mtu: 1450, mac: mac)),
                mtu: 1450, master: bridge, up: true))
            let veth = try #require(try nl.link(named: "veth0"))
            #expect(veth.master == bridge && veth.isUp && veth.mtu == 1450 && veth.kind == "veth")
            // The peer is in b, named, with its MAC and MTU, up.
            let inB = try fx.netlink(b)
            try inB.setLink(try inB.linkIndex("eth0"), up: true)
            let eth0 = try #require(try inB.link(named: "eth0"))
            #expect(eth0.mac == mac && eth0.mtu == 1450 && eth0.isUp)
            #expect(try nl.link(named: "eth0") == nil)
            // iproute2 agrees.
            let shown = try Shell.check(["ip", "-n", bName, "-o", "link", "show", "eth0"])
            #expect(shown.contains("mtu 1450") && shown.contains(mac.description))
            // Creating the same name again is EEXIST, named in the error.
            #expect(throws: NetlinkError.self) { try nl.createLink(LinkSpec(name: "br0", kind: .bridge())) }
            do { try nl.createLink(LinkSpec(name: "br0", kind: .bridge())) } catch let error as NetlinkError {
                #expect(error.errno == EEXIST && error.description.contains("br0"))
            }
            try nl.createLink(LinkSpec(name: "vxlan0", kind: .vxlan(VXLANOptions(vni: 4097, l2miss: true, l3miss: true)), mtu: 1450))
            let details = try Shell.check(["ip", "-n", fx.names[0], "-d", "link", "show", "vxlan0"])
            #expect(details.contains("vxlan id 4097") && details.contains("dstport 4789") && details.contains("nolearning")
                    && details.contains("proxy") && details.contains("l2miss") && details.contains("l3miss"))
            try nl.setLink(try nl.linkIndex("vxlan0"), up: true, master: bridge, name: "vx0")
            #expect(try nl.link(named: "vx0")?.master == bridge)
            #expect(Set(try nl.links().map(\.name)).isSuperset(of: ["lo", "br0", "veth0", "vx0"]))
            try nl.deleteLink(named: "veth0")
            #expect(try inB.link(named: "eth0") == nil, "deleting one end of a veth deletes both")
            try nl.deleteLink(named: "veth0")  // absent: fine
        }
    }

    @Test("addresses and the default route, read back")
    func addressesAndRoutes() throws {
        try withNamespaces { fx in
            let (_, a) = try fx.make("a")
            let nl = try fx.netlink(a)
            try nl.createLink(LinkSpec(name: "d0", kind: .bridge(), up: true))
            let index = try nl.linkIndex("d0")
            try nl.addAddress(ip("192.168.7.2"), prefixLength: 24, to: index)
            try nl.addAddress(ip("192.168.7.2"), prefixLength: 24, to: index)  // again: no error
            #expect(try nl.addresses().contains { $0.index == index && $0.address.v4 == ip("192.168.7.2") && $0.prefixLength == 24 })
            // IPv6 on the same link: added usable at once (no duplicate address detection), read
            // back in its own family, and `setOnlyAddress` replaces only its family's.
            try fx.thread.run(in: a) { try NetworkSysctl.set("ipv6/conf/d0/disable_ipv6", "0") }
            try nl.addAddress(ip6("fd00:7::2"), prefixLength: 64, to: index)
            #expect(try nl.addresses(.v6).contains { $0.index == index && $0.address == ip6("fd00:7::2") && $0.prefixLength == 64 })
            #expect(!(try nl.addresses().contains { $0.address.family == .v6 }), "an IPv4 dump holds no IPv6 address")
            let flags = try Shell.check(["ip", "-n", fx.names[0], "-6", "addr", "show", "dev", "d0"])
            let line = flags.split(separator: "\n").first { $0.contains("fd00:7::2/64") } ?? ""
            #expect(line.contains("nodad") && !line.contains("tentative"), "\(flags)")
            try nl.setOnlyAddress(ip6("fd00:7::3"), prefixLength: 64, on: index)
            let v6 = try nl.addresses(.v6).filter { $0.index == index && !$0.address.isLinkLocal }.map(\.address)
            #expect(v6 == [ip6("fd00:7::3")])
            #expect(try nl.addresses().contains { $0.index == index && $0.address.v4 == ip("192.168.7.2") })
            try nl.setDefaultRoute(via: ip("192.168.7.1"), device: index)
            #expect(try nl.routes().contains { $0.prefixLength == 0 && $0.gateway == ip("192.168.7.1") && $0.device == index })
            try nl.deleteAddress(IPAddress(ip("192.168.7.2")), prefixLength: 24, from: index)
            #expect(!(try nl.addresses().contains { $0.address.v4 == ip("192.168.7.2") }))
            try nl.deleteAddress(IPAddress(ip("192.168.7.2")), prefixLength: 24, from: index)  // absent: fine
        }
    }

    @Test("permanent neighbours and FDB entries: add twice, dump, delete twice")
    func neighboursAndFDB() throws {
        try withNamespaces { fx in
            let (name, a) = try fx.make("a")
            let nl = try fx.netlink(a)
            try nl.createLink(LinkSpec(name: "vxlan0", kind: .vxlan(VXLANOptions(vni: 42)), up: true))
            let vx = try nl.linkIndex("vxlan0")
            let mac = MACAddress(derivedFrom: ip("192.168.0.3"))
            // An IPv6 neighbour needs IPv6 on the device (the kernel refuses it otherwise).
            try fx.thread.run(in: a) { try NetworkSysctl.set("ipv6/conf/vxlan0/disable_ipv6", "0") }
            for _ in 0..<2 {
                try nl.addNeighbour(IPAddress(ip("192.168.0.3")), mac: mac, on: vx)
                try nl.addNeighbour(ip6("fd00::3"), mac: mac, on: vx)
                try nl.addForwardingEntry(mac, remote: ip("198.18.0.2"), on: vx)
            }
            #expect(try nl.neighbours(on: vx) == [NeighbourEntry(index: vx, address: IPAddress(ip("192.168.0.3")), mac: mac)])
            #expect(try nl.neighbours(on: vx, family: .v6) == [NeighbourEntry(index: vx, address: ip6("fd00::3"), mac: mac)])
            #expect(try nl.neighbours(on: vx, forwardingDatabase: true).contains(NeighbourEntry(index: vx, address: IPAddress(ip("198.18.0.2")), mac: mac)))
            let shown = try Shell.check(["ip", "-n", name, "-6", "neigh", "show", "dev", "vxlan0"])
            #expect(shown.contains("fd00::3 lladdr \(mac) PERMANENT"), "\(shown)")
            let fdb = try Shell.check(["bridge", "-n", name, "fdb", "show", "dev", "vxlan0"])
            #expect(fdb.contains("\(mac) dst 198.18.0.2 self permanent"))
            for _ in 0..<2 {
                try nl.deleteNeighbour(IPAddress(ip("192.168.0.3")), on: vx)
                try nl.deleteNeighbour(ip6("fd00::3"), on: vx)
                try nl.deleteForwardingEntry(mac, remote: ip("198.18.0.2"), on: vx)
            }
            #expect(try nl.neighbours(on: vx).isEmpty && nl.neighbours(on: vx, family: .v6).isEmpty)
            #expect(!(try nl.neighbours(on: vx, forwardingDatabase: true).contains { $0.mac == mac }))
        }
    }
}
