import DepotTestSupport
import Foundation
import Testing
import ModelStore
#if canImport(Glibc)
import Glibc
#endif

/// Runs a bash script with the given variables exported; returns its exit status.
@discardableResult
func bash(_ script: String, _ variables: [String: String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    process.environment = ProcessInfo.processInfo.environment.merging(variables) { $1 }
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// The store must hold exactly what its database says, whole.
func expectConsistent(_ workspace: Workspace, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let depot = workspace.depot
    #expect(try depot.run(["validate", "--full"]).status == 0, sourceLocation: sourceLocation)
    _ = try depot.json(GarbageReport.self, ["gc", "--grace", "0"])
    let entries = try depot.json([ModelEntry].self, ["list"])
    let referenced = Set(entries.flatMap { $0.files.map(\.sha256) })
    #expect(Set(workspace.files(in: "blobs/sha256")) == referenced, sourceLocation: sourceLocation)
    #expect(workspace.files(in: "tmp").isEmpty, sourceLocation: sourceLocation)
}

@Suite(.serialized) struct CrashAndConcurrencyTests {
    @Test func twoProcessesImportUseAndDeleteTheSameModel() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let file = try workspace.model("m.gguf")
        let unexpected = workspace.path + "/unexpected"
        let loop = """
            for i in $(seq 1 12); do
              "$DEPOT" import "$FILE" --name shared:x --app "$APP" --store "$STORE" >/dev/null 2>>"$BAD" || echo "import $?" >>"$BAD"
              "$DEPOT" use shared:x --app "$APP" --store "$STORE" >/dev/null 2>&1; rc=$?
              [ $rc -eq 0 ] || [ $rc -eq 3 ] || echo "use $rc" >>"$BAD"
              "$DEPOT" delete shared:x --app "$APP" --store "$STORE" >/dev/null 2>&1; rc=$?
              [ $rc -eq 0 ] || [ $rc -eq 3 ] || [ $rc -eq 4 ] || echo "delete $rc" >>"$BAD"
            done
            "$DEPOT" import "$FILE" --name shared:x --app "$APP" --store "$STORE" >/dev/null 2>>"$BAD" || echo "final $?" >>"$BAD"
            """
        let script = "(APP=com.a; \(loop)) & (APP=com.b; \(loop)) & wait"
        try bash(script, ["DEPOT": DepotProcess.binary, "FILE": file, "STORE": workspace.path + "/store", "BAD": unexpected])

        let problems = (try? String(contentsOfFile: unexpected, encoding: .utf8)) ?? ""
        #expect(problems.isEmpty, "unexpected failures: \(problems)")
        let entry = try workspace.depot.json(ModelEntry.self, ["show", "shared:x"])
        #expect(entry.apps.map(\.app) == ["com.a", "com.b"], "no reference may be lost")
        try expectConsistent(workspace)
    }

    @Test func killingTheImporterAtRandomPointsNeverLeavesAHalfWrittenBlob() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let file = try workspace.bigModel("big.gguf", megabytes: 48)
        let depot = workspace.depot
        let started = Date()
        _ = try DepotProcess(store: workspace.path + "/timing-store").run(["import", file, "--copy"])
        let duration = Date().timeIntervalSince(started)

        var random = SystemRandomNumberGenerator()
        for attempt in 0..<10 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DepotProcess.binary)
            process.arguments = ["import", file, "--copy", "--name", "big:x\(attempt % 3)", "--store", workspace.path + "/store"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(Double.random(in: 0...(duration * 1.2), using: &random) * 1_000_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            let entries = try depot.json([ModelEntry].self, ["list"])
            for entry in entries {
                let blob = try #require(entry.weights).path
                #expect(FileManager.default.fileExists(atPath: blob), "an entry without its blob after kill \(attempt)")
            }
            #expect(try depot.run(["validate", "--full"]).status == 0, "after kill \(attempt)")
        }
        try expectConsistent(workspace)
        let final = try depot.json(ImportResult.self, ["import", file, "--copy", "--name", "big:final"])
        #expect(final.entry.status == .ready)
        try expectConsistent(workspace)
    }

    @Test(.enabled(if: SmallDisk.available, "needs permission to mount a tmpfs"))
    func fullDiskAndFileSizeLimitFailCleanly() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let big = try workspace.bigModel("big.gguf", megabytes: 8)
        let small = try workspace.model("small.gguf")

        // A real full disk: the store on a 4 MB tmpfs.
        let smallDisk = try #require(SmallDisk(megabytes: 4))
        defer { smallDisk.remove() }
        let disk = smallDisk.path
        let onDisk = DepotProcess(store: disk + "/store")
        #expect(try onDisk.run(["import", small, "--name", "small:x"]).status == 0)
        let full = try onDisk.run(["import", big, "--name", "big:x"])
        #expect(full.status == 6)
        #expect(full.stderr.contains("free"))
        #expect(try onDisk.json([ModelEntry].self, ["list"]).map(\.name) == ["small:x"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk + "/store/tmp").isEmpty)
        #expect(try onDisk.run(["validate", "--full"]).status == 0)

        // A write that fails halfway: a 2 MB file-size limit on an 8 MB copy.
        #expect(try workspace.depot.run(["import", small, "--name", "small:x"]).status == 0)
        let limited = try bash("ulimit -f 2048; exec \"$DEPOT\" import \"$FILE\" --copy --name big:x --store \"$STORE\" 2>\"$ERR\"",
                               ["DEPOT": DepotProcess.binary, "FILE": big, "STORE": workspace.path + "/store",
                                "ERR": workspace.path + "/err"])
        #expect(limited == 6)
        let message = (try? String(contentsOfFile: workspace.path + "/err", encoding: .utf8)) ?? ""
        #expect(message.contains("full") || message.contains("large"), "\(message)")
        #expect(try workspace.depot.json([ModelEntry].self, ["list"]).map(\.name) == ["small:x"])
        #expect(workspace.files(in: "tmp").isEmpty)
        try expectConsistent(workspace)
    }
}
