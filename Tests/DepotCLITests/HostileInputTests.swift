import DepotTestSupport
import Foundation
import Testing

/// Hostile model files given to the built binary, as a downloaded "model" could be.
@Suite struct HostileInputTests {
    /// A GGUF v3 header: magic, version, tensor count, metadata count.
    static func header(tensors: UInt64, entries: UInt64) -> Data {
        var bytes = Data("GGUF".utf8)
        withUnsafeBytes(of: UInt32(3).littleEndian) { bytes.append(contentsOf: $0) }
        for count in [tensors, entries] { withUnsafeBytes(of: count.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    @Test func aSparseFileClaimingBillionsOfTensorsIsATypedErrorNotACrash() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let path = workspace.path + "/sparse.gguf"
        // 4 KB of data in a 100 GB file: two billion tensor infos would fit, as far as the size says.
        try (Self.header(tensors: 2_000_000_000, entries: 0) + Data(count: 4_096 - 24)).write(to: URL(fileURLWithPath: path))
        #expect(truncate(path, 100 << 30) == 0)
        let imported = try workspace.depot.run(["import", path, "--name", "sparse:x"])
        #expect(imported.status != 0 && imported.status != 134 && imported.status != 132, "exit \(imported.status)")
        #expect(imported.stderr.contains("2000000000 tensors") && imported.stderr.contains("offset 8"), "\(imported.stderr)")
        #expect(try workspace.depot.run(["show", "sparse:x"]).status != 0)
    }

    @Test func manyTinyMetadataEntriesAreRefusedByCount() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var file = Self.header(tensors: 0, entries: 200_000)
        for index in 0..<200_000 {
            let key = Data("k\(index)".utf8)
            withUnsafeBytes(of: UInt64(key.count).littleEndian) { file.append(contentsOf: $0) }
            file.append(key)
            withUnsafeBytes(of: UInt32(0).littleEndian) { file.append(contentsOf: $0) }  // uint8
            file.append(1)
        }
        let path = workspace.path + "/many.gguf"
        try file.write(to: URL(fileURLWithPath: path))
        let imported = try workspace.depot.run(["import", path, "--name", "many:x"])
        #expect(imported.status != 0 && imported.stderr.contains("200000 metadata entries"), "\(imported.stderr)")
    }

    @Test func hugeNegativeAndZeroCommandLineValuesAreRefusedWithAMessage() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let cases: [([String], String)] = [
            (["serve", "--keep-alive", "1e300"], "--keep-alive"), (["serve", "--heartbeat-interval", "1e300"], "--heartbeat-interval"),
            (["serve", "--announce-interval", "0"], "--announce-interval"), (["serve", "--port", "70000"], "--port"),
            (["serve", "--context-length", "0"], "--context-length"), (["serve", "--connections", "1000"], "--connections"),
            (["serve", "--max-connections", "0"], "--max-connections"), (["serve", "--seed", "--seed-uploads", "100000"], "--seed-uploads"),
            (["serve", "--seed", "--seed-rate", "1e300"], "--seed-rate"),
            (["coordinator", "--heartbeat-interval", "1e300"], "--heartbeat-interval"), (["coordinator", "--gossip-interval", "nan"], "--gossip-interval"),
            (["coordinator", "--agent-retention", "1e300"], "--agent-retention"), (["coordinator", "--max-agents", "0"], "--max-agents"),
            (["coordinator", "--credits-per-gib", "-1"], "--credits-per-gib"), (["coordinator", "--reports-until-ban", "0"], "--reports-until-ban"),
            (["pull", "http://127.0.0.1:9/m.gguf", "--stall-timeout", "1e300"], "--stall-timeout"), (["gc", "--grace", "1e300"], "--grace"),
        ]
        for (arguments, option) in cases {
            let outcome = try workspace.depot.run(arguments)
            #expect(outcome.status == 64 && outcome.stderr.contains(option), "depot \(arguments.joined(separator: " ")): \(outcome.status) \(outcome.stderr.prefix(200))")
        }
    }

    @Test func aKeyThatIsNotUTF8IsRefusedWithItsOffset() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var file = Self.header(tensors: 0, entries: 1)
        withUnsafeBytes(of: UInt64(2).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: [0xFF, 0xFE])
        withUnsafeBytes(of: UInt32(0).littleEndian) { file.append(contentsOf: $0) }
        file.append(1)
        let path = workspace.path + "/key.gguf"
        try file.write(to: URL(fileURLWithPath: path))
        let imported = try workspace.depot.run(["import", path, "--name", "key:x"])
        #expect(imported.status != 0 && imported.stderr.contains("UTF-8") && imported.stderr.contains("offset 32"), "\(imported.stderr)")
    }
}

