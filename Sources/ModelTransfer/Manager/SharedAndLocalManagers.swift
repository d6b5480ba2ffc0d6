import Foundation
import ModelStore

/// A manager whose models live in one store it opens directly (with the store's locks), so
/// listing, removing and pruning are the same whoever runs the downloads.
public protocol StoreBackedManager: ModelDownloadManager {
    var direct: StoreModelManager { get }
}

extension StoreBackedManager {
    public func list() throws(TransferError) -> [ModelEntry] { try direct.list() }
    public func get(_ name: String) throws(TransferError) -> ModelEntry? { try direct.get(name) }
    public func remove(_ name: String, app: String?, force: Bool) throws(TransferError) -> DeletionResult {
        try direct.remove(name, app: app, force: force)
    }
    public func prune(toFit maximumBytes: UInt64, dryRun: Bool, app: String?) throws(TransferError) -> PrunePlan {
        try direct.prune(toFit: maximumBytes, dryRun: dryRun, app: app)
    }
}

/// The device's shared store, used by every app that opts in. Downloads go through the agent
/// daemon when one answers (so they outlive the app); otherwise, or when the daemon stops
/// answering mid-download, this process downloads into the same store and resumes the
/// daemon's partial file from the journal.
public final class SharedStoreManager: StoreBackedManager {
    public let direct: StoreModelManager
    /// The daemon, when one answered at creation.
    public let agent: AgentJobClient?
    let inhibitor: SleepInhibitor?

    /// Opens the shared store and looks for a daemon at `agentURL` (nil: do not use one).
    public static func open(store: ModelStore, agentURL: String? = "http://127.0.0.1:4302", agentToken: String? = nil,
                            configuration: ModelDownloader.Configuration = .init(),
                            sleepInhibitor: SleepInhibitor? = nil) async throws(TransferError) -> SharedStoreManager {
        var agent: AgentJobClient?
        if let agentURL {
            let client = AgentJobClient(base: agentURL, store: store, token: agentToken)
            if await client.isReachable() { agent = client } else { await client.shutdown() }
        }
        return SharedStoreManager(direct: try StoreModelManager(store: store, configuration: configuration),
                                  agent: agent, inhibitor: sleepInhibitor)
    }

    init(direct: StoreModelManager, agent: AgentJobClient?, inhibitor: SleepInhibitor?) {
        self.direct = direct
        self.agent = agent
        self.inhibitor = inhibitor
    }

    public func ensure(_ request: PullRequest) -> ModelDownloadController {
        let local = InhibitingDriver(base: direct.downloader, inhibitor: inhibitor)
        guard let agent else { return ModelDownloadController(request: request, driver: local) }
        return ModelDownloadController(request: request, driver: FallbackDriver(agent: agent, local: local))
    }

    public func shutdown() async {
        await agent?.shutdown()
        await direct.shutdown()
    }
}

/// The same manager over an app-private directory, for apps that do not share (or when the
/// shared store is not available): the same verification, resume and jobs.
public final class AppLocalManager: StoreBackedManager {
    public let direct: StoreModelManager
    let inhibitor: SleepInhibitor?

    /// The app's own store: `directory`, else `$XDG_DATA_HOME/<appID>/models` (or
    /// `~/.local/share/<appID>/models`).
    public init(appID: String, directory: String? = nil, configuration: ModelDownloader.Configuration = .init(),
                sleepInhibitor: SleepInhibitor? = nil) throws(TransferError) {
        do {
            try AppID.validate(appID)
            let root = directory ?? Self.defaultDirectory(appID: appID)
            direct = try StoreModelManager(store: try ModelStore(root: root), configuration: configuration)
        } catch let error as StoreError {
            throw TransferError(error)
        } catch let error as TransferError {
            throw error
        } catch {
            throw TransferError(.io, "\(error)")
        }
        inhibitor = sleepInhibitor
    }

    public static func defaultDirectory(appID: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let data = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/share"
        return data + "/\(appID)/models"
    }

    public func ensure(_ request: PullRequest) -> ModelDownloadController {
        ModelDownloadController(request: request, driver: InhibitingDriver(base: direct.downloader, inhibitor: inhibitor))
    }

    public func shutdown() async { await direct.shutdown() }
}

/// Downloads through the daemon; when it stops answering, continues here (the journal and the
/// partial file are in the shared store, so nothing is fetched twice) and says so.
struct FallbackDriver: DownloadDriver {
    let agent: AgentJobClient
    let local: any DownloadDriver

    func pull(_ request: PullRequest, progress: @escaping @Sendable (TransferProgress) -> Void) async throws(TransferError) -> ImportResult {
        do {
            return try await agent.pull(request, progress: progress)
        } catch {
            guard error.code == .unreachable, !(await agent.isReachable()) else { throw error }
            var note = TransferProgress(stage: .resolving, file: .weights, completedBytes: 0, totalBytes: 0, bytesPerSecond: 0)
            note.message = "the agent at \(agent.base) stopped answering; continuing the download in this process"
            progress(note)
            return try await local.pull(request, progress: progress)
        }
    }

    // The journal is shared: the local driver pauses or cancels the job whoever runs it.
    func pause(_ jobID: String) async throws(TransferError) {
        if await agent.isReachable() { try await agent.pause(jobID) } else { try await local.pause(jobID) }
    }

    func cancel(_ jobID: String) async throws(TransferError) {
        if await agent.isReachable() { try await agent.cancel(jobID) } else { try await local.cancel(jobID) }
    }

    func jobExists(_ jobID: String) async -> Bool { await local.jobExists(jobID) }
}

/// Holds a sleep inhibitor while a download runs, when the app asked for one.
struct InhibitingDriver: DownloadDriver {
    let base: any DownloadDriver
    let inhibitor: SleepInhibitor?

    func pull(_ request: PullRequest, progress: @escaping @Sendable (TransferProgress) -> Void) async throws(TransferError) -> ImportResult {
        inhibitor?.begin()
        defer { inhibitor?.end() }
        return try await base.pull(request, progress: progress)
    }

    func pause(_ jobID: String) async throws(TransferError) { try await base.pause(jobID) }
    func cancel(_ jobID: String) async throws(TransferError) { try await base.cancel(jobID) }
    func jobExists(_ jobID: String) async -> Bool { await base.jobExists(jobID) }
}
