import ArgumentParser
import DepotHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The `depot` command: a shared, verified store of GGUF models.
@main
struct Depot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depot",
        abstract: "Manage GGUF language models in one shared, verified store.",
        discussion: """
            The store lives in $DEPOT_HOME, else $XDG_DATA_HOME/depot, else ~/.local/share/depot; \
            every command takes --store to use another. Exit codes: 0 ok, 1 failure, 2 bad input, \
            3 not found, 4 conflict (in use or already exists), 5 corrupt or checksum mismatch, 6 disk full, \
            7 store not writable, 10 refused by the server, 11 server unreachable (partial download kept), \
            12 server cannot serve a verifiable download, 13 paused (partial kept), 130 cancelled or interrupted.
            """,
        subcommands: [List.self, Show.self, Pull.self, Import.self, Export.self, Demo.self, Use.self, Release.self, Validate.self,
                      Delete.self, Prune.self, GC.self, Jobs.self, CatalogCommand.self, TorrentCommand.self, Serve.self, CoordinatorCommand.self, Credits.self]
    )

    static func main() async {
        // A write past a file-size limit must fail with EFBIG and be reported, not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        if CommandLine.arguments.dropFirst().first == "coordinator" { EventLoopExecutor.install() }
        await main(nil)
    }
}
