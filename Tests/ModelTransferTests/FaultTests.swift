import DepotTestSupport
import Foundation
import ModelStore
import Testing
@testable import ModelTransfer

@Suite(.serialized) struct FaultTests {
    /// Each misbehaviour must still end in exactly the served bytes.
    @Test(arguments: ["ok", "drop", "norange", "5xx", "stall", "lielength", "samehost"])
    func recoversFrom(fault: String) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 2)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: server.url(fault, "m.gguf"),
                                                           sha256: try ExpectedHash(sha256: digest, source: .user)))
        #expect(result.entry.weights?.sha256 == digest)
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        #expect(try downloader.jobs().isEmpty)
        await downloader.shutdown()
    }

    @Test(arguments: ["novalidators", "novalidatorsdrop"])
    func withoutValidatorsTheFileComesWholeInOneResponse(fault: String) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 2)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: server.url(fault, "m.gguf")))
        #expect(result.entry.weights?.sha256 == digest)
        let gets = server.requests.filter { $0.method == "GET" }
        #expect(gets.allSatisfy { $0.range == nil }, "no ranges: pieces could come from different versions")
        #expect(gets.count == (fault == "novalidators" ? 1 : 3))
        await downloader.shutdown()
    }

    @Test func anExpiredSignedAddressIsRenewedWithoutLosingTheDownload() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 3)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: server.url("expiring", "m.gguf"),
                                                           sha256: try ExpectedHash(sha256: digest, source: .user)))
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        let refused = server.requests.filter { $0.status == 403 }
        #expect(!refused.isEmpty, "some signed addresses expired during the download")
        // Work stealing aborts responses the server already counted as sent, so the exact
        // overhead varies with load; a restart from zero would send the whole file twice.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: scratch.served + "/m.gguf")[.size] as? Int)
        let served = server.requests.filter { $0.path.hasPrefix("/signed/") }.reduce(0) { $0 + $1.sent }
        #expect(served < 2 * size, "expiry must not restart the download: \(served) bytes sent for \(size)")
        await downloader.shutdown()
    }

    @Test func anETagChangeMidDownloadNeverSplicesTwoVersions() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 2, seed: 1)
        let second = try scratch.model("m.gguf.v2", megabytes: 2, seed: 2)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let result = try await downloader.pull(PullRequest(source: server.url("etagflip", "m.gguf")))
        #expect(result.entry.weights?.sha256 == second)
        #expect(try sha256sum(result.entry.weights!.path) == second)
        await downloader.shutdown()
    }

    @Test func aCorruptServerIsCaughtAndNothingBecomesVisible() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let error = await transferError {
            _ = try await downloader.pull(PullRequest(source: server.url("corrupt", "m.gguf"),
                                                      sha256: try ExpectedHash(sha256: digest, source: .user)))
        }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.message.contains("expected \(digest)") == true)
        #expect(try scratch.store().listModels().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.storeRoot + "/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.storeRoot + "/blobs/sha256").isEmpty)
        #expect(try downloader.jobs().isEmpty)
        await downloader.shutdown()
    }

    @Test func theTokenGoesOnlyToTheHostItWasGivenFor() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        _ = try await downloader.pull(PullRequest(source: server.url("redirect", "m.gguf"), name: "a:x", token: "sesame"))
        let requests = server.requests
        let first = try #require(requests.first { $0.path.hasPrefix("/redirect/") })
        #expect(first.authorization, "the named host gets the token")
        let redirected = requests.filter { $0.host.hasPrefix("localhost") }
        #expect(!redirected.isEmpty)
        #expect(redirected.allSatisfy { !$0.authorization }, "another host never does")

        _ = try await downloader.pull(PullRequest(source: server.url("samehost", "m.gguf"), name: "b:x", token: "sesame"))
        let sameHost = server.requests.filter { $0.path.hasPrefix("/ok/") && $0.host.hasPrefix("127.0.0.1") }
        #expect(!sameHost.isEmpty && sameHost.allSatisfy(\.authorization))
        await downloader.shutdown()
    }

    @Test func huggingFaceReferencesAreVerifiedAgainstThePublishedSHA256() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("qwen-q4_k_m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        var configuration = TransferScratch.fastConfiguration
        configuration.huggingFaceEndpoint = "http://127.0.0.1:\(server.port)/hf"
        let downloader = try scratch.downloader(configuration)
        let gated = await transferError { _ = try await downloader.pull(PullRequest(source: "hf://owner/repo/qwen-q4_k_m.gguf")) }
        #expect(gated?.code == .rejected)
        let result = try await downloader.pull(PullRequest(source: "hf://owner/repo@main/qwen-q4_k_m.gguf", token: "sesame"))
        #expect(result.entry.weights?.hashSource == .server)
        #expect(result.entry.weights?.sha256 == digest)
        #expect(result.entry.sourceURL == "hf://owner/repo@main/qwen-q4_k_m.gguf")
        let cdn = server.requests.filter { $0.host.hasPrefix("localhost") }
        #expect(!cdn.isEmpty && cdn.allSatisfy { !$0.authorization }, "the token stays with the Hub")
        await downloader.shutdown()
    }

    @Test func refusalsAreClearAndFinal() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let missing = await transferError { _ = try await downloader.pull(PullRequest(source: server.url("missing", "m.gguf"))) }
        #expect(missing?.code == .rejected)
        #expect(missing?.message.contains("404") == true)
        let unauthorised = await transferError { _ = try await downloader.pull(PullRequest(source: server.url("auth", "m.gguf"))) }
        #expect(unauthorised?.code == .rejected)
        #expect(unauthorised?.message.contains("token") == true)
        let allowed = try await downloader.pull(PullRequest(source: server.url("auth", "m.gguf"), token: "sesame"))
        #expect(allowed.entry.weights != nil)
        #expect(server.requests.filter { $0.status == 404 || $0.status == 401 }.count == 2, "refusals are not retried")
        await downloader.shutdown()
    }

    @Test func anUnreachableServerGivesUpWithAClearError() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        var configuration = TransferScratch.fastConfiguration
        configuration.maximumAttempts = 2
        let downloader = try scratch.downloader(configuration)
        let error = await transferError {
            _ = try await downloader.pull(PullRequest(source: "http://127.0.0.1:\(freePort())/m.gguf"))
        }
        #expect(error?.code == .unreachable)
        #expect(error?.message.contains("gave up") == true)
        await downloader.shutdown()
    }

    @Test func secretsNeverReachTheStore() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try scratch.downloader()
        let secrets = ["PW-7f3a9c", "SIG-51bd0e", "TOK-c8e2a1", "BEARER-9d4f6b", "CRED-2e7a"]
        let url = "http://alice:\(secrets[0])@127.0.0.1:\(server.port)/ok/m.gguf?X-Amz-Signature=\(secrets[1])&token=\(secrets[2])&X-Amz-Credential=\(secrets[4])&v=2"
        let stages = StageRecorder()
        let result = try await downloader.pull(PullRequest(source: url, token: secrets[3]), progress: stages.record)
        #expect(result.entry.sourceURL == "http://127.0.0.1:\(server.port)/ok/m.gguf?v=2")
        // Interrupt another pull so the journal holds a job too, then scan every byte of the store.
        let second = try scratch.model("n.gguf", megabytes: 8)
        _ = second
        let slowURL = url.replacingOccurrences(of: "/ok/m.gguf", with: "/slow/n.gguf")
        let task = Task { try await downloader.pull(PullRequest(source: slowURL, token: secrets[3])) }
        try await interrupt(task, whenJournalOf: downloader)
        #expect(try downloader.jobs().count == 1)
        for file in scratch.storeFiles() {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            for secret in secrets {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) found in \(file)")
            }
        }
        await downloader.shutdown()
    }

    @Test func aFullDiskStopsWithAClearError() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 6)
        let smallDisk = try #require(SmallDisk(megabytes: 3), "needs permission to mount a tmpfs")
        defer { smallDisk.remove() }
        let disk = smallDisk.path
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let downloader = try ModelDownloader(store: try ModelStore(root: disk + "/store"), configuration: TransferScratch.fastConfiguration)
        let error = await transferError { _ = try await downloader.pull(PullRequest(source: server.url("ok", "m.gguf"))) }
        #expect(error?.code == .diskFull)
        #expect(error?.message.contains("space") == true)
        #expect(try ModelStore(root: disk + "/store").listModels().isEmpty)
        await downloader.shutdown()
    }
}
