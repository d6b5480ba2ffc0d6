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
