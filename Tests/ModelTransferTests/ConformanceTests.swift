import DepotTestSupport
import Foundation
import ModelStore
import Testing
@testable import ModelTransfer

/// Both managers an app can get from `automatic` behave the same: the shared store used
/// directly, and an app-private store. (The shared store through the agent daemon is run end
/// to end by the example app's tests.)
@Suite(.serialized) struct ConformanceTests {
    enum Kind: String, CaseIterable { case shared, appLocal }

    func manager(_ kind: Kind, _ scratch: TransferScratch, connections: Int = 4) async throws -> any StoreBackedManager {
        var configuration = TransferScratch.fastConfiguration
        configuration.connections = connections
        switch kind {
        case .shared:
            return try await SharedStoreManager.open(store: scratch.store(), agentURL: nil, configuration: configuration)
        case .appLocal:
            return try AppLocalManager(appID: "com.example.chat", directory: scratch.storeRoot, configuration: configuration)
        }
    }

    @Test(arguments: Kind.allCases)
    func ensureListGetRemovePrune(kind: Kind) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 1)
        try scratch.model("n.gguf", megabytes: 1, seed: 3)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let manager = try await manager(kind, scratch)
        let result = try await manager.ensure(PullRequest(source: server.url("ok", "m.gguf"), name: "m:x", app: "com.example.chat",
                                                          sha256: try ExpectedHash(sha256: digest, source: .user))).result()
        #expect(result.entry.weights?.sha256 == digest)
        _ = try await manager.ensure(PullRequest(source: server.url("ok", "n.gguf"), name: "n:x")).result()
        #expect(try manager.list().map(\.name).sorted() == ["m:x", "n:x"])
        #expect(try manager.get("m:x")?.apps.map(\.app) == ["com.example.chat"])
        #expect(try manager.get("none:x") == nil)
        let refused = await transferError { _ = try manager.remove("m:x", app: "com.example.other", force: false) }
        #expect(refused?.storeError?.code == .inUse)
        let plan = try manager.prune(toFit: 0, dryRun: false, app: "com.example.other")
        #expect(plan.removals.map(\.name) == ["n:x"], "an app's prune removes unused models…")
        #expect(plan.usedByOtherApps == ["m:x"], "…and spares the ones another app uses")
        #expect(try manager.get("n:x") == nil && manager.get("m:x") != nil)
        _ = try manager.remove("m:x", app: "com.example.chat", force: false)
        #expect(try manager.list().isEmpty)
    }

    @Test(arguments: Kind.allCases)
    func aWrongHashIsRefusedAndNothingIsKept(kind: Kind) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let manager = try await manager(kind, scratch)
        let controller = manager.ensure(PullRequest(source: server.url("ok", "m.gguf"),
                                                    sha256: try ExpectedHash(sha256: String(repeating: "a", count: 64), source: .catalog)))
        let error = await transferError { _ = try await controller.result() }
        #expect(error?.code == .checksumMismatch)
        #expect(controller.snapshot.stage == .failed)
        #expect(try manager.list().isEmpty)
    }

    @Test(arguments: Kind.allCases)
    func anInterruptedDownloadResumes(kind: Kind) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 8)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let slow = server.url("slow", "m.gguf")
        let request = PullRequest(source: slow, name: "m:x", sha256: try ExpectedHash(sha256: digest, source: .user))
        let first = try await manager(kind, scratch, connections: 1)
        let controller = first.ensure(request)
        controller.start()
        while controller.snapshot.completedBytes < 1 << 20 { try await Task.sleep(for: .milliseconds(10)) }
        await controller.pause()
        let (_, kept) = try #require(try first.direct.downloader.journal.job(forKey: "sha256:" + digest), "pause keeps the job")
        #expect(kept.count > 0)
        // The server logs a request when its response ends: wait for the first run's to be logged.
        let deadline = ContinuousClock.now + .seconds(10)
        while !server.requests.contains(where: { $0.method == "GET" }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let before = server.requests.count
        // A new manager, as after the app was killed and started again.
        let again = try await manager(kind, scratch, connections: 1)
        let result = try await again.ensure(request).result()
        #expect(try sha256sum(result.entry.weights!.path) == digest)
        let resumed = server.requests.dropFirst(before).filter { $0.method == "GET" }.compactMap { JobTests.bounds($0.range) }
        #expect(!resumed.isEmpty)
        for range in resumed {
            #expect(kept.ranges.allSatisfy { !$0.overlaps(range.lowerBound..<range.upperBound + 1) },
                    "the second run asks only for missing bytes: \(range) vs \(kept.ranges)")
        }
    }

    /// Another user's process listening on the agent's port: it answers like an agent but cannot
    /// sign with the key in the store, so the app downloads itself and sends it no token.
    @Test func anImpostorDaemonGetsNeitherTheDownloadNorTheToken() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let store = try scratch.store()
        // The real agent's key in the store (as `depot serve` makes it), and an impostor that
        // serves 200 for the status and a made-up proof.
        try Data((Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n").utf8)
            .write(to: URL(fileURLWithPath: store.root + "/agent.key"))
        let impostorRoot = scratch.served + "-impostor"
        try FileManager.default.createDirectory(atPath: impostorRoot, withIntermediateDirectories: true)
        try Data(#"{"state": "idle"}"#.utf8).write(to: URL(fileURLWithPath: impostorRoot + "/status"))
        try Data(#"{"agentId": "0123456789abcdef", "signature": "AAAA"}"#.utf8).write(to: URL(fileURLWithPath: impostorRoot + "/proof"))
        let impostor = try FaultServer(root: impostorRoot)
        defer { impostor.stop() }
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }

        let manager = try await SharedStoreManager.open(store: store, agentURL: "http://127.0.0.1:\(impostor.port)", agentToken: "APP-TOKEN-1",
                                                        configuration: TransferScratch.fastConfiguration)
        #expect(manager.agent == nil, "the impostor is not used")
        _ = try await manager.ensure(PullRequest(source: server.url("ok", "m.gguf"), name: "m:x")).result()
        #expect(try manager.get("m:x") != nil)
        #expect(impostor.requests.map(\.path).allSatisfy { $0.hasPrefix("/agent/proof?nonce=") }, "\(impostor.requests.map(\.path))")
        #expect(impostor.requests.allSatisfy { !$0.authorization }, "no token was sent")
        await manager.shutdown()
    }

    @Test(arguments: Kind.allCases)
    func secretsNeverReachTheStore(kind: Kind) async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        try scratch.model("m.gguf", megabytes: 1)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }
        let manager = try await manager(kind, scratch)
        let secrets = ["SIG-0c4e", "TOK-77aa", "BEARER-51f0", "AKAMAI-93d1", "MD5-5be2", "CF-1a7c"]
        // AWS, a bearer, Akamai's __token__, nginx secure_link's md5, Cloudflare's verify.
        let url = server.url("ok", "m.gguf") + "?X-Amz-Signature=\(secrets[0])&token=\(secrets[1])&__token__=exp=9~hmac=\(secrets[3])"
            + "&md5=\(secrets[4])&expires=1999999999&verify=1700000000-\(secrets[5])"
        let controller = manager.ensure(PullRequest(source: url, name: "m:x", token: secrets[2]))
        let seen = Task { () -> [String] in
            var text: [String] = []
            for await update in controller.updates { text.append("\(update)") }
            return text
        }
        _ = try await controller.result()
        let snapshots = await seen.value.joined()
        for secret in secrets {
            #expect(!snapshots.contains(secret), "\(secret) in a progress snapshot")
            for file in scratch.storeFiles() {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) in \(file)")
            }
        }
    }

    @Test func automaticSaysWhichManagerItChoseAndWhy() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let shared = try await AutomaticModelManager.automatic(appID: "com.example.chat", sharedRoot: scratch.storeRoot,
                                                               agentURL: "http://127.0.0.1:\(freePort())", environment: [:])
        #expect(shared.choice == .sharedDirect)
        #expect(shared.reason.contains(scratch.storeRoot) && shared.reason.contains("no agent answers"))
        await shared.shutdown()

        let off = try await AutomaticModelManager.automatic(appID: "com.example.chat", sharedRoot: scratch.storeRoot, agentURL: nil,
                                                            appDirectory: scratch.path + "/app", environment: ["DEPOT_SHARED": "off"])
        #expect(off.choice == .appLocal && off.reason.contains("DEPOT_SHARED=off"))
        #expect(off.direct.store.root == scratch.path + "/app")
        await off.shutdown()

        // A shared root under a file cannot be a store: the app's own store takes over.
        #expect(FileManager.default.createFile(atPath: scratch.path + "/file", contents: Data()))
        let unusable = try await AutomaticModelManager.automatic(appID: "com.example.chat", sharedRoot: scratch.path + "/file/store",
                                                                 agentURL: nil, appDirectory: scratch.path + "/app", environment: [:])
        #expect(unusable.choice == .appLocal && unusable.reason.contains("cannot be used"))
        await unusable.shutdown()
    }

    /// These machines run no login manager, so a stand-in `systemd-inhibit` records that it ran
    /// and with what, then runs its command (`cat`, which holds it until depot closes the pipe),
    /// as the real one does.
    @Test func theSleepInhibitorIsHeldOnlyWhileADownloadRuns() async throws {
        let scratch = TransferScratch()
        defer { scratch.remove() }
        let digest = try scratch.model("m.gguf", megabytes: 4)
        let bin = scratch.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let record = scratch.path + "/inhibit.log"
        try "#!/bin/sh\necho \"$@\" >> \(record)\nexec cat\n".write(toFile: bin + "/systemd-inhibit", atomically: true, encoding: .utf8)
        chmod(bin + "/systemd-inhibit", 0o755)
        let server = try FaultServer(root: scratch.served)
        defer { server.stop() }

        let inhibitor = SleepInhibitor(appID: "com.example.chat", searchPath: bin + ":/usr/bin:/bin")
        let manager = try AppLocalManager(appID: "com.example.chat", directory: scratch.storeRoot,
                                          configuration: TransferScratch.fastConfiguration, sleepInhibitor: inhibitor)
        #expect(!inhibitor.isHolding, "never held by itself")
        let controller = manager.ensure(PullRequest(source: server.url("slow", "m.gguf"), sha256: try ExpectedHash(sha256: digest, source: .user)))
        controller.start()
        while controller.snapshot.completedBytes == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(inhibitor.isHolding)
        _ = try await controller.result()
        #expect(!inhibitor.isHolding, "released when the download ends")
        let arguments = try String(contentsOfFile: record, encoding: .utf8)
        #expect(arguments.contains("--what=sleep") && arguments.contains("--who=com.example.chat"))

        // Without systemd-inhibit: one clear line, and the download still runs.
        let lines = LineRecorder()
        let noTool = SleepInhibitor(appID: "com.example.chat", searchPath: "/nonexistent", log: lines.record)
        let other = try AppLocalManager(appID: "com.example.chat", directory: scratch.path + "/other",
                                        configuration: TransferScratch.fastConfiguration, sleepInhibitor: noTool)
        _ = try await other.ensure(PullRequest(source: server.url("ok", "m.gguf"))).result()
        _ = try await other.ensure(PullRequest(source: server.url("ok", "m.gguf"), name: "second:x")).result()
        #expect(lines.lines.count == 1 && lines.lines.first?.contains("systemd-inhibit is not available") == true)
    }
}

final class LineRecorder: @unchecked Sendable {
    private var recorded: [String] = []
    private let lock = NSLock()
    var record: @Sendable (String) -> Void { { line in self.lock.withLock { self.recorded.append(line) } } }
    var lines: [String] { lock.withLock { recorded } }
}
