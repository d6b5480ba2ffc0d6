import DepotTestSupport
import Foundation
import ModelStore
import Testing
@testable import ModelTransfer

/// Piece manifests, mirrors, and pausing, resuming and cancelling jobs, against the
/// fault-injecting server.
@Suite(.serialized) struct JobTests {
    @Test func onlyTheBadPieceIsFetchedAgain() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 4)
        let data = try Data(contentsOf: URL(fileURLWithPath: scratch.served + "/m.gguf"))
        let pieceSize: UInt64 = 256 << 10
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: server.url("corruptonce", "m.gguf"),
                                                           sha256: try ExpectedHash(sha256: digest, source: .user),
                                                           pieces: PieceManifest(of: data, pieceSize: pieceSize)))
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        let middle = UInt64(data.count / 2)
        let badPiece = middle / pieceSize * pieceSize
        let gets = server.requests.filter { $0.method == "GET" }
        let covering = gets.filter { request in
            guard let bounds = Self.bounds(request.range) else { return true }
            return bounds.contains(middle)
        }
        #expect(covering.count == 2, "the corrupted byte's piece is fetched once more: \(covering.map(\.range))")
        let refetch = "bytes=\(badPiece)-\(min(badPiece + pieceSize, UInt64(data.count)) - 1)"
        #expect(covering.last?.range == refetch, "and only that piece")
        await downloader.shutdown()
    }

    @Test func aPieceThatStaysBadStopsTheDownloadNamingIt() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 2)
        let data = try Data(contentsOf: URL(fileURLWithPath: scratch.served + "/m.gguf"))
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let error = await transferError {
            _ = try await downloader.pull(PullRequest(source: server.url("corrupt", "m.gguf"),
                                                      sha256: try ExpectedHash(sha256: digest, source: .user),
                                                      pieces: PieceManifest(of: data, pieceSize: 256 << 10)))
        }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.message.contains("piece 0 (bytes 0–262143)") == true, "\(String(describing: error))")
        #expect(try scratch.store().listModels().isEmpty)
        // The bad piece is fetched again, alone, until its attempts run out (a stall under load
        // may add a retry of the same range).
        let covering = server.requests.filter { $0.method == "GET" && (Self.bounds($0.range)?.contains(1000) ?? true) }
        #expect(covering.count >= ModelDownloader.Configuration().pieceAttempts)
        #expect(covering.dropFirst().allSatisfy { (Self.bounds($0.range)?.upperBound ?? .max) <= 262_143 }, "\(covering.map(\.range))")
        await downloader.shutdown()
    }

    @Test func aManifestThatDoesNotFitTheFileIsRefused() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let error = await transferError {
            _ = try await downloader.pull(PullRequest(source: server.url("ok", "m.gguf"),
                                                      pieces: PieceManifest(pieceSize: 1 << 20, sha256: Array(repeating: String(repeating: "0", count: 64), count: 5))))
        }
        #expect(error?.code == .invalidSource)
        #expect(error?.message.contains("piece manifest") == true)
        await downloader.shutdown()
    }

    @Test func aMirrorTakesOverWhenTheSourceFails() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 2)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let notes = StageRecorder()
        let result = try await downloader.pull(PullRequest(source: server.url("missing", "m.gguf"),
                                                           mirrors: ["http://127.0.0.1:\(freePort())/m.gguf", server.url("ok", "m.gguf")],
                                                           sha256: try ExpectedHash(sha256: digest, source: .user)),
                                               progress: notes.record)
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        #expect(notes.messages.contains { $0.contains("using mirror") && $0.contains("/ok/m.gguf") })
        await downloader.shutdown()

        // A mirror that serves the wrong bytes is passed over too (a fresh store: nothing cached).
        let other = TransferScratch()
        defer { other.remove() }
        try other.model("other.gguf", megabytes: 1, seed: 9)
        try FileManager.default.copyItem(atPath: scratch.served + "/m.gguf", toPath: other.served + "/m.gguf")
        let otherServer = try FaultServer(root: other.served)
        defer { otherServer.stop() }
        let fresh = try other.downloader()
        let second = try await fresh.pull(PullRequest(source: otherServer.url("ok", "other.gguf"),
                                                      mirrors: [otherServer.url("ok", "m.gguf")], name: "x:y",
                                                      sha256: try ExpectedHash(sha256: digest, source: .user)))
        #expect(second.entry.weights?.sha256 == digest)
        #expect(otherServer.requests.contains { $0.path.hasPrefix("/ok/other.gguf") && $0.method == "GET" }, "the wrong bytes were fetched and refused")
        await fresh.shutdown()
    }

    @Test func aPartialPinnedByItsHashContinuesFromAnotherAddress() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let expected = try ExpectedHash(sha256: digest, source: .user)
        let slow = server.url("slow", "m.gguf")
        let task = Task { try await downloader.pull(PullRequest(source: slow, sha256: expected)) }
        try await interrupt(task, whenJournalOf: downloader)
        let (_, kept) = try #require(try downloader.journal.job(forKey: "sha256:" + digest))
        #expect(kept.count > 0)
        let result = try await downloader.pull(PullRequest(source: server.url("ok", "m.gguf"), sha256: expected))
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        let refetched = server.requests.filter { $0.path.hasPrefix("/ok/") && $0.method == "GET" }.compactMap { Self.bounds($0.range) }
        #expect(!refetched.isEmpty)
        for range in refetched {
            #expect(kept.ranges.allSatisfy { !$0.overlaps(range.lowerBound..<range.upperBound + 1) },
                    "the second address is asked only for missing bytes: \(range) vs \(kept.ranges)")
        }
        await downloader.shutdown()
    }

    @Test func pauseKeepsThePartialAndResumeFinishesIt() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader(Self.oneConnection)
        let slow = server.url("slow", "m.gguf")
        let task = Task { try await downloader.pull(PullRequest(source: slow, name: "m:slow")) }
        let job = try await runningJob(downloader)
        // Programs name jobs by their full id; people may type 8 or more characters.
        #expect(throws: TransferError.self) { try downloader.pause(String(job.id.prefix(8))) }
        #expect(throws: TransferError.self) { try downloader.job(matching: String(job.id.prefix(7))) }
        try downloader.pause(downloader.job(matching: String(job.id.prefix(8))).id)
        let outcome = await task.result
        let error = await transferError { _ = try outcome.get() }
        #expect(error?.code == .paused, "\(outcome)")
        let paused = try #require(try downloader.jobs().first)
        #expect(paused.state == .paused)
        #expect(paused.completedBytes > 0)
        #expect(paused.request.name == "m:slow")
        #expect(!(try partials(scratch)).isEmpty, "pause keeps the partial")

        let resumed = try await downloader.resume(job.id)
        #expect(resumed.entry.name == "m:slow")
        #expect(try sha256sum(resumed.entry.weights!.path) == digest)
        #expect(try downloader.jobs().isEmpty)
        await downloader.shutdown()
    }

    @Test func cancelKeepsNothing() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader(Self.oneConnection)
        let slow = server.url("slow", "m.gguf")
        let task = Task { try await downloader.pull(PullRequest(source: slow)) }
        let job = try await runningJob(downloader)
        try await downloader.cancel(job.id)
        let error = await transferError { _ = try await task.value }
        #expect(error?.code == .cancelled)
        #expect(error?.message.contains("nothing") == true)
        #expect(try downloader.jobs().isEmpty)
        #expect(try partials(scratch).isEmpty)
        #expect(try scratch.store().listModels().isEmpty)

        // A paused job, with no process running it, is cancelled from here.
        let again = Task { try await downloader.pull(PullRequest(source: slow)) }
        let second = try await runningJob(downloader)
        try downloader.pause(second.id)
        _ = try? await again.value
        try await downloader.cancel(second.id)
        #expect(try downloader.jobs().isEmpty)
        #expect(try partials(scratch).isEmpty)
        let unknown = await transferError { try await downloader.cancel("no-such-job") }
        #expect(unknown?.code == .notFound)
        await downloader.shutdown()
    }

    @Test func aSecondPullOfTheSameFileWaitsAndShowsTheFirstOnesProgress() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let first = try scratch.downloader(Self.oneConnection), second = try scratch.downloader(Self.oneConnection)
        let request = PullRequest(source: server.url("slow", "m.gguf"), sha256: try ExpectedHash(sha256: digest, source: .user))
        let running = Task { try await first.pull(request) }
        _ = try await runningJob(first)
        let seen = StageRecorder()
        let joined = try await second.pull(request, progress: seen.record)
        #expect(try await running.value.entry.weights?.sha256 == digest)
        #expect(joined.entry.weights?.sha256 == digest)
        let shared = seen.snapshots.filter(\.sharedTransfer)
        #expect(shared.contains { $0.completedBytes > 0 && $0.completedBytes < 8 << 20 }, "the waiting pull reports the other's progress")
        let gets = server.requests.filter { $0.method == "GET" }.reduce(0) { $0 + $1.sent }
        #expect(gets < 2 * (8 << 20), "one transfer, not two")
        await first.shutdown()
        await second.shutdown()
    }

    // MARK: Helpers

    /// One connection at the fault server's 4 MB/s: an 8 MiB download takes two seconds, time
    /// enough to pause or join it.
    static var oneConnection: ModelDownloader.Configuration {
        var configuration = TransferScratch.fastConfiguration
        configuration.connections = 1
        return configuration
    }

    static func bounds(_ range: String?) -> ClosedRange<UInt64>? {
        guard let range, range.hasPrefix("bytes=") else { return nil }
        let parts = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = UInt64(parts[0]) else { return nil }
        return low...(UInt64(parts[1]) ?? .max)
    }

    func runningJob(_ downloader: ModelDownloader) async throws -> PullJob {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let job = try downloader.jobs().first, job.completedBytes > 0 { return job }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ServerFailure(message: "no job made progress in 30 s")
    }

    func partials(_ scratch: TransferScratch) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.storeRoot + "/tmp").filter { $0.hasSuffix(".partial") }
    }
}
