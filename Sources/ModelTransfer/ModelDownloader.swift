import AsyncHTTPClient
import Foundation
import GGUF
import ModelStore
import NIOCore

/// Downloads models into a store: resumable after any interruption, in parallel ranges,
/// verified before anything becomes visible. Owns one HTTP client; call `shutdown()`.
public final class ModelDownloader: Sendable {
    /// Tuning; the defaults suit a CDN over the internet.
    public struct Configuration: Sendable {
        /// Parallel connections per file.
        public var connections = 8
        /// A connection that receives nothing for this long is restarted.
        public var stallTimeout: Duration = .seconds(30)
        /// Consecutive failed attempts per range before giving up (progress resets the count).
        public var maximumAttempts = 8
        /// First retry delay; doubles each attempt, with jitter.
        public var retryBaseDelay: Duration = .milliseconds(250)
        /// Longest retry delay.
        public var retryMaximumDelay: Duration = .seconds(10)
        /// Journal checkpoints come after this many bytes (all connections together) or this long,
        /// whichever is first: a kill costs at most that much transfer. They are taken beside the
        /// connections, never on their receive path.
        public var checkpointBytes: UInt64 = 8 << 20
        public var checkpointInterval: Duration = .seconds(2)
        /// Times one piece may fail its manifest hash before the download stops.
        public var pieceAttempts = 3
        /// Ranges smaller than twice this are not split further.
        public var minimumSplitBytes: UInt64 = 1 << 20
        /// Connections to each peer holding the file, in a swarm download.
        public var connectionsPerPeer = 2
        /// How long peers have the file to themselves before the primary source joins in
        /// (then it fills what they do not get to, and takes over what they fail).
        public var peerHeadStart: Duration = .seconds(1)
        /// How often a swarm download asks for new peers, and refreshes what partial peers have.
        public var peerSearchInterval: Duration = .seconds(2)
        public var haveMapInterval: Duration = .milliseconds(250)
        /// In a swarm's endgame (nothing left to hand out), how long a source may work on its
        /// range before an idle connection fetches its current piece as well.
        public var endgameAfter: Duration = .seconds(2)
        /// Where this process's swarm downloads publish the pieces they have verified, for its
        /// peer routes to serve (an agent's); nil: they publish nothing.
        public var board: SwarmBoard?
        /// Where `hf://` references resolve (`$HF_ENDPOINT`, else https://huggingface.co).
        public var huggingFaceEndpoint = TransferSource.huggingFaceEndpoint()

        /// The defaults.
        public init() {}

        func backoff(attempt: Int) -> Duration {
            let exponential = retryBaseDelay * (1 << min(attempt - 1, 20))
            return min(exponential, retryMaximumDelay) * Double.random(in: 0.5...1.5)
        }
    }

    let store: ModelStore
    let configuration: Configuration
    let journal: TransferJournal
    let client: HTTPClient

    /// A downloader into `store`, with its journal in the store's directory.
    public init(store: ModelStore, configuration: Configuration = Configuration()) throws(TransferError) {
        self.store = store
        self.configuration = configuration
        journal = try TransferJournal(path: store.root + "/transfers.sqlite", lockPath: store.root + "/store.lock")
        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .disallow
        http.httpVersion = .http1Only
        http.timeout = .init(connect: .seconds(15))
        http.connectionPool = .init(idleTimeout: .seconds(60),
                                    concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.connections))
        // Our own retry loop (with back-off and a limit) handles refused connections; the
        // client's hidden retries would otherwise wait out every deadline.
        http.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    private let isShutDown = ShutdownFlag()

    /// Closes the HTTP client's connections.
    public func shutdown() async {
        guard isShutDown.set() else { return }
        try? await client.shutdown()
    }

    deinit {
        // A downloader dropped without shutdown() still closes its connections, in the background.
        if isShutDown.set() { client.shutdown(queue: .global()) { _ in } }
    }

