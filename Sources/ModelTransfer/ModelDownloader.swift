import AsyncHTTPClient
import Foundation
import GGUF
import ModelStore
import NIOCore

/// What to pull: a model's weights and, for multimodal models, its projector, as one entry.
public struct PullRequest: Sendable {
    /// `https://…` or `hf://owner/repo[@revision]/file.gguf`.
    public var source: String
    /// The projector's source, if the model has one.
    public var projector: String?
    /// Entry name; derived from the file name and quantization when nil.
    public var name: String?
    /// App that uses the entry from now on.
    public var app: String?
    /// Expected SHA-256 of the weights, when the caller knows it.
    public var sha256: ExpectedHash?
    /// Expected SHA-256 of the projector.
    public var projectorSHA256: ExpectedHash?
    /// Bearer token for the source's own host; never stored or logged.
    public var token: String?
    /// Replace an entry of the same name with other files.
    public var replace: Bool

    /// A request with no expectations beyond the source.
    public init(source: String, projector: String? = nil, name: String? = nil, app: String? = nil,
                sha256: ExpectedHash? = nil, projectorSHA256: ExpectedHash? = nil, token: String? = nil, replace: Bool = false) {
        self.source = source
        self.projector = projector
        self.name = name
        self.app = app
        self.sha256 = sha256
        self.projectorSHA256 = projectorSHA256
        self.token = token
        self.replace = replace
    }
}

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
        /// Bytes per connection between journal checkpoints: at most this much per connection is
        /// fetched again after a kill.
        public var checkpointBytesPerConnection: UInt64 = 4 << 20
        /// Ranges smaller than twice this are not split further.
        public var minimumSplitBytes: UInt64 = 1 << 20
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
        journal = try TransferJournal(path: store.root + "/transfers.sqlite")
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
    public func pull(_ request: PullRequest,
                     progress sink: @escaping @Sendable (TransferProgress) -> Void = { _ in }) async throws(TransferError) -> ImportResult {
        let progress = ProgressReporter(sink)
        let secrets = [request.token].compactMap { $0 }
            + [request.source, request.projector].compactMap { $0 }.flatMap(Redaction.secrets(in:))
        do {
            if let name = request.name { try ModelName.validate(name) }
            if let app = request.app { try AppID.validate(app) }
            progress.stage(.resolving)
            var downloads = [try download(.weights, request.source, expected: request.sha256, token: request.token, progress)]
            if let projector = request.projector {
                downloads.append(try download(.projector, projector, expected: request.projectorSHA256, token: request.token, progress))
            }
            var probes: [RemoteFile] = []
            for download in downloads { probes.append(try await download.probe()) }
            var results: [FileDownload.Result] = []
            for (download, remote) in zip(downloads, probes) { results.append(try await download.run(remote)) }

            progress.stage(.verifying)
            let files = results.map(\.file)
            let name = try request.name ?? ModelName.derive(fromFilename: downloads[0].source.filename,
                                                            quantization: GGUFReader.read(path: files[0].path).facts.quantization)
            let result = try store.recordDownload(files, name: name, app: request.app, replace: request.replace)
            for finished in results {
                // A partial left behind held bytes the store already had.
                if finished.file.path.hasPrefix(store.temporaryDirectoryPath + "/") { unlink(finished.file.path) }
                if let jobID = finished.jobID { try journal.removeJob(jobID) }
            }
            progress.stage(.ready)
            return result
        } catch {
            let failure = Self.transferError(error, secrets: secrets)
            progress.stage(failure.code == .cancelled ? .cancelled : .failed, message: failure.message)
            throw failure
        }
    }

    private func download(_ role: FileRole, _ text: String, expected: ExpectedHash?, token: String?,
                          _ progress: ProgressReporter) throws(TransferError) -> FileDownload {
        let source = try TransferSource(text, huggingFaceEndpoint: configuration.huggingFaceEndpoint)
        let fetcher = HTTPFetcher(client: client, source: source, token: token, stallTimeout: configuration.stallTimeout)
        return FileDownload(role: role, source: source, expected: expected, fetcher: fetcher, journal: journal,
                            store: store, configuration: configuration, progress: progress)
    }

    /// Every failure as a TransferError whose message holds no secret.
    static func transferError(_ error: Error, secrets: [String]) -> TransferError {
        let error: TransferError = switch error {
        case let error as TransferError: error
        case let error as StoreError: TransferError(error)
        case let error as GGUFError: TransferError(.store, "the downloaded file is not a usable GGUF model: \(error)")
        case FetchFailure.fatal(let error): error
        case FetchFailure.transient(let reason): TransferError(.unreachable, reason)
        case FetchFailure.remoteChanged(let reason): TransferError(.unreachable, reason)
        case FetchFailure.rangeIgnored: TransferError(.unsupportedServer, "the server ignores byte ranges")
        case is CancellationError: TransferError(.cancelled, "the download was cancelled; the partial file is kept for the next pull")
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

/// A persisted download as `depot jobs` shows it.
public struct TransferJobSummary: Sendable, Codable {
    /// The source, redacted.
    public var source: String
    /// Size of the file.
    public var totalBytes: UInt64
    /// Bytes safely on disk.
    public var completedBytes: UInt64
    /// Whether every byte is there and hashed (waiting to be recorded).
    public var finished: Bool
    /// When it last made progress.
    public var updatedAt: Date
}

extension ModelDownloader {
    /// Downloads that were interrupted or are running; `pull` of the same source resumes them.
    public func jobs() throws(TransferError) -> [TransferJobSummary] {
        try journal.allJobs().map { job, done in
            TransferJobSummary(source: job.sourceKey, totalBytes: UInt64(job.size), completedBytes: done,
                               finished: job.sha256 != nil, updatedAt: Date(timeIntervalSince1970: job.updatedAt))
        }
    }
}
