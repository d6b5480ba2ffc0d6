import ModelStore

/// What an app embeds to get models: make sure one is present (downloading it if needed),
/// and list, look up, remove and prune what it has. Implementations differ in where the
/// store is and who runs the downloads; the behaviour an app sees is the same.
public protocol ModelDownloadManager: Sendable {
    /// A controller for making `request`'s model present. Call `start()` on it (or await
    /// `result()`, which starts it); a model already stored finishes at once.
    func ensure(_ request: PullRequest) -> ModelDownloadController
    /// Every stored model.
    func list() throws(TransferError) -> [ModelEntry]
    /// The stored model with this name, or nil.
    func get(_ name: String) throws(TransferError) -> ModelEntry?
    /// Removes the model for `app`; refused while another app uses it, unless `force`.
    func remove(_ name: String, app: String?, force: Bool) throws(TransferError) -> DeletionResult
    /// Removes least recently used models until the store fits in `maximumBytes`: never pinned
    /// ones and, when `app` is given, never one another app uses.
    func prune(toFit maximumBytes: UInt64, dryRun: Bool, app: String?) throws(TransferError) -> PrunePlan
}

/// A `ModelDownloadManager` over one store, used directly with the store's file locks (so
/// other processes using the same store stay consistent with it).
public final class StoreModelManager: ModelDownloadManager {
    public let store: ModelStore
    public let downloader: ModelDownloader

    /// A manager over `store`. Call `shutdown()` when done.
    public init(store: ModelStore, configuration: ModelDownloader.Configuration = .init()) throws(TransferError) {
        self.store = store
        downloader = try ModelDownloader(store: store, configuration: configuration)
    }

    public func ensure(_ request: PullRequest) -> ModelDownloadController {
        ModelDownloadController(request: request, driver: downloader)
    }

    public func list() throws(TransferError) -> [ModelEntry] {
        do { return try store.listModels() } catch { throw TransferError(error) }
    }

    public func get(_ name: String) throws(TransferError) -> ModelEntry? {
        do { return try store.model(named: name) } catch where error.code == .notFound { return nil } catch { throw TransferError(error) }
    }

    public func remove(_ name: String, app: String?, force: Bool) throws(TransferError) -> DeletionResult {
        do { return try store.deleteModel(named: name, app: app, force: force) } catch { throw TransferError(error) }
    }

    public func prune(toFit maximumBytes: UInt64, dryRun: Bool, app: String?) throws(TransferError) -> PrunePlan {
        do { return try store.pruneLeastRecentlyUsed(toFit: maximumBytes, dryRun: dryRun, onBehalfOf: app) } catch { throw TransferError(error) }
    }

    /// Closes the downloader's connections.
    public func shutdown() async { await downloader.shutdown() }
}