/// Servers that lie about what they serve, and a flood of downloads, against the agent.
@Suite(.serialized) struct HostileServerTests {
    func jobs(_ agent: AgentProcess) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: Data(try agent.get("/jobs").body.utf8)) as? [[String: Any]] ?? []
    }

    func allocatedBytes(under path: String) -> UInt64 {
        let files = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
        return files.reduce(0) { total, name in
            var info = stat()
            return stat(path + "/" + name, &info) == 0 ? total + UInt64(info.st_blocks) * 512 : total
        }
    }

    @Test func aServerThatClaimsAGigabyteAndThenFailsLeavesNothingAllocated() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let root = workspace.path + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/m.gguf"))
        let server = try FaultServer(root: root)
        defer { server.stop() }
        let agent = try AgentProcess(workspace, arguments: [])
        defer { agent.stop() }

        #expect(try agent.post("/jobs", #"{"source": "\#(server.url("claim1g", "m.gguf"))", "name": "claimed:x"}"#).status == 202)
        // It fails after its retries; with nothing to resume, the job ends with it.
        try waitUntil(timeout: 120) { try jobs(agent).isEmpty }
        #expect(server.requests.filter { $0.path.hasPrefix("/claim1g") && $0.method == "GET" }.count >= 2, "the GETs were tried")
        #expect(allocatedBytes(under: workspace.path + "/store/tmp") < 1 << 20, "no gigabyte left behind")
        #expect(workspace.files(in: "tmp").filter { $0.hasSuffix(".partial") }.isEmpty, "a partial that never got a byte is removed")

        // More than the disk holds: refused before anything is allocated, with what is free.
        #expect(try agent.post("/jobs", #"{"source": "\#(server.url("claimhuge", "m.gguf"))", "name": "huge:x"}"#).status == 202)
        try waitUntil(timeout: 30) { try jobs(agent).isEmpty }
        #expect(server.requests.filter { $0.path.hasPrefix("/claimhuge") && $0.method == "GET" }.isEmpty, "not one byte was asked for")
        let pulled = try workspace.depot.run(["pull", server.url("claimhuge", "m.gguf"), "--name", "huge:cli"])
        #expect(pulled.status == 6 && pulled.stderr.contains("free"), "\(pulled.status) \(pulled.stderr)")
        #expect(allocatedBytes(under: workspace.path + "/store/tmp") < 1 << 20)
    }

    @Test func signedURLSecretsReachNeitherTheStoreNorJobsEventsMetricsOrShow() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let root = workspace.path + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        _ = try workspace.bigModel("www/m.gguf", megabytes: 8)
        let server = try FaultServer(root: root)
        defer { server.stop() }
        let agent = try AgentProcess(workspace, arguments: ["--connections", "1"])
        defer { agent.stop() }
        let secrets = ["AKAMAI-4b1e", "MD5-90c3", "CF-77d2", "SIG-a5e0"]
        let source = server.url("slow", "m.gguf") + "?__token__=exp=9~acl=%2F*~hmac=\(secrets[0])&md5=\(secrets[1])&expires=1999999999"
            + "&verify=1700000000-\(secrets[2])&X-Amz-Signature=\(secrets[3])&revision=main"
        // Someone watching the event stream while it runs.
        let events = Process()
        events.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        events.arguments = ["-s", "-N", "--max-time", "8", agent.base + "/events"]
        let eventsOut = try OutputFile()
        events.standardOutput = eventsOut.handle
        try events.run()
        let started = try agent.post("/jobs", #"{"source": "\#(source)", "name": "signed:x"}"#)
        #expect(started.status == 202)
        var seen = [started.body]
        try waitUntil(timeout: 60) {
            seen += [try agent.get("/jobs").body, try agent.get("/metrics").body]
            return try workspace.depot.run(["show", "signed:x"]).status == 0
        }
        events.waitUntilExit()
        seen += [eventsOut.contents(), try workspace.depot.run(["show", "signed:x"]).stdout, try workspace.depot.run(["show", "signed:x", "--json"]).stdout]
        #expect(seen.last?.contains("revision=main") == true, "what identifies the file stays")
        for secret in secrets {
            #expect(!seen.joined().contains(secret), "\(secret) was shown")
            for name in (FileManager.default.enumerator(atPath: workspace.path + "/store")?.allObjects as? [String]) ?? [] {
                guard !name.hasPrefix("blobs/"), let data = FileManager.default.contents(atPath: workspace.path + "/store/" + name) else { continue }
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) in \(name)")
            }
        }
    }

    @Test func idleAndHalfSentSocketsUnderALowDescriptorLimitStarveNobodyForLong() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        // ulimit -n 128: the agent keeps its connections to 128 - 64 and the rest for its files.
        let agent = try AgentProcess(workspace, arguments: [], descriptorLimit: 128)
        defer { agent.stop() }
        let kept = try #require(TCPConnection(port: agent.port))
        let get = "GET /model/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        #expect(kept.exchange(get)?.hasPrefix("HTTP/1.1 200") == true)
        var sockets = (0..<115).compactMap { _ in TCPConnection(port: agent.port) }
        sockets += (0..<5).compactMap { _ in
            let connection = TCPConnection(port: agent.port)
            connection?.write("GET /model/list HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            return connection
        }
        #expect(sockets.count == 120)
        Thread.sleep(forTimeInterval: 0.3)
        // The request-head deadline (10 s) closes the idle and half-sent ones, and the agent
        // answers again.
        let started = Date()
        try waitUntil(timeout: 20) { (try? agent.request("GET", "/model/status", maxTime: 2).status) == 200 }
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(kept.exchange(get)?.hasPrefix("HTTP/1.1 200") == true, "the kept-alive connection still answers")
        #expect(try workspace.depot.run(["list"]).status == 0)
        #expect(agent.running.process.isRunning)
    }

    @Test func beyondEightRunningDownloadsTheAgentAnswers429() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let root = workspace.path + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for index in 0..<9 { try Data(count: 24 << 20).write(to: URL(fileURLWithPath: root + "/m\(index).gguf")) }
        let server = try FaultServer(root: root)
        defer { server.stop() }
        // One connection at about 4 MB/s: each download runs for seconds.
        let agent = try AgentProcess(workspace, arguments: ["--connections", "1"])
        defer { agent.stop() }
        for index in 0..<8 {
            let body = #"{"source": "\#(server.url("slow", "m\(index).gguf"))", "name": "flood:m\#(index)"}"#
            let started = try agent.post("/jobs", body)
            #expect(started.status == 202, "\(started.body)")
        }
        let refused = try agent.post("/jobs", #"{"source": "\#(server.url("slow", "m8.gguf"))", "name": "flood:m8"}"#)
        #expect(refused.status == 429 && refused.body.contains("8 downloads are running"), "\(refused.body)")
        let joined = try agent.post("/jobs", #"{"source": "\#(server.url("slow", "m0.gguf"))", "name": "flood:m0"}"#)
        #expect(joined.status == 202, "the same files join the running download")
        for job in try jobs(agent) { _ = try agent.request("DELETE", "/jobs/\(job["id"] as? String ?? "")") }
    }
}

