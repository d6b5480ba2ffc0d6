import DepotTestSupport
import Foundation
import MeshProtocol
import Testing
@testable import ModelTransfer

/// A phone nearby as a swarm source: the real radio peer and seeder over a simulated BLE
/// link (512-byte values, a byte rate, loss, repeats, reordering), nginx as the CDN.
@Suite(.serialized) struct RadioSwarmTests {
    static let pieceSize: UInt64 = 256 << 10

    /// A model served by nginx, its manifest, and a radio seeder for `seededPath` (the model
    /// itself unless given) at the far end of a fresh link.
    struct Setup {
        let scratch = TransferScratch()
        let digest: String
        let data: Data
        let manifest: PieceManifest
        let nginx: Nginx
        let radio: SimulatedRadio
        let peer: RadioPeer

        init(megabytes: Double, limits: SimulatedRadio.Limits, seededPath: ((String) throws -> String)? = nil) async throws {
            digest = try scratch.model("m.gguf", megabytes: megabytes)
            let path = scratch.served + "/m.gguf"
            data = try Data(contentsOf: URL(fileURLWithPath: path))
            manifest = PieceManifest(of: data, pieceSize: RadioSwarmTests.pieceSize)
            nginx = try Nginx(root: scratch.served)
            radio = SimulatedRadio(limits, seed: 7)
            let served = try seededPath?(path) ?? path
            let (digest, size) = (digest, UInt64(data.count))
            let seeder = RadioSeeder(link: radio.b) { sha256 in
                sha256 == digest ? .init(path: served, map: .complete(sha256: digest, size: size, pieceSize: RadioSwarmTests.pieceSize)) : nil
            }
            Task { await seeder.run() }
            peer = try RadioPeer(name: "phone-b", link: radio.a, sha256: digest)
        }

        func request(_ location: String) throws -> PullRequest {
            var request = PullRequest(source: nginx.url(location), sha256: try ExpectedHash(sha256: digest, source: .user), pieces: manifest)
            request.radioPeers = [peer]
            return request
        }

        func stop() {
            radio.close()
            nginx.stop()
            scratch.remove()
        }
    }

    @Test func aPhoneNearbySendsTheModelOverALossyLinkAndTheCDNServesAlmostNothing() async throws {
        let setup = try await Setup(megabytes: 2, limits: .init(bytesPerSecond: 2_000_000, loss: 0.1))
        defer { setup.stop() }
        let downloader = try setup.scratch.downloader()
        let result = try await downloader.pull(setup.request("crawl/m.gguf"))
        await downloader.shutdown()
        #expect(try sha256sum(result.entry.weights!.path) == setup.digest)
        let fromCDN = setup.nginx.bytesServed("m.gguf")
        #expect(fromCDN < UInt64(setup.data.count) / 4, "the CDN served \(fromCDN) of \(setup.data.count) bytes")
        #expect(setup.radio.lost > 0, "the link lost values and the model still arrived")
        #expect(setup.radio.oversized == 0, "every value fit one characteristic")
        let overhead = Double(setup.radio.bytesOnAir) / Double(setup.data.count)
        #expect(overhead < 1.5, "bytes on the air: \(overhead)× the model")
    }

    @Test func aPhoneThatSendsABadPieceIsDroppedAndTheCDNSendsItAgain() async throws {
        let setup = try await Setup(megabytes: 2, limits: .init(bytesPerSecond: 2_000_000, loss: 0.05)) { path in
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[Int(RadioSwarmTests.pieceSize) + 1000] ^= 0xFF
            let lying = path + ".lying"
            try bytes.write(to: URL(fileURLWithPath: lying))
            return lying
        }
        defer { setup.stop() }
        let downloader = try setup.scratch.downloader()
        let result = try await downloader.pull(setup.request("m.gguf"))
        await downloader.shutdown()
        #expect(try sha256sum(result.entry.weights!.path) == setup.digest)
        let badPiece = Self.pieceSize..<2 * Self.pieceSize
        let ranges = setup.nginx.requests("m.gguf").compactMap(Self.range)
        // The CDN is asked for nothing a live peer holds: a request for piece 1 means the phone
        // was dropped, after it sent something.
        #expect(ranges.contains { $0.overlaps(badPiece) }, "piece 1 came from the CDN after the phone's copy failed: \(ranges)")
        #expect(setup.radio.bytesOnAir > Int(Self.pieceSize), "the phone sent pieces before it was caught")
    }

    @Test func aPhoneThatWalksAwayMidDownloadCostsOnlyWhatWasInFlight() async throws {
        let setup = try await Setup(megabytes: 2, limits: .init(bytesPerSecond: 400_000, loss: 0.05))
        defer { setup.stop() }
        let downloader = try setup.scratch.downloader()
        let (radio, size) = (setup.radio, setup.data.count)
        // The phone leaves once it has sent over a third of the model.
        Task {
            while radio.bytesOnAir < size * 4 / 10 { try await Task.sleep(for: .milliseconds(20)) }
            radio.close()
        }
        let result = try await downloader.pull(setup.request("m.gguf"))
        await downloader.shutdown()
        #expect(try sha256sum(result.entry.weights!.path) == setup.digest)
        let fromCDN = setup.nginx.bytesServed("m.gguf")
        #expect(fromCDN > 0 && fromCDN < UInt64(setup.data.count),
                "the CDN sent the rest, \(fromCDN) bytes, not the whole model again; \(radio.bytesOnAir) bytes went over the radio: \(setup.nginx.requests("m.gguf"))")
    }

    @Test func aPhoneWithoutTheBlobIsNotASource() async throws {
        let setup = try await Setup(megabytes: 1, limits: .init(bytesPerSecond: 2_000_000, loss: 0))
        defer { setup.stop() }
        let stranger = try RadioPeer(name: "phone-c", link: setup.radio.a, sha256: String(repeating: "ab", count: 32))
        let refused: Bool
        do {
            _ = try await stranger.probe()
            refused = false
        } catch FetchFailure.fatal(let error) {
            refused = error.message.contains("does not hold")
        } catch {
            refused = false
        }
        #expect(refused, "a seeder without the blob refuses at once")
    }

    /// `bytes=A-B` in nginx's access log line → A..<B+1.
    static func range(_ line: String) -> Range<UInt64>? {
        guard let quoted = line.split(separator: "\"").dropFirst().first, quoted.hasPrefix("bytes="),
              let dash = quoted.firstIndex(of: "-"),
              let start = UInt64(quoted[quoted.index(quoted.startIndex, offsetBy: 6)..<dash]),
              let end = UInt64(quoted[quoted.index(after: dash)...]) else { return nil }
        return start..<end + 1
    }
}
