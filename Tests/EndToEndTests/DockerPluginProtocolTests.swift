import ClusterHarness
import Foundation
import TestSupport
import Testing

/// libnetwork's remote driver protocol as dnsd serves it on its plugin socket, called with curl
/// as dockerd calls it (POST /Iface.Method with JSON): the replies' shapes, the two error forms
/// (`Err` for the network driver, `Error` for IPAM), 404 for an unknown call. The calls that
/// need a real dockerd are in RuntimeTests.
@Suite("Docker plugin protocol", .serialized, .timeLimit(.minutes(2)))
struct DockerPluginProtocolTests {
    @Test("Activate, capabilities, IPAM pools and addresses from the cluster, errors in libnetwork's forms, unknown calls 404")
    func protocolShapes() throws {
        let fixture = try PluginFixture("plugin")
        defer { fixture.close() }
        let cluster = fixture.cluster
        func call(_ method: String, _ body: String = "{}") throws -> (status: Int, json: [String: Any]) {
            let (status, json) = try fixture.call(method, body)
            return (status, json ?? [:])
        }
        #expect(try call("Plugin.Activate").json["Implements"] as? [String] == ["NetworkDriver", "IpamDriver"])
        let capabilities = try call("NetworkDriver.GetCapabilities").json
        #expect(capabilities["Scope"] as? String == "local" && capabilities["ConnectivityScope"] as? String == "global")
        #expect(try call("IpamDriver.GetDefaultAddressSpaces").json["LocalDefaultAddressSpace"] as? String == "dnsd")
        #expect(try call("IpamDriver.GetCapabilities").json["RequiresMACAddress"] as? Bool == false)

        // IPAM errors are {"Error": ...}; network driver errors {"Err": ...}.
        let v6 = try call("IpamDriver.RequestPool", #"{"AddressSpace":"dnsd","Pool":"192.168.90.0/24","V6":true}"#)
        #expect(v6.status == 200 && (v6.json["Error"] as? String)?.contains("is not an IPv6 subnet") == true, "\(v6.json)")
        let noPool = try call("IpamDriver.RequestPool", #"{"AddressSpace":"dnsd","Pool":""}"#)
        #expect((noPool.json["Error"] as? String)?.contains("--subnet") == true)
        let pool = try call("IpamDriver.RequestPool", #"{"AddressSpace":"dnsd","Pool":"192.168.90.0/24"}"#).json
        #expect(pool["PoolID"] as? String == "192.168.90.0/24" && pool["Pool"] as? String == "192.168.90.0/24")
        let noNetwork = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Address":""}"#)
        #expect((noNetwork.json["Error"] as? String)?.contains("no dnsd network has subnet") == true, "\(noNetwork.json)")
        let gateway = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#)
        #expect(gateway.json["Address"] as? String == "192.168.90.1/24", "\(gateway.json)")

        // With the dnsd network: addresses are claims in the cluster IPAM, released again.
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet", "192.168.90.0/24", "dnet"]).status == 0)
        // The one flag a Docker container needs for names on other hosts.
        #expect(try cluster.dnsd(1, ["docker", "dns-args", "dnet"]).stdout == "--dns 192.168.90.1\n")
        let unknown = try cluster.dnsd(1, ["docker", "dns-args", "nosuch"])
        #expect(unknown.status != 0 && unknown.stderr.split(separator: "\n").count == 1)
        let first = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Address":""}"#).json
        #expect(first["Address"] as? String == "192.168.90.2/24", "\(first)")
        let pinned = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Address":"192.168.90.50"}"#).json
        #expect(pinned["Address"] as? String == "192.168.90.50/24")
        let taken = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Address":"192.168.90.50"}"#).json
        #expect(taken["Error"] != nil, "\(taken)")
        #expect(try call("IpamDriver.ReleaseAddress", #"{"PoolID":"192.168.90.0/24","Address":"192.168.90.50"}"#).json.isEmpty)
        let again = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.90.0/24","Address":"192.168.90.50"}"#).json
        #expect(again["Address"] as? String == "192.168.90.50/24", "released, so free again: \(again)")

        // Endpoints: dnsd's MAC for Docker's address; one outside every network is an Err.
        let endpoint = try call("NetworkDriver.CreateEndpoint", #"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"192.168.90.2/24"}}"#).json
        #expect((endpoint["Interface"] as? [String: Any])?["MacAddress"] as? String == "02:42:c0:a8:5a:02", "\(endpoint)")
        let outside = try call("NetworkDriver.CreateEndpoint", #"{"NetworkID":"n1","EndpointID":"e2","Interface":{"Address":"10.1.2.3/24"}}"#).json
        #expect(outside["Err"] != nil, "\(outside)")
        #expect(try call("NetworkDriver.Join", #"{"NetworkID":"n1","EndpointID":"nosuch","SandboxKey":"/x"}"#).json["Err"] != nil)
        #expect(try call("NetworkDriver.DeleteEndpoint", #"{"NetworkID":"n1","EndpointID":"e1"}"#).json.isEmpty)
        #expect(try call("NetworkDriver.EndpointOperInfo", #"{"NetworkID":"n1","EndpointID":"e1"}"#).json["Value"] != nil)
        #expect(try call("NetworkDriver.ProgramExternalConnectivity", #"{"NetworkID":"n1","EndpointID":"e1"}"#).json.isEmpty)

        // A dnsd network with Docker's default IPAM (addresses per host, not per cluster) is
        // refused in CreateNetwork, in one line (issue 21, item 7).
        let defaultIPAM = try call("NetworkDriver.CreateNetwork",
                                   #"{"NetworkID":"n9","Options":{},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"192.168.91.1/24","Pool":"192.168.91.0/24"}],"IPv6Data":[]}"#)
        let line = defaultIPAM.json["Err"] as? String ?? ""
        #expect(defaultIPAM.status == 200 && line.contains("--ipam-driver dnsd") && !line.contains("\n"), "\(defaultIPAM.json)")

        // An unknown call: 404, so libnetwork skips what it may skip.
        #expect(try call("NetworkDriver.NoSuchMethod").status == 404)
        #expect(try call("Nonsense").status == 404)
        // A malformed body is refused as such (not by a later check that happens to fail), in each
        // interface's form, and the daemon goes on.
        let notJSON = try call("IpamDriver.RequestPool", "{not json").json["Error"] as? String ?? ""
        #expect(notJSON.contains("not a JSON object"), "\(notJSON)")
        let notObject = try call("NetworkDriver.Join", "[1, 2]").json["Err"] as? String ?? ""
        #expect(notObject.contains("not a JSON object"), "\(notObject)")
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)

        // Join: the veth's end in the host's namespace (named after the endpoint), `eth` inside
        // the container, the network's gateway, no gateway service from Docker (dnsd's egress is
        // behind that gateway); DeleteEndpoint removes the veth.
        let id = "3f" + String(repeating: "a1", count: 31)
        let created = try call("NetworkDriver.CreateEndpoint", #"{"NetworkID":"n1","EndpointID":"\#(id)","Interface":{"Address":"192.168.90.3/24"}}"#)
        #expect(created.json["Interface"] != nil, "\(created.json)")
        let join = try call("NetworkDriver.Join", #"{"NetworkID":"n1","EndpointID":"\#(id)","SandboxKey":"/var/run/docker/netns/3fa1","Options":{}}"#).json
        let interface = join["InterfaceName"] as? [String: Any] ?? [:]
        let hostEnd = "dnsd" + id.prefix(11)
        #expect(interface["SrcName"] as? String == hostEnd && interface["DstPrefix"] as? String == "eth", "\(join)")
        #expect(join["Gateway"] as? String == "192.168.90.1" && join["DisableGatewayService"] as? Bool == true, "\(join)")
        let host = cluster.hosts[0].name
        #expect(try Shell.run(["ip", "-n", host, "link", "show", hostEnd]).status == 0, "the veth's host end is there")
        let badKey = try call("NetworkDriver.Join", #"{"NetworkID":"n1","EndpointID":"\#(id)","SandboxKey":"relative/path"}"#).json
        #expect((badKey["Err"] as? String)?.contains("SandboxKey") == true, "\(badKey)")
        #expect(try call("NetworkDriver.DeleteEndpoint", #"{"NetworkID":"n1","EndpointID":"\#(id)"}"#).json.isEmpty)
        #expect(try Shell.run(["ip", "-n", host, "link", "show", hostEnd]).status != 0, "gone with DeleteEndpoint")

        // CreateNetwork judges what it can at once (Docker never sends the name): a subnet
        // overlapping a dnsd network's is refused in dnsd's line; dnet's own subnet is dnet.
        let overlapping = try call("NetworkDriver.CreateNetwork",
                                   #"{"NetworkID":"n8","Options":{},"IPv4Data":[{"AddressSpace":"dnsd","Gateway":"192.168.90.129/25","Pool":"192.168.90.128/25"}],"IPv6Data":[]}"#)
        #expect((overlapping.json["Err"] as? String)?.contains("overlaps dnsd network 'dnet'") == true, "\(overlapping.json)")
        let wrongGateway = try call("NetworkDriver.CreateNetwork",
                                    #"{"NetworkID":"n7","Options":{},"IPv4Data":[{"AddressSpace":"dnsd","Gateway":"192.168.90.9/24","Pool":"192.168.90.0/24"}],"IPv6Data":[]}"#)
        #expect((wrongGateway.json["Err"] as? String)?.contains("has gateway 192.168.90.1") == true, "\(wrongGateway.json)")
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
    }

    @Test("dual-stack: V6 pools, IPv6 addresses from the cluster IPAM, AddressIPv6 at CreateEndpoint, IPv6Data judged at CreateNetwork")
    func dualStack() throws {
        let fixture = try PluginFixture("plugin6")
        defer { fixture.close() }
        let cluster = fixture.cluster
        /// The reply's JSON object; a reply that is not HTTP 200 with a JSON object fails the test.
        func call(_ method: String, _ body: String) throws -> [String: Any] {
            let (status, json) = try fixture.call(method, body)
            #expect(status == 200 && json != nil, "\(method): \(status)")
            return json ?? ["Err": "no reply"]
        }
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet", "192.168.92.0/24", "--subnet", "fd00:92::/64", "dnet6"]).status == 0)
        // The V6 pool (Docker asks for one per family with --ipv6): its id is the subnet as dnsd writes it.
        let pool = try call("IpamDriver.RequestPool", #"{"AddressSpace":"dnsd","Pool":"fd00:92:0::/64","V6":true}"#)
        #expect(pool["PoolID"] as? String == "fd00:92::/64" && pool["Pool"] as? String == "fd00:92::/64", "\(pool)")
        let gateway = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#)
        #expect(gateway["Address"] as? String == "fd00:92::1/64", "the network's IPv6 gateway: \(gateway)")
        let first = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Address":""}"#)
        #expect(first["Address"] as? String == "fd00:92::2/64", "\(first)")
        let pinned = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:92::50"}"#)
        #expect(pinned["Address"] as? String == "fd00:92::50/64", "\(pinned)")
        let taken = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:92::50"}"#)["Error"] as? String
        #expect(taken == "address fd00:92::50 is already in use", "\(taken ?? "")")
        let outside = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:93::5"}"#)["Error"] as? String
        #expect(outside == "address fd00:93::5 is not in subnet fd00:92::/64", "\(outside ?? "")")
        #expect(try call("IpamDriver.ReleaseAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:92::50"}"#).isEmpty)
        let again = try call("IpamDriver.RequestAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:92::50"}"#)
        #expect(again["Address"] as? String == "fd00:92::50/64", "released, so free again: \(again)")
        let tooLong = try call("IpamDriver.RequestPool", #"{"AddressSpace":"dnsd","Pool":"fd00:92::/121","V6":true}"#)["Error"] as? String
        #expect(tooLong?.contains("at most /120") == true, "\(tooLong ?? "")")
        #expect(try call("IpamDriver.ReleaseAddress", #"{"PoolID":"fd00:92::/64","Address":"fd00:92::1"}"#).isEmpty, "the gateway is no claim")
        let v4 = try call("IpamDriver.RequestAddress", #"{"PoolID":"192.168.92.0/24","Address":""}"#)
        #expect(v4["Address"] as? String == "192.168.92.2/24", "\(v4)")

        // CreateEndpoint with both addresses: published later with both; an IPv6 address outside
        // the network's prefix is refused.
        let endpoint = try call("NetworkDriver.CreateEndpoint",
                                #"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"192.168.92.2/24","AddressIPv6":"fd00:92::2/64"}}"#)
        #expect((endpoint["Interface"] as? [String: Any])?["MacAddress"] as? String == "02:42:c0:a8:5c:02", "\(endpoint)")
        let foreign = try call("NetworkDriver.CreateEndpoint",
                               #"{"NetworkID":"n1","EndpointID":"e2","Interface":{"Address":"192.168.92.3/24","AddressIPv6":"fd00:99::3/64"}}"#)
        #expect((foreign["Err"] as? String)?.contains("not in an IPv6 subnet of dnsd network 'dnet6'") == true, "\(foreign)")
        #expect(try call("NetworkDriver.DeleteEndpoint", #"{"NetworkID":"n1","EndpointID":"e1"}"#).isEmpty)

        // CreateNetwork: dnet6's own two pools are dnet6; another IPv6 pool with its IPv4 one, an
        // overlapping IPv6 pool, or an IPv6 pool from Docker's own IPAM are refused in one line.
        func create(_ v4: String, _ v6: String, space: String = "dnsd") throws -> String? {
            let body = #"{"NetworkID":"n5","Options":{},"IPv4Data":[{"AddressSpace":"dnsd","Pool":"\#(v4)"}],"# +
                #""IPv6Data":[{"AddressSpace":"\#(space)","Pool":"\#(v6)"}]}"#
            return try call("NetworkDriver.CreateNetwork", body)["Err"] as? String
        }
        #expect(try create("192.168.92.0/24", "fd00:92::/64") == nil)
        #expect(try create("192.168.92.0/24", "fd00:94::/64")?.contains("has IPv6 subnet fd00:92::/64, not fd00:94::/64") == true)
        #expect(try create("192.168.95.0/24", "fd00:92:0:0:1::/80")?.contains("overlaps dnsd network 'dnet6'") == true)
        #expect(try create("192.168.96.0/24", "fd00:96::/64", space: "LocalDefault")?.contains("--ipam-driver dnsd") == true)
        #expect(try cluster.dnsd(1, ["ps"]).status == 0)
    }
}

/// One daemon (local store) serving the Docker plugin socket, called with curl as dockerd calls it.
private final class PluginFixture {
    let plugin: String
    let cluster: ClusterHarness

    init(_ name: String) throws {
        plugin = TestRun.temporaryPath(name) + ".sock"
        cluster = try ClusterHarness(hosts: 1, store: "local", daemonOptions: ["--docker-plugin", plugin, "--docker-api", "/nonexistent/docker.sock"])
    }

    func close() {
        cluster.close()
        try? FileManager.default.removeItem(atPath: plugin)
    }

    /// POST /METHOD with `body`: the HTTP status and the reply's JSON object (nil when it is none).
    func call(_ method: String, _ body: String) throws -> (status: Int, json: [String: Any]?) {
        let result = try Shell.run(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", plugin, "-X", "POST", "-d", body, "http://plugin/\(method)"])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let json = (try? JSONSerialization.jsonObject(with: Data(lines.dropLast().joined(separator: "\n").utf8))) as? [String: Any]
        return (Int(lines.last ?? "") ?? 0, json)
    }
}
