import DepotTestSupport
import Foundation
import ModelStore
import Testing
@testable import ModelTransfer

/// The library API apps embed: a manager and the controller of one download.
@Suite(.serialized) struct ManagerTests {
    @Test func ensureListGetRemoveAndPrune() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 2)
        try scratch.model("n.gguf", megabytes: 1, seed: 5)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let manager = try StoreModelManager(store: scratch.store(), configuration: TransferScratch.fastConfiguration)
        let controller = manager.ensure(PullRequest(source: server.url("ok", "m.gguf"), name: "m:x", app: "com.example.a",
                                                    sha256: try ExpectedHash(sha256: digest, source: .user)))
        #expect(controller.snapshot.stage == .idle)
        let seen = Task { () -> [TransferProgress.Stage] in
            var stages: [TransferProgress.Stage] = []
            for await update in controller.updates where stages.last != update.stage { stages.append(update.stage) }
            return stages
        }
        try await Task.sleep(for: .milliseconds(50))
        let result = try await controller.result()
        #expect(result.entry.name == "m:x")
        let stages = await seen.value
        #expect(stages.first == .idle && stages.last == .ready)
        #expect(stages.contains(.downloading) && stages.contains(.verifying))
        #expect(controller.snapshot.completedBytes == controller.snapshot.totalBytes)

        // Present already: ensure finishes without fetching the file again.
        let before = server.requests.filter { $0.method == "GET" }.count
        let again = try await manager.ensure(PullRequest(source: server.url("ok", "m.gguf"), name: "m:x", app: "com.example.b",
                                                         sha256: try ExpectedHash(sha256: digest, source: .user))).result()
        #expect(!again.created)
        #expect(server.requests.filter { $0.method == "GET" }.count == before)

        _ = try await manager.ensure(PullRequest(source: server.url("ok", "n.gguf"), name: "n:x")).result()
        #expect(try manager.list().map(\.name).sorted() == ["m:x", "n:x"])
        #expect(try manager.get("m:x")?.weights?.sha256 == digest)
        #expect(try manager.get("absent:x") == nil)
        let refused: TransferError? = await transferError { _ = try manager.remove("m:x", app: "com.example.a", force: false) }
        #expect(refused?.storeError?.code == .inUse, "app b still uses it")
        let plan = try manager.prune(toFit: 0, dryRun: true, app: nil)
        #expect(!plan.removals.isEmpty)
        #expect(try manager.list().count == 2, "a dry run removes nothing")
        _ = try manager.remove("n:x", app: nil, force: false)
        #expect(try manager.get("n:x") == nil)
        await manager.shutdown()
    }

    @Test func theControllerPausesResumesAndCancels() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        var configuration = TransferScratch.fastConfiguration
        configuration.connections = 1
        let manager = try StoreModelManager(store: scratch.store(), configuration: configuration)
        let controller = manager.ensure(PullRequest(source: server.url("slow", "m.gguf"), name: "m:x"))
        controller.start()
        try await waitUntil { controller.snapshot.completedBytes > 0 && controller.snapshot.jobID != nil }
        await controller.pause()
        #expect(controller.snapshot.stage == .idle, "paused: idle until resumed")
        #expect(controller.snapshot.message?.contains("paused") == true)
        let kept = try #require(try manager.downloader.jobs().first)
        #expect(kept.state == .paused && kept.completedBytes > 0)
        controller.resume()
        let result = try await controller.result()
        #expect(try sha256sum(result.entry.weights!.path) == digest)

        let doomed = manager.ensure(PullRequest(source: server.url("slow", "m.gguf"), name: "gone:x", replace: true))
        _ = try manager.remove("m:x", app: nil, force: true)
        doomed.start()
        try await waitUntil { doomed.snapshot.completedBytes > 0 && doomed.snapshot.jobID != nil }
        await doomed.cancel()
        #expect(doomed.snapshot.stage == .cancelled)
        #expect(try manager.downloader.jobs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.storeRoot + "/tmp").filter { $0.hasSuffix(".partial") }.isEmpty)
        #expect(try manager.get("gone:x") == nil)
        await manager.shutdown()
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw ServerFailure(message: "condition not met in 30 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
