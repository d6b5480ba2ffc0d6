import Crypto
import DepotHTTP
import Foundation
import MeshProtocol
import ModelCatalog
import ModelRuntime
import ModelStore
import ModelTransfer

/// How `depot serve` runs.
public struct AgentConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 4302
    /// Required when binding to anything but loopback; every request but the web UI's files,
    /// `/api/version` and peers' `/p2p/` then needs `Authorization: Bearer`.
    public var token: String?
    /// Web origins besides the agent's own pages that may call it (`*` wildcards), like
    /// Ollama's OLLAMA_ORIGINS; others are refused.
    public var origins: [String] = []
    /// Host names besides loopback names and IP literals the agent answers to.
    public var allowedHosts: [String] = []
    /// Connections, timeouts and the body limit of the HTTP server.
    public var limits: ServerLimits = {
        var limits = ServerLimits()
        limits.maximumBodyBytes = 64 << 20  // chat requests carry images
        return limits
    }()
    /// Catalog URL or file (else the store's cached catalog, if any).
    public var catalog: String?
    public var catalogKey: String?
    /// Ollama's keep_alive default: 5 minutes; nil keeps models loaded forever.
    public var keepAlive: Duration? = .seconds(300)
    /// The app id the agent records uses under.
    public var appID = "depot.agent"
    public var contextLength: UInt32 = 4096
    public var download = ModelDownloader.Configuration()
    /// The mesh coordinator to register and heartbeat with.
    public var coordinator: String?
    public var heartbeatInterval: Duration = .seconds(15)
    /// Given to a coordinator that admits agents by token (never sent: registrations carry a proof).
    public var joinToken: String?
    /// LAN discovery over UDP multicast; nil: off.
    public var discovery: NearbyDiscovery.Configuration?
    /// Serving verified blobs to peers (`--seed`); nil: off.
    public var seed: SeedPolicy?

    public init() {}

    var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) }
}

/// The device daemon's state: the store, downloads, the runtime and what they report. The
/// HTTP routes are thin over this.
public final class Agent: Sendable {
    public let configuration: AgentConfiguration
    public let store: ModelStore
    let manager: StoreModelManager
    public let runtime: ModelRuntime
    let jobs: JobRegistry
    /// The key the catalog must be signed with, if one is configured.
    let catalogKey: Curve25519.Signing.PublicKey?
    let events: EventHub
    let metrics: AgentMetrics
    /// Uploads to peers, when seeding.
    let uploads: UploadSlots?
    /// The public key of the coordinator this agent registered with, whose seeder tickets
    /// admit peers beyond the LAN.
    let coordinatorKey = LockedValue<String?>(nil)
    /// The session credential from the coordinator, which also asks it for seeders.
    let meshCredential = LockedValue<String?>(nil)
    /// The catalog as last loaded, refreshed in the background once it is old.
    let catalogMemo = CatalogMemo()
    /// Receipts of the peers this agent seeds to under tickets.
    let receipts = ReceiptBook()
    /// Piece layers computed for peers, by blob and piece size (a few, recent).
    let pieceLayers = LockedValue<[String: Data]>([:])
    /// The verified pieces of this agent's downloads in progress, served to peers (when seeding).
    let board: SwarmBoard?
    public let startedAt = Date()
    /// The model the latest `/model/swap` asked for: a pull that finishes loads its model only
    /// if no later swap asked for another.
    let desiredModel = LockedValue<String?>(nil)
    /// Nearby peers, once discovery runs.
    let nearby = LockedValue<NearbyDiscovery?>(nil)
    /// The agent's Ed25519 identity (kept in the store): its id, what it signs registrations,
    /// nearby records and, later, credit receipts with.
    public let identity: MeshIdentity

    public init(store: ModelStore, configuration: AgentConfiguration,
                engine: any InferenceEngine) throws(AgentError) {
        guard configuration.isLoopback || configuration.token != nil else {
            throw AgentError.badRequest("binding to \(configuration.host) exposes the agent to the network; pass --token to require a bearer token")
        }
        do throws(CatalogError) {
            catalogKey = try configuration.catalogKey.map { text throws(CatalogError) in try CatalogSignature.publicKey(text) }
        } catch {
            throw AgentError.badRequest(error.message)
        }
        do { identity = try Agent.identity(storeRoot: store.root) } catch { throw AgentError(.internalServerError, "\(error)") }
        self.configuration = configuration
        self.store = store
        events = EventHub()
        metrics = AgentMetrics()
        uploads = configuration.seed.map(UploadSlots.init)
        var download = configuration.download
        // A seeding agent serves the pieces of its own downloads as they are verified.
        if configuration.seed != nil && download.board == nil { download.board = SwarmBoard() }
        board = download.board
        do { manager = try StoreModelManager(store: store, configuration: download) } catch { throw AgentError(error) }
        runtime = ModelRuntime(engine: engine, keepAlive: configuration.keepAlive)
        jobs = JobRegistry(manager: manager, events: events, metrics: metrics)
    }

    /// The identity of the agent serving the store at `storeRoot`, made there on first use.
    public static func identity(storeRoot: String) throws -> MeshIdentity {
        try MeshIdentity.load(path: storeRoot + "/agent.key")
    }

    /// Forwards runtime events to the event stream; runs until cancelled.
    func relayRuntimeEvents() async {
        for await event in await runtime.events() {
            if case .stateChanged = event { events.publish("model", await status()) }
        }
    }

    /// Stops downloads (they stay resumable: paused in the journal) and closes connections.
    public func shutdown() async {
        await jobs.pauseAll()
        await manager.shutdown()
    }

    // MARK: Models