    /// Downloads the request's files and records them as one entry, which becomes visible
    /// only when every file is complete and matches its expected hash (or, with no expected
    /// hash, is recorded as unverified).
    ///
    /// The pull is a persisted job. If another process is already pulling the same files,
    /// this one waits for it and reports its progress. Another process (or this one's
    /// controller) may pause the job (the partial is kept) or cancel it (nothing is kept).
    public func pull(_ request: PullRequest,
                     progress sink: @escaping @Sendable (TransferProgress) -> Void = { _ in }) async throws(TransferError) -> ImportResult {
        let progress = ProgressReporter(sink)
        let secrets = [request.token].compactMap { $0 }
            + ([request.source, request.projector].compactMap { $0 } + request.mirrors).flatMap(Redaction.secrets(in:))
        var jobID: String?
        do {
            if let name = request.name { try ModelName.validate(name) }
            if let app = request.app { try AppID.validate(app) }
            progress.stage(.resolving)
            var files = [try mirrored(.weights, [request.source] + request.mirrors, expected: request.sha256,
                                      pieces: request.pieces, token: request.token, peers: request.peers,
                                      radioPeers: request.radioPeers, findPeers: request.findPeers, progress)]
            if let projector = request.projector {
                files.append(try mirrored(.projector, [projector], expected: request.projectorSHA256, pieces: nil,
                                          token: request.token, progress))
            }
            let id = try journal.claimPull(request).id
            jobID = id
            progress.setJob(id)
            let result = try await obeyingControls(of: id) { [self, files] in
                var probes: [(Int, RemoteFile)] = []
                for file in files { probes.append(try await file.probe()) }
                var results: [FileDownload.Result] = []
                for (file, (index, remote)) in zip(files, probes) { results.append(try await file.run(from: index, remote)) }

                progress.stage(.verifying)
                let paths = results.map(\.file)
                let name = try request.name ?? ModelName.derive(fromFilename: files[0].downloads[0].source.filename,
                                                                quantization: GGUFReader.read(path: paths[0].path).facts.quantization)
                let result = try store.recordDownload(paths, name: name, app: request.app, replace: request.replace)
                for finished in results {
                    // A partial left behind held bytes the store already had.
                    if finished.file.path.hasPrefix(store.temporaryDirectoryPath + "/") { unlink(finished.file.path) }
                    if let fileJob = finished.jobID { try journal.removeJob(fileJob) }
                }
                return result
            }
            try journal.removePull(id)
            progress.stage(.ready)
            return result
        } catch {
            var failure = Self.transferError(error, secrets: secrets)
            if let jobID { failure = settle(jobID, request: request, after: failure) }
            // A paused pull is idle again, waiting to be resumed.
            let stage: TransferProgress.Stage = switch failure.code {
            case .cancelled: .cancelled
            case .paused: .idle
            default: .failed
            }
            progress.stage(stage, message: failure.message)
            throw failure
        }
    }

