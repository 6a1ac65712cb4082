// swift-tools-version:6.0
import PackageDescription

/// Hot-path targets are built with exclusivity checks off: the responder's
/// buffers are owned by one thread and the checks cost ~10% of answering.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "dnsd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dnsd", targets: ["dnsd"]),
        .executable(name: "dnsd-daemon", targets: ["dnsd-daemon"]),
        .library(name: "Resolver", targets: ["Resolver"]),
        .library(name: "Netns", targets: ["Netns"]),
        .library(name: "Addressing", targets: ["Addressing"]),
        .library(name: "HostsWriter", targets: ["HostsWriter"]),
        .library(name: "OverlayNet", targets: ["OverlayNet"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "ClusterState", targets: ["ClusterState"]),
        .library(name: "Node", targets: ["Node"]),
        .library(name: "ControlAPI", targets: ["ControlAPI"]),
        // The CNI plugin runtimes execute (installed as `dnsd` in their plugin directory).
        .executable(name: "dnsd-cni", targets: ["dnsd-cni"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The control API's HTTP/1.1 server on the unix socket (not the DNS hot path).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // /metrics: the swift-metrics API, exported in Prometheus's text format.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C shims for what Swift's Glibc does not import: setns/unshare, epoll,
        // recvmmsg/sendmmsg (all need _GNU_SOURCE or packed structs).
        .target(name: "CShim"),
        // System libraries. ldns is the independent oracle the tests check every reply against;
        // libmnl is for the netlink data plane; libcurl (the store clients) is loaded at run time.
        .systemLibrary(name: "CLDNS", pkgConfig: "ldns", providers: [.apt(["libldns-dev"])]),
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        // libcurl's header (libcurl4-openssl-dev) and a loader: the library is dlopen'ed on first use.
        .target(name: "CCurl"),

        // Value types every layer shares: IPv4/IPv6 addresses, subnets, validated host labels.
        .target(name: "Addressing"),

        // Network namespaces: open, create, delete, run a closure inside one on a dedicated thread.
        .target(name: "Netns", dependencies: ["CShim"]),

        // The data plane: netlink over libmnl, namespaces, bridges, VXLAN, veths, peers, IPAM.
        .target(name: "OverlayNet", dependencies: ["CMnl", "CShim", "Netns", "Addressing", .product(name: "Logging", package: "swift-log")]),

        // The shared store: etcd (v3 JSON gateway over libcurl), Consul (KV HTTP API), local.
        .target(name: "Store", dependencies: ["CCurl", .product(name: "Logging", package: "swift-log")]),

        // The records the store holds (networks, endpoints, hosts) as value types: what the CLI
        // decodes too, so it needs no store client.
        .target(name: "ClusterRecords", dependencies: ["Addressing"]),

        // The cluster's state in the store: key layout, networks/VNIs, IPAM, names.
        .target(name: "ClusterState", dependencies: ["ClusterRecords", "Store", "Addressing", .product(name: "Logging", package: "swift-log")]),

        // The embedded DNS responder.
        .target(
            name: "Resolver",
            dependencies: ["CShim", "Netns", "Addressing", .product(name: "Logging", package: "swift-log")],
            swiftSettings: hotPath
        ),

        // Per-sandbox hosts files and resolv.conf, updated in place.
        .target(
            name: "HostsWriter",
            dependencies: ["Netns", "Addressing", .product(name: "Logging", package: "swift-log")]
        ),

        // The control API's wire (request and reply bodies) and its unix-socket client, for every
        // client process: the CLI, the CNI plugin. Foundation only, so a client starts fast.
        .target(name: "ControlAPI", dependencies: ["ClusterRecords"]),

        // The daemon's core: the typed API (Command, CommandResult) every front-end calls, the
        // store-first commands, the reconciler and its projections, recovery, journal and cache.
        .target(
            name: "Node",
            dependencies: [
                "ControlAPI", "Resolver", "HostsWriter", "OverlayNet", "Store", "ClusterState", "Netns", "Addressing", "CShim",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The CNI plugin: a separate small executable (ControlAPI and Foundation only), because a
        // runtime starts it for every container and the daemon binary takes ~5 ms just to start.
        .executableTarget(name: "dnsd-cni", dependencies: ["ControlAPI", "Addressing"]),

        // The version, commit and build date (the last two stamped into the linked binary).
        .target(name: "CBuildStamp"),
        .target(name: "BuildInfo", dependencies: ["CBuildStamp"]),

        // One-line errors for the root command of each executable (DESIGN.md §2).
        .target(name: "CommandLineSupport", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // `dnsd`: the CLI, a client of the daemon's API; small, because every command is a process
        // start. `dnsd daemon` and `dnsd serve-dns` exec `dnsd-daemon`.
        .executableTarget(
            name: "dnsd",
            dependencies: [
                "ControlAPI", "CommandLineSupport", "ClusterRecords", "Addressing", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // `dnsd-daemon`: the servers: the daemon (core, HTTP API on SwiftNIO, metrics) and serve-dns.
        .executableTarget(
            name: "dnsd-daemon",
            dependencies: [
                "Node", "ControlAPI", "CommandLineSupport", "Resolver", "HostsWriter", "OverlayNet", "Store", "ClusterState", "Netns",
                "Addressing", "CShim", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // Drivers for the library-level benchmarks under bench/.
        .executableTarget(
            name: "dnsd-bench",
            dependencies: ["HostsWriter", "OverlayNet", "Netns", "Addressing", .product(name: "Logging", package: "swift-log")]
        ),

        // Helpers the test targets share: running commands, spawning servers.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "AddressingTests", dependencies: ["Addressing"]),
        .testTarget(name: "ResolverTests", dependencies: ["Resolver", "Netns", "Addressing", "CLDNS", "TestSupport"]),
        .testTarget(name: "HostsWriterTests", dependencies: ["HostsWriter", "Netns", "Addressing", "TestSupport"]),
        .testTarget(name: "OverlayTests", dependencies: ["OverlayNet", "Netns", "Addressing", "TestSupport"]),
        .testTarget(name: "NodeTests", dependencies: ["Node", "Store", "ClusterState", "Resolver", "HostsWriter", "Addressing", "TestSupport",
                                                   .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "ClusterState", "Addressing", "TestSupport", .product(name: "Logging", package: "swift-log")],
                    exclude: ["consul_double.py"]),
        // Simulated clusters for the end-to-end and fault tests: daemons (the `dnsd` executable,
        // built alongside) on simulated hosts, a real etcd or the Consul double, DNS probes.
        .target(name: "ClusterHarness", dependencies: ["OverlayNet", "Netns", "TestSupport"], path: "Tests/ClusterHarness"),
        .testTarget(name: "EndToEndTests", dependencies: ["ClusterHarness", "Netns", "TestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["dnsd-daemon"]),
        // Real container runtimes (podman, containerd) on simulated hosts, through the CNI plugin.
        .testTarget(name: "RuntimeTests", dependencies: ["ClusterHarness", "TestSupport"]),
        // Faults, load and hostile input (issue 6): store outage, host death, restarts at scale,
        // races, hand-written store values, bad CLI input, a noisy neighbour. Each prints its figure.
        .testTarget(name: "FaultTests", dependencies: ["ClusterHarness", "Netns", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