/// The catalog as an attacker on the network, or a busy client, would exercise it.
@Suite struct CatalogCachingTests {
    @Test func theAgentFetchesTheCatalogOncePerLifetimeNotPerRequest() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let replies = try (0..<20).map { _ in try agent.get("/model/list") }
        #expect(replies.allSatisfy { $0.status == 200 && $0.body.contains("tiny:three") })
        let fetches = setup.nginx.requests("catalog.json").filter { $0.hasPrefix("GET") }
        #expect(fetches.count == 1, "20 listings, \(fetches.count) catalog fetches")
    }

    @Test func aReplayedOlderSignedCatalogIsRefusedAndTheCachedOneKept() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let www = workspace.path + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        let nginx = try Nginx(root: www)
        defer { nginx.stop() }
        let keygen = try workspace.depot.run(["catalog", "keygen", workspace.path + "/catalog.key"], useStore: false)
        let publicKey = keygen.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        func publish(serial: Int, name: String) throws -> (catalog: Data, signature: Data) {
            let text = """
                {"version": 1, "serial": \(serial), "models": [{"modelId": "\(name):q8", "displayName": "\(name)", "paramSize": 0.002,
                 "quantization": "I8", "fileSizeBytes": 10, "downloadUrl": "\(nginx.url("m.gguf"))",
                 "checksumSha256": "\(String(repeating: "a", count: 64))", "platform": "all", "languages": [], "minMemoryMB": 1}]}
                """
            try Data(text.utf8).write(to: URL(fileURLWithPath: www + "/catalog.json"))
            let signed = try workspace.depot.run(["catalog", "sign", www + "/catalog.json", "--key-file", workspace.path + "/catalog.key"],
                                                 useStore: false)
            #expect(signed.status == 0, "\(signed.stderr)")
            return (FileManager.default.contents(atPath: www + "/catalog.json")!, FileManager.default.contents(atPath: www + "/catalog.json.sig")!)
        }
        let source = ["--catalog", nginx.url("catalog.json"), "--catalog-key", publicKey]
        let old = try publish(serial: 1, name: "old")
        #expect(try workspace.depot.run(["catalog", "list", "--all"] + source).stdout.contains("old:q8"))
        _ = try publish(serial: 2, name: "new")
        #expect(try workspace.depot.run(["catalog", "list", "--all"] + source).stdout.contains("new:q8"))

        // An attacker serves the first edition again, with its genuine signature.
        try old.catalog.write(to: URL(fileURLWithPath: www + "/catalog.json"))
        try old.signature.write(to: URL(fileURLWithPath: www + "/catalog.json.sig"))
        let replayed = try workspace.depot.run(["catalog", "list", "--all"] + source)
        #expect(replayed.stdout.contains("new:q8") && !replayed.stdout.contains("old:q8"), "\(replayed.stdout)")
        #expect(replayed.stderr.contains("serial 1, older than the cached serial 2"), "\(replayed.stderr)")
    }
}
