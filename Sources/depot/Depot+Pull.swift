import ArgumentParser
import Foundation
import ModelCatalog
import ModelStore
import ModelTransfer

extension Depot {
    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a model (and its projector) into the store, verified and resumable.",
            discussion: """
                SOURCE is an http(s) URL, hf://owner/repo[@revision]/file.gguf, hf.co/owner/repo[:QUANT] \
                (the repository's GGUF file of that quantization, Q4_K_M by default, with its projector, as \
                Ollama pulls such names), or a catalog model id \
                (verified against the catalog's SHA-256). An interrupted pull \
                resumes where it stopped when run again. The entry appears only once every file \
                matches its SHA-256 (from --sha256 or the server); with neither it is marked unverified.
                """)

        @Argument(help: "URL, hf:// reference or catalog id of the GGUF weights.") var source: String
        @Option(name: .customLong("mirror"), help: "Another address of the same weights, tried when the source fails (repeatable).")
        var mirrors: [String] = []
        @Option(help: "URL or hf:// reference of the multimodal projector.") var projector: String?
        @Option(help: "Entry name, family:tag (default: from the file name and quantization).") var name: String?
        @Option(help: "App that uses this model from now on.") var app: String?
        @Option(help: "Expected SHA-256 of the weights.") var sha256: String?
        @Option(name: .customLong("projector-sha256"), help: "Expected SHA-256 of the projector.") var projectorSHA256: String?
        @Option(name: .customLong("peer"),
                help: "A Depot agent on this machine or LAN that seeds the weights (http://HOST:PORT, repeatable): its pieces are fetched beside the source, each checked against the catalog's pieces root.")
        var peers: [String] = []
        @Option(help: "Parallel connections per file.") var connections = 8
        @Option(help: "Seconds without data before a connection is restarted.") var stallTimeout: Double = 30
        @Option(help: "Bearer token for the source's host (default for hf://: $HF_TOKEN). Never stored.") var token: String?
        @Flag(help: "Replace an existing entry of the same name that holds other files.") var force = false
        @Flag(help: "Download a catalog model that has no SHA-256 (it is recorded as unverified).") var allowUnverified = false
        @OptionGroup var catalog: CatalogOptions
        @OptionGroup var options: StoreOptions

        var isCatalogID: Bool { !source.contains("://") && HuggingFaceName(source) == nil }

        func validate() throws {
            guard (1...64).contains(connections) else { throw ValidationError("--connections must be between 1 and 64") }
            for peer in peers where URL(string: peer)?.scheme.map({ ["http", "https"].contains($0) }) != true || URL(string: peer)?.host == nil {
                throw ValidationError("--peer takes an agent's address, http://HOST:PORT (got '\(peer)')")
            }
            _ = try CoordinatorCommand.seconds(stallTimeout, "--stall-timeout", maximum: 86_400)
        }

        func run() async throws {
            let store = try options.openStore()
            var configuration = ModelDownloader.Configuration()
            configuration.connections = connections
            configuration.stallTimeout = try CoordinatorCommand.seconds(stallTimeout, "--stall-timeout", maximum: 86_400)
            let downloader: ModelDownloader
            var request: PullRequest
            let entry: CatalogEntry? = isCatalogID ? try await catalogEntry(store) : nil
            do throws(TransferError) {
                downloader = try ModelDownloader(store: store, configuration: configuration)
                let hfToken = source.hasPrefix("hf://") || HuggingFaceName(source) != nil ? ProcessInfo.processInfo.environment["HF_TOKEN"] : nil
                let weightsHash: ExpectedHash? = if let sha256 { try ExpectedHash(sha256: sha256, source: .user) } else { nil }
                let projectorHash: ExpectedHash? = if let projectorSHA256 {
                    try ExpectedHash(sha256: projectorSHA256, source: .user)
                } else { nil }
                request = PullRequest(source: source, mirrors: mirrors, projector: projector, name: name, app: app, sha256: weightsHash,
                                      projectorSHA256: projectorHash, token: token ?? hfToken, replace: force)
            } catch {
                throw fail(error)
            }
            if let hubName = HuggingFaceName(source) {
                do throws(TransferError) {
                    var resolved = try await hubName.pullRequest(endpoint: TransferSource.huggingFaceEndpoint(), token: request.token, app: app)
                    resolved.mirrors = mirrors
                    resolved.replace = force
                    if let name { resolved.name = name }
                    request = resolved
                } catch {
                    await downloader.shutdown()
                    throw fail(error)
                }
            }
            if let entry {
                do throws(CatalogError) {
                    request = try entry.pullRequest(app: app, token: token, allowUnverified: allowUnverified, replace: force)
                    if let name { request.name = name }
                    request.mirrors += mirrors
                } catch {
                    await downloader.shutdown()
                    Output.error(error.message)
                    throw ExitCode(error.exitCode)
                }
            }
            if !peers.isEmpty {
                do throws(ExitCode) { request = try await addingPeers(to: request, entry: entry) } catch {
                    await downloader.shutdown()
                    throw error
                }
            }
            try await PullDisplay.run(downloader, json: options.json) { display throws(TransferError) in
                try await downloader.pull(request) { display.show($0) }
            }
        }

        /// The `--peer` agents as sources of the weights, which a piece manifest must check:
        /// the catalog's, or a peer's layer leading to the catalog's pieces root.
        private func addingPeers(to request: PullRequest, entry: CatalogEntry?) async throws(ExitCode) -> PullRequest {
            guard let sha256 = request.sha256?.sha256 else {
                Output.error("--peer needs the weights' SHA-256 (a catalog model, or --sha256): a peer's bytes are checked against it")
                throw ExitCode(2)
            }
            var peered = request
            peered.peers = peers.map { PeerSource(url: String($0.reversed().drop { $0 == "/" }.reversed()) + "/p2p/blobs/sha256/\(sha256)", ticket: nil) }
            if peered.pieces == nil, let entry, let root = entry.piecesRoot {
                peered.pieces = await PieceManifest.fromPeers(peered.peers, piecesRoot: root, pieceSize: entry.pieceSize, fileSize: entry.fileSizeBytes)
            }
            guard peered.pieces != nil else {
                Output.error("--peer needs a catalog model with a pieces root that a peer's piece layer leads to: no peer answered with one")
                throw ExitCode(2)
            }
            return peered
        }

        private func catalogEntry(_ store: ModelStore) async throws(ExitCode) -> CatalogEntry {
            let snapshot = try await catalog.load(into: store)
            guard let entry = snapshot.catalog.entry(source) else {
                Output.error("'\(source)' is neither a URL, an hf:// reference nor a model in the catalog (\(snapshot.source)); `depot catalog list` shows what it offers")
                throw ExitCode(3)
            }
            return entry
        }

        private func fail(_ error: TransferError) -> ExitCode {
            Output.error(error.message)
            return ExitCode(error.exitCode)
        }
    }
}

extension TransferError {
    /// Process exit code (listed in `depot --help`).
    var exitCode: Int32 {
        switch code {
        case .invalidSource: 2
        case .checksumMismatch: 5
        case .diskFull: 6
        case .rejected: 10
        case .unreachable: 11
        case .unsupportedServer: 12
        case .cancelled: 130
        case .paused: 13
        case .notFound: 3
        case .conflict: 4
        case .store: storeError?.exitCode ?? 1
        case .io: 1
        }
    }
}
