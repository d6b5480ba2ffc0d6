import ArgumentParser
import DepotAgent
import Foundation

extension Depot {
    struct Credits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the seed credits this agent (depot serve --seed) earned, as its coordinator's ledger keeps them.",
            discussion: """
                A peer that downloads from this agent signs a receipt for every piece it verified; the agent \
                hands them to the coordinator, which credits bytes × rate × rarity. Credits stay pending until \
                the downloader lists the model.
                """)

        @Option(help: "The mesh coordinator (e.g. http://10.0.0.2:4310).") var coordinator: String
        @Option(help: "Another agent's id (default: this store's agent).") var agent: String?
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let id = try agent ?? Agent.identity(storeRoot: options.openStore().root).id
            let url = coordinator.hasSuffix("/") ? String(coordinator.dropLast()) : coordinator
            do {
                let balance = try await Agent.credits(of: id, coordinator: url)
                if options.json { return Output.json(balance) }
                print("agent \(balance.agentId): \(String(format: "%.4f", balance.credits)) credits for \(ByteCountFormatter.string(fromByteCount: Int64(balance.bytesCredited), countStyle: .binary)) seeded")
                if balance.bytesPending > 0 {
                    print("pending: \(String(format: "%.4f", balance.pendingCredits)) credits for \(ByteCountFormatter.string(fromByteCount: Int64(balance.bytesPending), countStyle: .binary)), until the downloaders list the models")
                }
            } catch {
                Output.error(error.message)
                throw ExitCode(error.status.code == 400 ? 2 : 11)
            }
        }
    }
}
