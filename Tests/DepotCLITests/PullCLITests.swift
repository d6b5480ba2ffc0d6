import DepotTestSupport
import Foundation
import ModelStore
import ModelTransfer
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct PullCLITests {
    @Test func killingThePullerAtTenRandomPointsStillEndsInTheRightFile() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/big.gguf", megabytes: 64)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? UInt64)
        let digest = try sha256sum(file)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        // 4 MB/s per connection, so the kills land mid-download.
        let arguments = ["pull", nginx.url("slow/big.gguf"), "--sha256", digest, "--connections", "4",
                         "--store", workspace.path + "/store"]
        let connections: UInt64 = 4, checkpointChunk: UInt64 = 4 << 20

        var kills = 0
        for _ in 0..<10 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DepotProcess.binary)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 150_000...450_000))
            if process.isRunning { kills += 1 }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(try workspace.depot.json([ModelEntry].self, ["list"]).allSatisfy { $0.weights?.sha256 == digest })
        }
        #expect(kills == 10, "every kill landed before the download finished")
        let jobs = try workspace.depot.run(["jobs"])
        #expect(jobs.stdout.contains("big.gguf"))

        let finalRun = try workspace.depot.run(Array(arguments.dropLast(2)) + ["--json"])
        #expect(finalRun.status == 0, "\(finalRun.stderr)")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let lastLine = try #require(finalRun.stdout.split(separator: "\n").last)
        let final = try decoder.decode(ImportResult.self, from: Data(lastLine.utf8))
        #expect(final.entry.isVerified)
        #expect(final.entry.weights?.sha256 == digest)
        #expect(try sha256sum(final.entry.weights!.path) == digest)
        let served = nginx.bytesServed("big.gguf")
        #expect(served <= size + 10 * connections * checkpointChunk, "served \(served) for a \(size)-byte file")
        #expect(try workspace.depot.run(["jobs"]).stdout.contains("No downloads"))
        try expectConsistent(workspace)
    }

    /// On a slow link, a SIGKILL costs at most the last two seconds of transfer (checkpoints
    /// go by time as well as by bytes), not a fixed 32 MiB.
    @Test func aKillOnASlowLinkCostsAtMostTheLastTwoSeconds() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/big.gguf", megabytes: 6)
        let digest = try sha256sum(file)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        // 96 KB/s a connection, four connections: about 0.4 MB/s.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DepotProcess.binary)
        process.arguments = ["pull", nginx.url("trickle/big.gguf"), "--sha256", digest, "--store", workspace.path + "/store"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let started = Date()
        try process.run()
        usleep(5_000_000)
        kill(process.processIdentifier, SIGKILL)
        let elapsed = Date().timeIntervalSince(started)
        process.waitUntilExit()
        usleep(500_000)  // nginx logs a connection once it sees it closed
        let sent = nginx.bytesServed("GET /trickle/big.gguf ")
        let jobs = try workspace.depot.json([PullJob].self, ["jobs"])
        let journaled = try #require(jobs.first?.completedBytes)
        let rate = Double(sent) / elapsed
        // Two seconds between checkpoints, the 50 ms they are looked for, and the time a
        // flush takes; what nginx had put in the socket buffers counts as sent.
        let bound = UInt64(2.5 * rate) + (256 << 10)
        #expect(journaled > 0 && sent >= journaled && sent - journaled <= bound,
                "journaled \(journaled) of \(sent) bytes sent in \(elapsed) s; at \(Int(rate)) B/s a kill may cost \(bound)")
    }

    @Test func creditsFromACoordinatorThatIsNotThereOrNotOneIsAClearError() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let unreachable = try workspace.depot.run(["credits", "--coordinator", "http://127.0.0.1:9"])
        #expect(unreachable.status != 0 && unreachable.stderr.contains("cannot reach the coordinator at http://127.0.0.1:9"), "\(unreachable.stderr)")
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        let notOne = try workspace.depot.run(["credits", "--coordinator", nginx.url("").trimmingCharacters(in: ["/"])])
        #expect(notOne.status != 0 && notOne.stderr.contains("answered: status 404"), "\(notOne.stderr)")
    }

    @Test func jsonProgressAndExitCodes() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        _ = try workspace.bigModel("www/m.gguf", megabytes: 2)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        let pulled = try workspace.depot.run(["pull", nginx.url("m.gguf"), "--json"])
        #expect(pulled.status == 0)
        let lines = pulled.stdout.split(separator: "\n").map(String.init)
        let events = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.count == lines.count, "every line is one JSON object")
        #expect(events.compactMap { $0["stage"] as? String }.contains("downloading"))
        #expect((events.last?["entry"] as? [String: Any])?["name"] as? String == "m:i8")
        #expect(try workspace.depot.run(["list"]).stdout.contains("unverified"))

        let missing = try workspace.depot.run(["pull", nginx.url("absent.gguf")])
        #expect(missing.status == 10)
        #expect(missing.stderr.contains("404"))
        let wrong = try workspace.depot.run(["pull", nginx.url("m.gguf"), "--name", "w:x", "--sha256", String(repeating: "0", count: 64)])
        #expect(wrong.status == 5)
        #expect(wrong.stderr.contains("expected 0000"))
        let bad = try workspace.depot.run(["pull", "ftp://example.com/m.gguf"])
        #expect(bad.status == 2)
        let badHash = try workspace.depot.run(["pull", nginx.url("m.gguf"), "--sha256", "xyz"])
        #expect(badHash.status == 2)
        #expect(badHash.stderr.contains("64 hexadecimal"))
    }
}


