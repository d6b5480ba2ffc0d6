import ArgumentParser
import DepotMesh
import Foundation

extension Depot {
    struct CoordinatorCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "coordinator",
            abstract: "Run a mesh coordinator: agents register and heartbeat; /mesh/capabilities and /mesh/route answer who runs what.")

        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port (0: any free port, printed at start).") var port = 4310
        @Option(help: "Directory for the coordinator's state (default: <store>/coordinator).") var state: String?
        @Option(help: "The agents' heartbeat interval in seconds; three missed beats make an agent offline.") var heartbeatInterval: Double = 15
        @Option(name: .customLong("peer"), help: ArgumentHelp(
            "A federation peer as URL#PUBLICKEY (repeatable): it gets this coordinator's summaries, and only peers' gossip is taken.",
            valueName: "url#key")) var peers: [String] = []
        @Flag(help: "Print this coordinator's id and public key (made on first use) and exit.") var printIdentity = false
        @Option(help: "Seconds between signed capability summaries to the peers.") var gossipInterval: Double = 60
        @OptionGroup var options: StoreOptions

        func run() async throws {
            guard heartbeatInterval > 0 else { throw ValidationError("--heartbeat-interval must be positive") }
            var configuration = Coordinator.Configuration()
            configuration.heartbeatInterval = .milliseconds(Int64(heartbeatInterval * 1000))
            guard gossipInterval > 0 else { throw ValidationError("--gossip-interval must be positive") }
            configuration.gossipInterval = .milliseconds(Int64(gossipInterval * 1000))
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
    }
}
