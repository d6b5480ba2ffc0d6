import ArgumentParser
import DepotAgent
import DepotHTTP
import Foundation
import ModelRuntime

extension Depot {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the agent daemon: EdgeCoder /model API, Ollama-compatible /api, download jobs, web UI.",
            discussion: """
                Listens on 127.0.0.1:4302 by default. Binding to another address needs --token; every \
                request that changes something must then carry 'Authorization: Bearer TOKEN'. SIGTERM \
                or Ctrl-C stops it gracefully: running downloads are paused and resume later.
                """)

        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port (0: any free port, printed at start).") var port = 4302
        @Option(help: "Bearer token every request then needs but the web UI's files and /api/version (needed off loopback; default $DEPOT_AGENT_TOKEN).")
        var token: String?
        @Option(help: "Web origins besides the agent's own pages that may call it, comma-separated, * as a wildcard (default $DEPOT_ORIGINS).")
        var origins: String?
        @Option(name: .customLong("allowed-host"), help: "A host name this agent answers to besides IP addresses and localhost (repeatable).")
        var allowedHosts: [String] = []
        @Option(help: "How long an idle model stays loaded: 5m, 30s, 0 (unload at once), or never (also --keep-alive=-1).")
        var keepAlive = "5m"
        @Option(help: "Context length per request, in tokens.") var contextLength: UInt32 = 4096
        @Option(help: "Parallel connections per download.") var connections = 8
        @Option(help: "Open HTTP connections at most (also kept below the descriptor limit, ulimit -n).") var maxConnections = 512
        @Option(help: "Mesh coordinator to register and heartbeat with (e.g. http://10.0.0.2:4310).") var coordinator: String?
        @Option(help: "Seconds between heartbeats to the coordinator.") var heartbeatInterval: Double = 15
        @Option(help: "The coordinator's join token, if it admits agents by token (default $DEPOT_JOIN_TOKEN); never sent, only proven.")
        var joinToken: String?
        @Flag(help: "Print this agent's id and public key (made on first use) and exit.") var printIdentity = false
        @Flag(help: "Announce this agent to, and hear, nearby agents over UDP multicast.") var discovery = false
        @Option(help: "Multicast group for discovery.") var discoveryGroup = "239.255.42.99"
        @Option(help: "UDP port for discovery.") var discoveryPort: UInt16 = 43020
        @Option(help: "IPv4 address of the interface to announce on.") var discoveryInterface = "0.0.0.0"
        @Option(help: "Seconds between announcements (peers are dropped after three missed ones).") var announceInterval: Double = 5
        @Flag(help: "Serve this agent's verified models to peers on this machine and its private network.") var seed = false
        @Option(help: "Most peers served at once when seeding.") var seedUploads = 4
        @Option(help: "Upload rate cap over all peers when seeding, in bytes per second (K, M, G suffixes; default: none).") var seedRate: String?
        @OptionGroup var catalog: CatalogOptions
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = try options.openStore()
            if printIdentity {
                let identity = try Agent.identity(storeRoot: store.root)
                print("\(identity.id) \(identity.publicKey)")
                return
            }
            var configuration = AgentConfiguration()
            configuration.host = host
            guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
            guard (64...(1 << 20)).contains(contextLength) else { throw ValidationError("--context-length must be 64 to 1048576 tokens") }
            configuration.port = port
            configuration.token = token ?? ProcessInfo.processInfo.environment["DEPOT_AGENT_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            let originList = origins ?? ProcessInfo.processInfo.environment["DEPOT_ORIGINS"] ?? ""
            configuration.origins = originList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            configuration.allowedHosts = allowedHosts
            configuration.catalog = catalog.source
            configuration.catalogKey = catalog.key
            configuration.contextLength = contextLength
            guard (1...64).contains(connections) else { throw ValidationError("--connections must be between 1 and 64") }
            configuration.download.connections = connections
            guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be 1 to 1000000") }
            configuration.limits.maximumConnections = maxConnections
            configuration.coordinator = coordinator.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
            configuration.heartbeatInterval = try CoordinatorCommand.seconds(heartbeatInterval, "--heartbeat-interval")
            configuration.joinToken = joinToken ?? ProcessInfo.processInfo.environment["DEPOT_JOIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            // Checked even without --discovery: a bad value is a mistake whether or not it is used.
            let interval = try CoordinatorCommand.seconds(announceInterval, "--announce-interval")
            if discovery {
                var nearby = NearbyDiscovery.Configuration()
                nearby.group = discoveryGroup
                nearby.port = discoveryPort
                nearby.interface = discoveryInterface
                nearby.interval = interval
                configuration.discovery = nearby
            }
            if seed {
                guard (1...256).contains(seedUploads) else { throw ValidationError("--seed-uploads must be between 1 and 256") }
                var rate: UInt64?
                if let seedRate {
                    guard let bytes = Self.byteCount(seedRate), bytes > 0 else {
                        throw ValidationError("--seed-rate takes bytes per second, such as 500K, 10M or 1G")
                    }
                    rate = bytes
                }
                configuration.seed = SeedPolicy(maximumUploads: seedUploads, bytesPerSecond: rate)
            } else if seedRate != nil {
                throw ValidationError("--seed-rate applies only with --seed")
            }
            guard let keepAliveDuration = Self.duration(keepAlive) else {
                throw ValidationError("--keep-alive takes a duration such as 5m, 30s, 0, or never")
            }
            configuration.keepAlive = keepAliveDuration.value
            let agent: Agent
            do {
                agent = try Agent(store: store, configuration: configuration, engine: LlamaEngine(contextLength: contextLength))
            } catch {
                Output.error(error.message)
                throw ExitCode(2)
            }
            let host = self.host
            try await agent.run { port in
                // Scripts and tests wait for this line.
                FileHandle.standardOutput.write(Data("depot agent listening on http://\(host):\(port)\nweb UI: http://\(host):\(port)/\n".utf8))
            }
        }

        /// "1048576", "500K", "10M" or "1G" (powers of 1024), at most 1 TiB.
        static func byteCount(_ text: String) -> UInt64? {
            let scales: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
            let scale = text.last.flatMap { scales[Character($0.uppercased())] }
            guard let number = UInt64(scale == nil ? text : String(text.dropLast())), number <= (1 << 40) / (scale ?? 1) else { return nil }
            return number * (scale ?? 1)
        }

        /// "5m", "30s", "1h", "0", "-1" or "never" (forever: nil).
        static func duration(_ text: String) -> (value: Duration?, Void)? {
            if text == "never" { return (nil, ()) }
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("", 1)]
            for (suffix, scale) in units where text.hasSuffix(suffix) {
                guard let number = Double(text.dropLast(suffix.count)), number.isFinite else { continue }
                if number < 0 { return (nil, ()) }
                // A year at most: beyond it the milliseconds would not fit (1e300 trapped).
                guard number * scale <= 366 * 86_400 else { return nil }
                return (.milliseconds(Int64(number * scale * 1000)), ())
            }
            return nil
        }
    }
}
