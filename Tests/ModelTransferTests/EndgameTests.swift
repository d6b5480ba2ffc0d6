import DepotTestSupport
import Foundation
import MeshProtocol
import Testing
@testable import ModelTransfer

/// The end of a swarm download with real servers: nginx's trickling location as a slow peer
/// that holds the whole model (it answers ranges; it has no have-map, so it counts as
/// complete), nginx's fast location as the CDN, and a phone over a simulated radio link.
@Suite(.serialized) struct EndgameTests {
    static func configuration() -> ModelDownloader.Configuration {
        var configuration = TransferScratch.fastConfiguration
        configuration.stallTimeout = .seconds(5)
        configuration.endgameAfter = .milliseconds(300)
        return configuration
    }

    @Test func theCDNFinishesWhatASlowPeerHoldsUpAndThePeerStops() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 1.5)
        let data = try Data(contentsOf: URL(fileURLWithPath: scratch.served + "/m.gguf"))
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        var request = PullRequest(source: nginx.url("m.gguf"), sha256: try ExpectedHash(sha256: digest, source: .user),
                                  pieces: PieceManifest(of: data, pieceSize: 256 << 10))
        request.peers = [PeerSource(url: nginx.url("trickle/m.gguf"), ticket: nil)]
        let downloader = try scratch.downloader(Self.configuration())
        let result = try await downloader.pull(request)
        await downloader.shutdown()
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        // With a peer holding every piece the CDN is asked for nothing until the end; then it
        // takes what the peer had not started, and copies of what it is slow to finish.
        let fromCDN = nginx.bytesServed("GET /m.gguf "), fromPeer = nginx.bytesServed("GET /trickle/m.gguf ")
        // (nginx counts what it wrote into a connection that was then closed as sent.)
        #expect(fromCDN > 0, "CDN \(fromCDN), slow peer \(fromPeer) of \(data.count)")
        #expect(fromCDN + fromPeer < UInt64(data.count) + 4 * (256 << 10), "slower copies stop: \(fromCDN + fromPeer) bytes sent in all")
    }

    @Test func anEndgameCopyFromALyingCDNIsNeverWritten() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 1)
        let data = try Data(contentsOf: URL(fileURLWithPath: scratch.served + "/m.gguf"))
        let nginx = try Nginx(root: scratch.served)
        defer { nginx.stop() }
        // Every body the CDN sends has a flipped byte; the slow peer is honest.
        let liar = try FaultServer(root: scratch.served)
        defer { liar.stop() }
        var request = PullRequest(source: liar.url("corruptall", "m.gguf"), sha256: try ExpectedHash(sha256: digest, source: .user),
                                  pieces: PieceManifest(of: data, pieceSize: 256 << 10))
        request.peers = [PeerSource(url: nginx.url("trickle/m.gguf"), ticket: nil)]
        let downloader = try scratch.downloader(Self.configuration())
        let completed = CompletedBytes()
        let result = try await downloader.pull(request) { completed.record($0.completedBytes) }
        await downloader.shutdown()
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        let copies = liar.requests.filter { $0.method == "GET" && $0.sent > 0 }
        #expect(!copies.isEmpty, "the CDN was asked for copies of slow pieces")
        // A bad piece written and found out would take its bytes off the progress.
        #expect(!completed.wentDown, "no bad copy was ever written")
    }
}

/// Whether reported progress ever went backwards.
final class CompletedBytes: @unchecked Sendable {
    // Guarded by `lock`.
    private var last: UInt64 = 0
    private var decreased = false
    private let lock = NSLock()

    func record(_ bytes: UInt64) {
        lock.withLock {
            if bytes < last { decreased = true }
            last = bytes
        }
    }

    var wentDown: Bool { lock.withLock { decreased } }
}
