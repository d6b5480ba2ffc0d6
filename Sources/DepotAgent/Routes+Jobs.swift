import DepotHTTP
import Foundation
import Hummingbird
import ModelCatalog
import ModelStore
import ModelTransfer
import ServiceLifecycle

/// Download jobs for apps (hand a download to the daemon and exit), server-sent events,
/// metrics and the web UI.
extension Agent {
    struct JobRequest: Decodable {
        /// A catalog id…
        var model: String?
        /// …or a URL / hf:// reference.
        var source: String?
        var name: String?
        var sha256: String?
        var projector: String?
        var projectorSHA256: String?
        var app: String?
        /// The source host's token, for this download only: kept in memory, never stored.
        var token: String?
    }

    func addJobRoutes(to router: Router<AgentRequestContext>) {
        router.get("/jobs") { _, _ in JSON.response(try self.manager.downloader.jobs()) }

        router.post("/jobs") { request, context in
            let body = try await JSON.decode(JobRequest.self, from: request, context: context)
            let pull = try await self.pullRequest(for: body)
            let controller = try self.jobs.start(pull, model: body.model ?? body.name)
            let id = await self.jobs.jobID(of: controller)
            return JSON.response(["id": id ?? "", "stage": controller.snapshot.stage.rawValue], status: .accepted)
        }

        router.post("/jobs/:id/pause") { _, context in
            try self.manager.downloader.pause(try context.parameters.require("id"))
            return JSON.response(["status": "paused"])
        }

        router.post("/jobs/:id/resume") { _, context in
            let job = try self.manager.downloader.job(try context.parameters.require("id"))
            await self.jobs.waitUntilStopped(job.request)
            let controller = try self.jobs.start(job.request, model: job.name)
            _ = await self.jobs.jobID(of: controller)
            return JSON.response(["status": "resumed", "id": job.id], status: .accepted)
        }

        router.delete("/jobs/:id") { _, context in
            try await self.manager.downloader.cancel(try context.parameters.require("id"))
            return JSON.response(["status": "cancelled"])
        }

        router.get("/events") { _, _ in
            let stream = self.events.subscribe()
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let status = await self.status()
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // The current state first, so a new page needs no separate request.
                let data = (try? JSON.encoder.encode(status)) ?? Data()
                try await writer.write(ByteBuffer(string: "event: model\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                // Ends at shutdown, so an open page never holds SIGTERM up.
                for await event in stream.cancelOnGracefulShutdown() { try await writer.write(event) }
                try await writer.finish(nil)
            })
        }

        router.get("/metrics") { _, _ in
            let status = await self.runtime.currentStatus
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.render(state: status.state.rawValue,
                                                                                                  activeModel: status.activeModel)
                                                                             + (self.uploads?.renderMetrics() ?? ""))))
        }

        router.get("/") { _, _ in WebUI.response("index.html") }
        router.head("/") { _, _ in Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"]) }
        router.get("/ui/:file") { _, context in WebUI.response(try context.parameters.require("file")) }
    }

    /// A pull for a job body: a catalog id (verified against the catalog) or a source.
    func pullRequest(for body: JobRequest) async throws -> PullRequest {
        if let app = body.app { try AppID.validate(app) }
        if let model = body.model, let hubName = HuggingFaceName(model) {
            let token = body.token ?? ProcessInfo.processInfo.environment["HF_TOKEN"]
            return try await hubName.pullRequest(endpoint: TransferSource.huggingFaceEndpoint(), token: token, app: body.app ?? configuration.appID)
        }
        if let model = body.model {
            try ModelName.validate(model)
            guard let entry = await catalog()?.entry(model) else {
                throw AgentError.notFound("model '\(model)' is not in the catalog")
            }
            return try await catalogPull(entry, app: body.app)
        }
        guard let source = body.source else { throw AgentError.badRequest("give 'model' (a catalog id) or 'source' (a URL)") }
        _ = try TransferSource(source)
        if let name = body.name { try ModelName.validate(name) }
        let hash = try body.sha256.map { hex throws(TransferError) in try ExpectedHash(sha256: hex, source: .user) }
        let projectorHash = try body.projectorSHA256.map { hex throws(TransferError) in try ExpectedHash(sha256: hex, source: .user) }
        return PullRequest(source: source, projector: body.projector, name: body.name, app: body.app ?? configuration.appID,
                           sha256: hash, projectorSHA256: projectorHash, token: body.token)
    }
}

/// The web UI's files, compiled into the binary.
enum WebUI {
    static func response(_ file: String) -> Response {
        let resource: (bytes: [UInt8], type: String)? = switch file {
        case "index.html": (PackageResources.index_html, "text/html; charset=utf-8")
        case "app.js": (PackageResources.app_js, "text/javascript; charset=utf-8")
        case "common.js": (PackageResources.common_js, "text/javascript; charset=utf-8")
        case "panels.js": (PackageResources.panels_js, "text/javascript; charset=utf-8")
        case "storage.js": (PackageResources.storage_js, "text/javascript; charset=utf-8")
        case "style.css": (PackageResources.style_css, "text/css; charset=utf-8")
        default: nil
        }
        guard let resource else { return AgentError.notFound("no such file").response }
        return Response(status: .ok, headers: [.contentType: resource.type, .cacheControl: "no-cache"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: resource.bytes)))
    }
}
