import DepotHTTP
import Foundation
import Hummingbird
import ModelStore

/// Moving in from the web UI: the models in this machine's Ollama store and Hugging Face
/// cache (their usual places, or `OLLAMA_MODELS` / `HF_HUB_CACHE` in the agent's environment),
/// and adopting one by name. Only those two places are read, never a path a request names.
extension Agent {
    struct CachesAnswer: Encodable {
        struct Cache: Encodable {
            var origin: FoundModel.Origin
            var root: String
            var found: [FoundModel]
            var skipped: [SkippedListing]
        }
        var caches: [Cache]
    }

    struct AdoptRequest: Decodable {
        var origin: FoundModel.Origin
        var name: String
    }

    func addCacheRoutes(to router: Router<AgentRequestContext>) {
        router.get("/store/caches") { _, _ in JSON.response(CachesAnswer(caches: Self.scanCaches())) }
        router.post("/store/adopt") { request, context in
            let body = try await JSON.decode(AdoptRequest.self, from: request, context: context)
            guard let model = Self.scanCaches().first(where: { $0.origin == body.origin })?.found.first(where: { $0.name == body.name }) else {
                throw AgentError.notFound("no model '\(body.name)' in this machine's \(body.origin == .ollama ? "Ollama store" : "Hugging Face cache")")
            }
            // Hashing gigabytes: on a thread of its own, not the server's.
            let (store, app) = (self.store, self.configuration.appID)
            let result: Result<ImportResult, StoreError> = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    do throws(StoreError) { continuation.resume(returning: .success(try store.adopt(model, app: app))) } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
            switch result {
            case .success(let imported): return JSON.response(imported)
            case .failure(let error): throw AgentError(error)
            }
        }
    }

    /// Both caches, each only if it is there.
    static func scanCaches() -> [CachesAnswer.Cache] {
        var caches: [CachesAnswer.Cache] = []
        if let scan = try? ForeignCaches.scanOllama(ForeignCaches.ollamaRoot()) {
            caches.append(.init(origin: .ollama, root: scan.root, found: scan.found, skipped: scan.skipped))
        }
        if let scan = try? ForeignCaches.scanHuggingFace(ForeignCaches.huggingFaceRoot()) {
            caches.append(.init(origin: .huggingFace, root: scan.root, found: scan.found, skipped: scan.skipped))
        }
        return caches
    }
}

/// The storage panel: what the store holds against the disk it is on, and the prune plan for a
/// budget (carried out only when the request says so); the demo model for an empty store.
extension Agent {
    struct StorageAnswer: Encodable {
        struct Model: Encodable {
            var name: String
            var sizeBytes: UInt64
            var apps: [String]
            var pinned: Bool
            var lastUsedAt: Date?
        }
        /// Bytes the store's blobs hold (shared blobs once).
        var storeBytes: UInt64
        var diskFreeBytes: UInt64?
        var diskTotalBytes: UInt64?
        var models: [Model]
    }

    struct PruneRequest: Decodable {
        var maxBytes: UInt64
        /// False carries the plan out; the default only shows it.
        var dryRun: Bool?
        /// The removals the user confirmed: a plan that has changed since is not carried out.
        var expect: [String]?
    }

    func addStorageRoutes(to router: Router<AgentRequestContext>) {
        router.get("/store/usage") { _, _ in
            let disk = try? FileManager.default.attributesOfFileSystem(forPath: self.store.root)
            let models: [ModelEntry], used: UInt64
            do throws(StoreError) {
                models = try self.store.listModels()
                used = try self.store.pruneLeastRecentlyUsed(toFit: .max, dryRun: true).usedBytes
            } catch {
                throw AgentError(error)
            }
            return JSON.response(StorageAnswer(
                storeBytes: used, diskFreeBytes: (disk?[.systemFreeSize] as? NSNumber)?.uint64Value,
                diskTotalBytes: (disk?[.systemSize] as? NSNumber)?.uint64Value,
                models: models.map { .init(name: $0.name, sizeBytes: $0.sizeBytes, apps: $0.apps.map(\.app), pinned: $0.isPinned, lastUsedAt: $0.lastUsedAt) }))
        }
        router.post("/store/demo") { _, _ in
            do throws(StoreError) {
                return JSON.response(try DemoModel.add(to: self.store, app: self.configuration.appID))
            } catch {
                throw AgentError(error)
            }
        }
        router.post("/store/prune") { request, context in
            let body = try await JSON.decode(PruneRequest.self, from: request, context: context)
            do throws(StoreError) {
                if body.dryRun == false, let expected = body.expect,
                   try self.store.pruneLeastRecentlyUsed(toFit: body.maxBytes, dryRun: true).removals.map(\.name) != expected {
                    return AgentError(.conflict, "what would go has changed since the plan was shown; look at the plan again").response
                }
                return JSON.response(try self.store.pruneLeastRecentlyUsed(toFit: body.maxBytes, dryRun: body.dryRun ?? true))
            } catch {
                throw AgentError(error)
            }
        }
    }
}