    /// Runs `body` while watching the job's state in the journal: a pause or cancel asked for
    /// by any process stops it.
    private func obeyingControls<T: Sendable>(of jobID: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask { [journal] in
                while true {
                    try await Task.sleep(for: .milliseconds(100))
                    guard let job = try journal.pullRecord(jobID) else { continue }
                    switch PullJob.State(rawValue: job.state) {
                    case .paused?: throw TransferError(.paused, "")
                    case .cancelled?: throw TransferError(.cancelled, "")
                    default:
                        // The process that ran the job died; this one, waiting for it, carries on.
                        if let owner = job.ownerPID, !processIsAlive(owner) {
                            try journal.setPullState(jobID, .running, owner: getpid())
                        }
                    }
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    /// Records how a job ended and says so: a cancelled job leaves nothing behind, a paused or
    /// failed one keeps its partial files for a later resume.
    private func settle(_ jobID: String, request: PullRequest, after failure: TransferError) -> TransferError {
        let state = (try? journal.pullRecord(jobID)).flatMap { $0.flatMap { PullJob.State(rawValue: $0.state) } }
        switch state {
        case .cancelled?:
            discardFiles(of: request)
            try? journal.removePull(jobID)
            return TransferError(.cancelled, "the download was cancelled; nothing of it is kept")
        case .paused?:
            return TransferError(.paused, "the download is paused; its partial files are kept. Resume it with `depot jobs resume \(jobID)` or by pulling again")
        default:
            if failure.code == .cancelled {
                try? journal.releasePull(jobID)
                return TransferError(.cancelled, "the download was interrupted; its partial files are kept. Resume it with `depot jobs resume \(jobID)` or by pulling again")
            }
            // Bytes that are not a usable model are not worth resuming.
            if failure.storeError?.code == .notGGUF { discardFiles(of: request) }
            // A job with nothing left to resume (say, a checksum mismatch discarded it) ends here.
            let kept = request.fileKeys.contains { key in (try? journal.job(forKey: key)).flatMap { $0 } != nil }
            if kept { _ = try? journal.setPullState(jobID, .failed, message: failure.message) } else { try? journal.removePull(jobID) }
            return failure
        }
    }

    /// Deletes the partial files and journal entries of a request's files.
    func discardFiles(of request: PullRequest) {
        for key in request.fileKeys {
            guard let (job, _) = try? journal.job(forKey: key) else { continue }
            unlink(job.partialPath)
            try? journal.removeJob(job.id)
        }
    }

    /// One file of a pull with the addresses to try for it, primary first.
    private func mirrored(_ role: FileRole, _ sources: [String], expected: ExpectedHash?, pieces: PieceManifest?, token: String?,
                          peers: [PeerSource] = [], radioPeers: [RadioPeer] = [], findPeers: PeerFinder? = nil,
                          _ progress: ProgressReporter) throws(TransferError) -> MirroredDownload {
        // Peers are fetched from alongside each address, and only where a manifest checks their pieces.
        let peerFetchers: [any RangeSource] = pieces == nil ? [] : try peers.map { peer throws(TransferError) in
            try HTTPFetcher.peer(peer, client: client, stallTimeout: configuration.stallTimeout)
        } + radioPeers
        let key = PullRequest.fileKey(sources[0], expected: expected)
        var downloads: [FileDownload] = []
        for text in sources {
            let source = try TransferSource(text, huggingFaceEndpoint: configuration.huggingFaceEndpoint)
            // The token belongs to the primary source's host only; mirrors are other hosts.
            let fetcher = HTTPFetcher(client: client, source: source, token: downloads.isEmpty ? token : nil,
                                      stallTimeout: configuration.stallTimeout)
            downloads.append(FileDownload(role: role, source: source, key: downloads.isEmpty ? key : PullRequest.fileKey(text, expected: expected),
                                          expected: expected, pieces: pieces, fetcher: fetcher, journal: journal,
                                          store: store, configuration: configuration, progress: progress, peers: peerFetchers,
                                          findPeers: pieces == nil ? nil : findPeers))
        }
        return MirroredDownload(downloads: downloads, progress: progress)
    }

    /// Every failure as a TransferError whose message holds no secret.
    static func transferError(_ error: Error, secrets: [String]) -> TransferError {
        let error: TransferError = switch error {
        case let error as TransferError: error
        case let error as StoreError: TransferError(error)
        case let error as GGUFError: TransferError(StoreError(.notGGUF, "the downloaded file is not a usable GGUF model: \(error)"))
        case FetchFailure.fatal(let error): error
        case FetchFailure.transient(let reason), FetchFailure.busy(let reason): TransferError(.unreachable, reason)
        case FetchFailure.remoteChanged(let reason): TransferError(.unreachable, reason)
        case FetchFailure.rangeIgnored: TransferError(.unsupportedServer, "the server ignores byte ranges")
        case is CancellationError: TransferError(.cancelled, "the download was interrupted; the partial file is kept for the next pull")
        default: TransferError(.io, "\(error)")
        }
        let scrubbed = Redaction.scrub(error.message, secrets: secrets)
        return scrubbed == error.message ? error : TransferError(error.code, scrubbed)
    }
}

/// Whether shutdown has begun; set once.
final class ShutdownFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private var done = false
    private let lock = NSLock()

    /// Sets the flag; true for the caller that set it first.
    func set() -> Bool { lock.withLock { defer { done = true }; return !done } }
}

extension ModelDownloader {
    /// Pull jobs that are running, paused, interrupted or failed; a finished job is removed.
    public func jobs() throws(TransferError) -> [PullJob] { try journal.pullJobs() }

    /// The job with exactly this id (what programs hold).
    public func job(_ id: String) throws(TransferError) -> PullJob {
        guard let job = try jobs().first(where: { $0.id == id.lowercased() }) else {
            throw TransferError(.notFound, "no download job '\(id.prefix(100))'; GET /jobs lists them with their full ids")
        }
        return job
    }

    /// The job whose id begins with `prefix`, for people typing ids: at least 8 characters,
    /// and only one job may match.
    public func job(matching prefix: String) throws(TransferError) -> PullJob {
        let matches = try jobs().filter { $0.id.hasPrefix(prefix.lowercased()) }
        guard prefix.count >= Self.shortestJobPrefix || matches.contains(where: { $0.id == prefix.lowercased() }) else {
            throw TransferError(.invalidSource, "give at least \(Self.shortestJobPrefix) characters of the job id; `depot jobs` lists them")
        }
        guard matches.count == 1 else {
            throw TransferError(.notFound, matches.isEmpty ? "no download job '\(prefix)'; `depot jobs` lists them"
                                                          : "'\(prefix)' matches \(matches.count) jobs; give more of the id")
        }
        return matches[0]
    }

    public static let shortestJobPrefix = 8

    /// Asks the process running the job to stop and keep its partial files; a job nobody runs
    /// is simply marked paused. `pull` or `resume` continues it.
    public func pause(_ id: String) throws(TransferError) {
        let job = try job(id)
        guard job.state != .cancelled else { throw TransferError(.conflict, "job \(job.id) is being cancelled") }
        try journal.setPullState(job.id, .paused)
    }

    /// Pulls a job's stored request again. Its token was never stored: pass it again if the
    /// source needs one.
    public func resume(_ id: String, token: String? = nil,
                       progress: @escaping @Sendable (TransferProgress) -> Void = { _ in }) async throws(TransferError) -> ImportResult {
        var request = try job(id).request
        request.token = token
        return try await pull(request, progress: progress)
    }

    /// Cancels a job and deletes everything it downloaded. A running job is stopped by its
    /// process (waited for up to `timeout`); otherwise the files are removed here.
    public func cancel(_ id: String, timeout: Duration = .seconds(30)) async throws(TransferError) {
        let job = try job(id)
        try journal.setPullState(job.id, .cancelled)
        guard job.state == .running else {
            discardFiles(of: job.request)
            try journal.removePull(job.id)
            return
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let record = try journal.pullRecord(job.id) else { return }
            if !(record.ownerPID.map(processIsAlive) ?? false) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        // Its process died or did not answer: clean up from here.
        discardFiles(of: job.request)
        try journal.removePull(job.id)
    }
}
