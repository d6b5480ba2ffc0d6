import DepotHTTP
import Foundation
import Hummingbird
import ModelCatalog
import ModelStore
import ModelTransfer

/// EdgeCoder's model API: swap, status, list.
extension Agent {
    struct SwapRequest: Decodable {
        var model: String
        /// The app asking, whose last use of the model is recorded.
        var app: String?
    }

    struct SwapResponse: Encodable {
        var previous: String?
        var active: String?
        var status: String
        var paramSize: Double?
        var progress: Double?

        // EdgeCoder's clients expect every field, null when unknown.
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(previous, forKey: .previous)
            try container.encode(active, forKey: .active)
            try container.encode(status, forKey: .status)
            try container.encode(paramSize, forKey: .paramSize)
            try container.encode(progress, forKey: .progress)
        }

        enum CodingKeys: String, CodingKey { case previous, active, status, paramSize, progress }
    }

    struct ListResponse: Codable {
        struct Installed: Codable {
            var name: String
            var sizeBytes: UInt64
            var quantization: String?
            var paramSize: Double?
            var apps: [String]
            var active: Bool
            var verified: Bool
        }
        var installed: [Installed]
        var available: [CatalogEntry]
    }

    func addEdgeCoderRoutes(to router: Router<AgentRequestContext>) {
        router.get("/model/status") { _, _ in JSON.response(await self.status()) }

        router.get("/model/list") { _, _ in
            let active = await self.runtime.activeModel
            let entries = try self.manager.list()
            let names = Set(entries.map(\.name))
            let installed = entries.map { entry in
                ListResponse.Installed(name: entry.name, sizeBytes: entry.sizeBytes, quantization: entry.facts?.quantization,
                                       paramSize: entry.facts.map { Double($0.parameterCount) / 1e9 },
                                       apps: entry.apps.map(\.app), active: entry.name == active, verified: entry.isVerified)
            }
            let available = (await self.catalog())?.models.filter { !names.contains($0.modelId) } ?? []
            return JSON.response(ListResponse(installed: installed, available: available))
        }

        router.post("/model/swap") { request, context in
            let body = try await JSON.decode(SwapRequest.self, from: request, context: context)
            try ModelName.validate(body.model)
            self.desiredModel.current = body.model
            let previous = await self.runtime.activeModel
            if let entry = try self.manager.get(body.model) {
                let result = try await self.activate(entry, app: body.app)
                let paramSize = await self.runtime.currentStatus.paramSize
                return JSON.response(SwapResponse(previous: previous, active: result.active, status: "ready", paramSize: paramSize, progress: 1))
            }
            if let pulling = self.jobs.pull(of: body.model) {
                return JSON.response(SwapResponse(previous: previous, active: previous, status: "pulling", paramSize: nil, progress: pulling.fraction))
            }
            guard let entry = await self.catalog()?.entry(body.model) else {
                throw AgentError.notFound("model '\(body.model)' is neither installed nor in the catalog")
            }
            let pull = try await self.catalogPull(entry, app: body.app)
            // Pull first, then load: the answer comes now, the swap when the download is verified.
            try self.jobs.start(pull, model: body.model) { _ in
                guard self.desiredModel.current == body.model, let installed = try? self.manager.get(body.model) else { return }
                _ = try? await self.activate(installed, app: body.app)
            }
            return JSON.response(SwapResponse(previous: previous, active: previous, status: "pulling", paramSize: entry.paramSize, progress: 0))
        }
    }
}