@Suite(.serialized) struct CatalogCLITests {
    @Test func pullByCatalogIDIsVerifiedAgainstTheCatalog() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/m.gguf", megabytes: 2)
        let digest = try sha256sum(file)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        let entries = [
            ("tiny:q8", "all", 512, digest, "m.gguf"), ("nochecksum:x", "all", 512, nil, "m.gguf"),
            ("phone:x", "ios", 512, digest, "m.gguf"), ("huge:x", "linux", 10_000_000, digest, "m.gguf"),
        ].map { id, platform, memory, sha, name -> String in
            """
            {"modelId": "\(id)", "displayName": "\(id)", "paramSize": 0.002, "quantization": "I8", "fileSizeBytes": 2097248,
             "downloadUrl": "\(nginx.url(name))", \(sha.map { "\"checksumSha256\": \"\($0)\"," } ?? "")
             "platform": "\(platform)", "languages": [], "minMemoryMB": \(memory)}
            """
        }
        try Data("{\"version\": 1, \"models\": [\(entries.joined(separator: ","))]}".utf8)
            .write(to: URL(fileURLWithPath: workspace.path + "/www/catalog.json"))
        let catalog = ["--catalog", nginx.url("catalog.json")]

        let listed = try workspace.depot.run(["catalog", "list"] + catalog)
        #expect(listed.status == 0)
        #expect(listed.stdout.contains("tiny:q8") && listed.stdout.contains("nochecksum:x"))
        #expect(!listed.stdout.contains("phone:x") && !listed.stdout.contains("huge:x"), "filtered for this device")
        #expect(try workspace.depot.run(["catalog", "list", "--all"] + catalog).stdout.contains("huge:x"))

        let pulled = try workspace.depot.run(["pull", "tiny:q8"] + catalog)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        let entry = try workspace.depot.json(ModelEntry.self, ["show", "tiny:q8"])
        #expect(entry.weights?.hashSource == .catalog)
        #expect(entry.weights?.sha256 == digest)

        let refused = try workspace.depot.run(["pull", "nochecksum:x"] + catalog)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--allow-unverified"))
        #expect(try workspace.depot.run(["pull", "nochecksum:x", "--allow-unverified"] + catalog).status == 0)
        #expect(try workspace.depot.run(["pull", "nosuch:model"] + catalog).status == 3)

