import ArgumentParser
import DepotHTTP
import DepotMesh
import Foundation

extension Depot {
    struct CoordinatorCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "coordinator",
            abstract: "Run a mesh coordinator: agents register and heartbeat; /mesh/capabilities and /mesh/route answer who runs what.",
            discussion: """
                Agents register with their Ed25519 key (`depot serve --coordinator URL`). --join decides which may: \
                open (any key), token (agents given --join-token), or keys (public keys listed in --join-keys FILE, \
                one per line; `depot serve --print-identity` shows an agent's).
                """)

        enum JoinMode: String, ExpressibleByArgument, CaseIterable { case open, token, keys }

        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port (0: any free port, printed at start).") var port = 4310
        @Option(help: "Directory for the coordinator's state (default: <store>/coordinator).") var state: String?
        @Option(help: "The agents' heartbeat interval in seconds; three missed beats make an agent offline.") var heartbeatInterval: Double = 15
        @Option(help: "Which agents may register: open, token or keys.") var join: JoinMode = .open
        @Option(help: "With --join token: the token agents must know (default $DEPOT_JOIN_TOKEN). Only its hash is kept.")
        var joinToken: String?
        @Option(help: "With --join keys: a file of agent public keys (base64), one per line.") var joinKeys: String?
        @Option(help: "Agents kept at most; offline ones heard from longest ago make room first.") var maxAgents = 50_000
        @Option(help: "Hours after which an offline agent is forgotten.") var agentRetention: Double = 168
        @Option(help: "Installed models one heartbeat may list.") var maxInstalledModels = 512
        @Option(help: "Models in one capability summary at most (those with the least capacity are left out).") var maxSummaryModels = 1_000
        @Option(help: "Open connections at most.") var maxConnections = 512
        @Option(name: .customLong("allowed-host"), help: "A host name this coordinator answers to besides IP addresses and localhost (repeatable).")
        var allowedHosts: [String] = []
        @Option(name: .customLong("peer"), help: ArgumentHelp(
            "A federation peer as URL#PUBLICKEY (repeatable): it gets this coordinator's summaries, and only peers' gossip is taken.",
            valueName: "url#key")) var peers: [String] = []
        @Flag(help: "Print this coordinator's id and public key (made on first use) and exit.") var printIdentity = false
        @Option(help: "Seconds between signed capability summaries to the peers.") var gossipInterval: Double = 60
        @Option(help: "Seconds a peer's summary may be dated in the future (clock differences).") var maxClockSkew: Double = 60
        @Option(help: "Seed credits per GiB a seeder sent and its downloader verified (before the rarity bonus).") var creditsPerGib = 1.0
        @Option(help: "Seed credits one agent may earn in a day at most.") var creditDailyCap = 1_000.0
        @Option(name: .customLong("same-owner"), help: ArgumentHelp(
            "Agent ids of one owner, comma-separated (repeatable): they earn no credits from each other.", valueName: "id,id,…"))
        var sameOwner: [String] = []
        @Option(help: "Distinct downloaders whose reports of bad pieces ban a seeder (7 days).") var reportsUntilBan = 2
        @OptionGroup var options: StoreOptions

        func run() async throws {
            var configuration = Coordinator.Configuration()
            guard creditsPerGib >= 0, creditsPerGib <= 1e6, creditDailyCap >= 0, creditDailyCap <= 1e12 else {
                throw ValidationError("--credits-per-gib must be 0 to 1000000 and --credit-daily-cap 0 to 1e12")
            }
            guard (1...1_000).contains(reportsUntilBan) else { throw ValidationError("--reports-until-ban must be 1 to 1000") }
            configuration.credits.creditsPerGiB = creditsPerGib
            configuration.credits.dailyCreditCap = creditDailyCap
            configuration.credits.reportsUntilBan = reportsUntilBan
            configuration.credits.ownerGroups = try sameOwner.map { group in
                let ids = group.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard ids.count >= 2, ids.allSatisfy({ $0.utf8.count == 16 && $0.allSatisfy(\.isHexDigit) }) else {
                    throw ValidationError("--same-owner takes two or more agent ids (16 hex digits each), comma-separated")
                }
                return Set(ids)
            }
            configuration.heartbeatInterval = try Self.seconds(heartbeatInterval, "--heartbeat-interval")
            configuration.gossipInterval = try Self.seconds(gossipInterval, "--gossip-interval")
            configuration.maximumClockSkew = try Self.seconds(maxClockSkew, "--max-clock-skew")
            configuration.agentRetention = try Self.seconds(agentRetention * 3600, "--agent-retention", maximum: 10 * 366 * 86_400)
            guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
            guard (1...10_000_000).contains(maxAgents) else { throw ValidationError("--max-agents must be 1 to 10000000") }
            guard (0...100_000).contains(maxInstalledModels) else { throw ValidationError("--max-installed-models must be 0 to 100000") }
            guard (1...100_000).contains(maxSummaryModels) else { throw ValidationError("--max-summary-models must be 1 to 100000") }
            guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be 1 to 1000000") }
            configuration.maximumAgents = maxAgents
            configuration.maximumInstalledModels = maxInstalledModels
            configuration.maximumSummaryModels = maxSummaryModels
            configuration.limits.maximumConnections = maxConnections
            configuration.allowedHosts = allowedHosts
            configuration.admission = try admission()
            do { configuration.peers = try peers.map(CoordinatorPeer.init(parsing:)) } catch { throw ValidationError("\(error)") }
            let directory = try state ?? options.openStore().root + "/coordinator"
            if printIdentity {
                let identity = try Coordinator.identity(directory: directory)
                print("\(identity.id) \(identity.publicKey)")
                return
            }
            let coordinator: Coordinator
            do { coordinator = try Coordinator(directory: directory, configuration: configuration) } catch {
                Output.error("cannot open the coordinator's state in \(directory): \(error)")
                throw ExitCode(7)
            }
            let host = self.host
            try await coordinator.run(host: host, port: port) { port in
                FileHandle.standardOutput.write(Data("depot coordinator \(coordinator.id) key \(coordinator.publicKey) listening on http://\(host):\(port)\n".utf8))
            }
        }

        func admission() throws -> Admission {
            let token = joinToken ?? ProcessInfo.processInfo.environment["DEPOT_JOIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            switch join {
            case .open:
                guard joinToken == nil, joinKeys == nil else {
                    throw ValidationError("--join-token and --join-keys need --join token or --join keys")
                }
                if token != nil {
                    Output.error("warning: $DEPOT_JOIN_TOKEN is set but --join is open: any agent may register (pass --join token to require it)")
                }
                return .open
            case .token:
                // A registration seen on the wire lets one guess the token offline: it must be long.
                guard let token, token.count >= 16 else {
                    throw ValidationError("--join token needs --join-token or $DEPOT_JOIN_TOKEN of at least 16 characters (e.g. `openssl rand -base64 24`)")
                }
                return .token(token)
            case .keys:
                guard let joinKeys else { throw ValidationError("--join keys needs --join-keys FILE") }
                do { return try Admission.keys(file: joinKeys) } catch { throw ValidationError("\(error)") }
            }
        }

        static func seconds(_ value: Double, _ option: String, maximum: Double = 366 * 86_400) throws -> Duration {
            guard let duration = Duration.checkedSeconds(value, maximum: maximum) else {
                throw ValidationError("\(option) must be a positive number of seconds, at most \(Int(maximum))")
            }
            return duration
        }
    }
}
