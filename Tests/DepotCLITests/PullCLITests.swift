import DepotTestSupport
import Foundation
import ModelStore
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

func sha256sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(64))
}