        nginx.stop()
        let offline = try workspace.depot.run(["catalog", "list"])
        #expect(offline.status == 0)
        #expect(offline.stdout.contains("tiny:q8"))
        #expect(offline.stderr.contains("stale"))
    }

    @Test func aSignedCatalogIsCheckedAndATamperedOneRefused() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let www = workspace.path + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/m.gguf", megabytes: 2)
        let digest = try sha256sum(file)
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let nginx = try Nginx(root: www)
        defer { nginx.stop() }
        // Pieces and a mirror from the catalog: the primary address is missing, the mirror serves.
        let pieces = PieceManifest(of: data, pieceSize: 1 << 20)
        let piecesJSON = String(decoding: try JSONEncoder().encode(pieces), as: UTF8.self)
        let catalog = """
            {"version": 1, "models": [{"modelId": "tiny:q8", "displayName": "Tiny", "paramSize": 0.002, "quantization": "I8",
             "fileSizeBytes": \(data.count), "downloadUrl": "\(nginx.url("gone/m.gguf"))", "mirrors": ["\(nginx.url("m.gguf"))"],
             "checksumSha256": "\(digest)", "pieces": \(piecesJSON), "platform": "all", "languages": [], "minMemoryMB": 1}]}
            """
        try Data(catalog.utf8).write(to: URL(fileURLWithPath: www + "/catalog.json"))
        let keygen = try workspace.depot.run(["catalog", "keygen", workspace.path + "/catalog.key"], useStore: false)
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let publicKey = keygen.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let otherKey = try workspace.depot.run(["catalog", "keygen", workspace.path + "/other.key"], useStore: false)
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try workspace.depot.run(["catalog", "keygen", workspace.path + "/catalog.key"], useStore: false).status == 4,
                "an existing key is never overwritten")
        let signed = try workspace.depot.run(["catalog", "sign", www + "/catalog.json", "--key-file", workspace.path + "/catalog.key"],
                                             useStore: false)
        #expect(signed.status == 0, "\(signed.stderr)")

        let source = ["--catalog", nginx.url("catalog.json")]
        let listed = try workspace.depot.run(["catalog", "list", "--catalog-key", publicKey] + source)
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("signature checked"))
        let pulled = try workspace.depot.run(["pull", "tiny:q8", "--catalog-key", publicKey] + source)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(pulled.stderr.contains("using mirror"))
        #expect(try workspace.depot.json(ModelEntry.self, ["show", "tiny:q8"]).weights?.sha256 == digest)

        let wrongKey = try workspace.depot.run(["catalog", "list", "--catalog-key", otherKey] + source)
        #expect(wrongKey.status == 5)
        #expect(wrongKey.stderr.contains("not signed by the configured catalog key"))
        try Data(catalog.replacingOccurrences(of: "Tiny", with: "Evil").utf8).write(to: URL(fileURLWithPath: www + "/catalog.json"))
        let tampered = try workspace.depot.run(["catalog", "list", "--catalog-key", publicKey] + source)
        #expect(tampered.status == 5, "a changed byte breaks the signature")
        unlink(www + "/catalog.json.sig")
        let unsigned = try workspace.depot.run(["catalog", "list", "--catalog-key", publicKey] + source)
        #expect(unsigned.status == 5)
        #expect(unsigned.stderr.contains("no signature"))
        #expect(try workspace.depot.run(["catalog", "list", "--catalog-key", "not-a-key"] + source).status == 2)
        nginx.stop()
        let offline = try workspace.depot.run(["catalog", "list", "--catalog-key", publicKey])
        #expect(offline.status == 0, "the cached copy was signed by this key: \(offline.stderr)")
        #expect(try workspace.depot.run(["catalog", "list", "--catalog-key", otherKey]).status == 5,
                "and is refused under another key")
    }
}