    /// The installed entry, or 404.
    /// The installed entry `name` names; a name without a tag is its `latest` one, as Ollama
    /// reads it (`tiny` is `tiny:latest`).
    func installed(_ name: String) throws -> ModelEntry {
        try ModelName.validate(name)
        if let entry = try manager.get(name) { return entry }
        if !name.contains(":"), let entry = try manager.get(name + ":latest") { return entry }
        throw AgentError.notFound("model '\(name)' not found")
    }

    /// The catalog, if one is configured or cached; nil when there is none.
    func catalog() async -> Catalog? {
        await catalogMemo.get { [store, configuration, catalogKey] in
            try? await CatalogCache(storeRoot: store.root).load(configuration.catalog, trustedKey: catalogKey).catalog
        }
    }

    /// Loads an installed model, recording the use for `app` (else the agent's own id). The
    /// catalog's `minMemoryMB`, when it lists the model, is the memory it needs.
    func activate(_ entry: ModelEntry, app: String? = nil) async throws -> SwapResult {
        guard let weights = entry.weights else { throw AgentError.badRequest("'\(entry.name)' has no weights file") }
        if let app { try AppID.validate(app) }
        let listed = await catalog()?.entry(entry.name)
        let files = ModelFiles(name: entry.name, weights: weights.path, projector: entry.projector?.path,
                               paramSize: listed?.paramSize ?? entry.facts.map { Double($0.parameterCount) / 1e9 },
                               requiredMemoryBytes: listed.map { $0.minMemoryMB << 20 })
        let started = ContinuousClock.now
        do {
            let result = try await runtime.activate(files)
            metrics.recordSwap(seconds: (ContinuousClock.now - started).seconds, succeeded: true)
            _ = try? store.useModel(named: entry.name, app: app ?? configuration.appID)
            return result
        } catch {
            metrics.recordSwap(seconds: (ContinuousClock.now - started).seconds, succeeded: false)
            throw error
        }
    }

    /// The runtime's state with the download in progress, as `/model/status` reports it.
    func status() async -> AgentStatus {
        let runtimeStatus = await runtime.currentStatus
        return AgentStatus(runtime: runtimeStatus, pull: jobs.currentPull(), uptimeSeconds: Int(Date().timeIntervalSince(startedAt)))
    }
}

/// `/model/status`; every field is present, null when unknown.
struct AgentStatus: Encodable, Sendable {
    var activeModel: String?
    var paramSize: Double?
    var state: String
    var currentLoad: Int
    var modelSwapInProgress: Bool
    var error: String?
    var lastInferenceAt: Date?
    var pull: PullStatus?
    var health: String
    var uptimeSeconds: Int

    init(runtime: RuntimeStatus, pull: PullStatus?, uptimeSeconds: Int) {
        activeModel = runtime.activeModel
        paramSize = runtime.paramSize
        state = runtime.state.rawValue
        currentLoad = runtime.currentLoad
        modelSwapInProgress = runtime.state == .loading
        error = runtime.error
        lastInferenceAt = runtime.lastInferenceAt
        self.pull = pull
        health = runtime.state == .failed ? "degraded" : "ok"
        self.uptimeSeconds = uptimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case activeModel, paramSize, state, currentLoad, modelSwapInProgress, error, lastInferenceAt, pull, health, uptimeSeconds
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(activeModel, forKey: .activeModel)
        try container.encode(paramSize, forKey: .paramSize)
        try container.encode(state, forKey: .state)
        try container.encode(currentLoad, forKey: .currentLoad)
        try container.encode(modelSwapInProgress, forKey: .modelSwapInProgress)
        try container.encode(error, forKey: .error)
        try container.encode(lastInferenceAt, forKey: .lastInferenceAt)
        try container.encode(pull, forKey: .pull)
        try container.encode(health, forKey: .health)
        try container.encode(uptimeSeconds, forKey: .uptimeSeconds)
    }
}

/// A download the agent runs, as status and events show it.
struct PullStatus: Codable, Sendable {
    var id: String?
    var model: String?
    var stage: String
    var completedBytes: UInt64
    var totalBytes: UInt64
    var message: String?

    init(model: String?, progress: TransferProgress) {
        id = progress.jobID
        self.model = model
        stage = progress.stage.rawValue
        completedBytes = progress.completedBytes
        totalBytes = progress.totalBytes
        message = progress.message
    }

    var fraction: Double { totalBytes == 0 ? 0 : Double(completedBytes) / Double(totalBytes) }
}

/// A value shared between requests.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    var current: Value {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    func withLock<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&value) } }
}

/// The catalog in memory: requests read it without fetching; once it is `lifetime` old the
/// next request still gets it and starts one refresh in the background. Only the first load
/// waits, and concurrent callers share it. A missing catalog is asked for again sooner.
actor CatalogMemo {
    static let lifetime: Duration = .seconds(300)
    static let retryAfterMissing: Duration = .seconds(10)
    private var value: (catalog: Catalog?, loadedAt: ContinuousClock.Instant)?
    private var loading: Task<Catalog?, Never>?
    private(set) var loads = 0

    func get(_ load: @escaping @Sendable () async -> Catalog?) async -> Catalog? {
        guard let value else { return await refresh(load) }
        let age = ContinuousClock.now - value.loadedAt
        if age >= (value.catalog == nil ? Self.retryAfterMissing : Self.lifetime) {
            if value.catalog == nil { return await refresh(load) }
            if loading == nil { Task { _ = await refresh(load) } }
        }
        return value.catalog
    }

    private func refresh(_ load: @escaping @Sendable () async -> Catalog?) async -> Catalog? {
        if let loading { return await loading.value }
        let task = Task { await load() }
        loading = task
        loads += 1
        let catalog = await task.value
        // A failed refresh keeps the catalog in hand (the store's cache already fell back).
        value = (catalog ?? value?.catalog, .now)
        loading = nil
        return value?.catalog
    }
}
