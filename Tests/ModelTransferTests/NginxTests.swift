import DepotTestSupport
import Foundation
import GGUF
import ModelStore
import Testing
@testable import ModelTransfer

@Suite(.serialized) struct NginxTests {
    @Test func verifiedDownloadThenCacheHit() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("tiny-q8.gguf", megabytes: 3)
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        let downloader = try scratch.downloader()
        let stages = StageRecorder()

        let result = try await downloader.pull(
            PullRequest(source: nginx.url("tiny-q8.gguf"), app: "com.a", sha256: try ExpectedHash(sha256: digest, source: .user)),
            progress: stages.record)
        #expect(result.entry.name == "tiny-q8:q8_0")
        #expect(result.entry.isVerified)
        #expect(result.entry.weights?.sha256 == digest)
        #expect(result.entry.weights?.hashSource == .user)
        #expect(result.entry.weights?.etag != nil)
        #expect(result.entry.sourceURL == nginx.url("tiny-q8.gguf"))
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        #expect(stages.stages.first == .resolving)
        #expect(stages.stages.contains(.downloading))
        #expect(stages.stages.last == .ready)
        #expect(try downloader.jobs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.storeRoot + "/tmp").isEmpty)

        let gets = nginx.requests("GET").count
        let again = try await downloader.pull(PullRequest(source: nginx.url("tiny-q8.gguf"), name: "copy:x",
                                                          sha256: try ExpectedHash(sha256: digest, source: .user)))
        #expect(again.files[0].alreadyStored)
        #expect(nginx.requests("GET").count == gets, "known bytes are not downloaded again")
        await downloader.shutdown()
    }

    @Test func withoutAnExpectedHashTheEntryIsUnverified() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("plain.gguf")
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: nginx.url("plain.gguf")))
        #expect(!result.entry.isVerified)
        #expect(result.entry.weights?.hashSource == .firstDownload)
        #expect(result.entry.weights?.sha256 == digest)
        await downloader.shutdown()
    }

    @Test func aChangedFileBetweenRunsRestartsCleanly() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 24, seed: 1)
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        var slow = TransferScratch.fastConfiguration
        slow.connections = 2
        let downloader = try scratch.downloader(slow)
        let source = nginx.url("slow/m.gguf")
        let task = Task { try await downloader.pull(PullRequest(source: source)) }
        try await interrupt(task, whenJournalOf: downloader)
        let partial = try #require(try downloader.jobs().first)
        #expect(partial.completedBytes > 0 && partial.completedBytes < partial.totalBytes)

        // The file is re-uploaded: new bytes, new ETag. Nothing of the old partial may survive.
        try await Task.sleep(for: .seconds(1.1))  // Last-Modified has one-second resolution
        let newDigest = try scratch.model("m.gguf", megabytes: 24, seed: 2)
        let result = try await downloader.pull(PullRequest(source: source))
        #expect(result.entry.weights?.sha256 == newDigest)
        #expect(try sha256sum(result.entry.weights!.path) == newDigest)
        await downloader.shutdown()
    }

    @Test func weightsAndProjectorArriveAsOneEntry() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("vision.gguf")
        try TinyModels.projector().write(to: scratch.served + "/mmproj.gguf")
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: nginx.url("vision.gguf"), projector: nginx.url("mmproj.gguf"),
                                                           name: "vision:tiny"))
        #expect(result.entry.files.map(\.role) == [.weights, .projector])
        #expect(result.entry.projector?.facts?.isProjector == true)
        await downloader.shutdown()
    }

    @Test func aProjectorThatIsNotOneIsRefusedAndNothingAppears() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("a.gguf", seed: 1)
        try scratch.model("b.gguf", seed: 2)
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        let downloader = try scratch.downloader()
        let error = await transferError {
            _ = try await downloader.pull(PullRequest(source: nginx.url("a.gguf"), projector: nginx.url("b.gguf")))
        }
        #expect(error?.code == .store)
        #expect(error?.message.contains("not a multimodal projector") == true)
        #expect(try scratch.store().listModels().isEmpty)
        await downloader.shutdown()
    }
}

final class StageRecorder: @unchecked Sendable {
    // Guarded by `lock`; progress arrives from several connections.
    private var recorded: [TransferProgress] = []
    private let lock = NSLock()

    var record: @Sendable (TransferProgress) -> Void {
        { progress in self.lock.withLock { self.recorded.append(progress) } }
    }
    var snapshots: [TransferProgress] { lock.withLock { recorded } }
    /// Each stage once, in the order first reached after the previous one.
    var stages: [TransferProgress.Stage] {
        snapshots.map(\.stage).reduce(into: []) { stages, stage in if stages.last != stage { stages.append(stage) } }
    }
    var messages: [String] { snapshots.compactMap(\.message) }
}
