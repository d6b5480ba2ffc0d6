import DepotTestSupport
import Foundation
import ModelStore
import ModelTransfer
import Testing

/// Download jobs across processes: one `depot` pulls, others pause, resume, cancel or join it.
@Suite(.serialized) struct JobCLITests {
    static let secrets = ["TOK-4e1f9a", "SIG-77c2d0", "BEARER-a3b9e5"]

    @Test func anotherProcessPausesResumesAndCancelsAPull() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/big.gguf", megabytes: 24)
        let digest = try sha256sum(file)
        _ = try workspace.bigModel("www/other.gguf", megabytes: 24)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        var outputs: [String] = []
        // Secrets in the address and a token: none may appear in any output or stored file.
        let source = nginx.url("slow/big.gguf") + "?token=\(Self.secrets[0])&X-Amz-Signature=\(Self.secrets[1])"

        let pull = try workspace.depot.start(["pull", source, "--name", "big:x", "--connections", "1",
                                              "--token", Self.secrets[2], "--json"])
        let job = try waitForProgress(workspace, of: pull)
        let paused = try workspace.depot.run(["jobs", "pause", String(job.id.prefix(8))])
        #expect(paused.status == 0, "\(paused.stderr)")
        let stopped = pull.wait()
        outputs += [paused.stdout, paused.stderr, stopped.stdout, stopped.stderr]
        #expect(stopped.status == 13, "a paused pull exits 13: \(stopped.stderr)")
        #expect(stopped.stderr.contains("paused"))
        let listed = try workspace.depot.run(["jobs"])
        outputs += [listed.stdout, listed.stderr]
        #expect(listed.stdout.contains("paused") && listed.stdout.contains("big:x"))
        #expect(!workspace.files(in: "tmp").filter { $0.hasSuffix(".partial") }.isEmpty, "pause keeps the partial")

        let resumed = try workspace.depot.run(["jobs", "resume", job.id])
        outputs += [resumed.stdout, resumed.stderr]
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let entry = try workspace.depot.json(ModelEntry.self, ["show", "big:x"])
        #expect(entry.weights?.sha256 == digest)
        #expect(try workspace.depot.run(["jobs"]).stdout.contains("No downloads"))

        let second = try workspace.depot.start(["pull", nginx.url("slow/other.gguf"), "--connections", "1"])
        let secondJob = try waitForProgress(workspace, of: second)
        let cancelled = try workspace.depot.run(["jobs", "cancel", secondJob.id])
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        let ended = second.wait()
        #expect(ended.status == 130)
        #expect(ended.stderr.contains("nothing of it is kept"))
        #expect(workspace.files(in: "tmp").filter { $0.hasSuffix(".partial") }.isEmpty, "cancel keeps nothing")
        #expect(try workspace.depot.run(["jobs"]).stdout.contains("No downloads"))
        #expect(try workspace.depot.run(["jobs", "cancel", "nosuchjob"]).status == 3)

        for output in outputs {
            for secret in Self.secrets { #expect(!output.contains(secret), "\(secret) printed: \(output)") }
        }
        for relative in FileManager.default.subpaths(atPath: workspace.path + "/store") ?? [] {
            guard let data = FileManager.default.contents(atPath: workspace.path + "/store/" + relative) else { continue }
            for secret in Self.secrets { #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) stored in \(relative)") }
        }
    }

    @Test func aSecondProcessPullingTheSameModelWaitsAndShowsTheFirstOnesProgress() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(atPath: workspace.path + "/www", withIntermediateDirectories: true)
        let file = try workspace.bigModel("www/big.gguf", megabytes: 16)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? UInt64)
        let digest = try sha256sum(file)
        let nginx = try Nginx(root: workspace.path + "/www")
        defer { nginx.stop() }
        let arguments = ["pull", nginx.url("slow/big.gguf"), "--sha256", digest, "--connections", "1", "--json"]
        let first = try workspace.depot.start(arguments)
        _ = try waitForProgress(workspace, of: first)
        let second = try workspace.depot.start(arguments)
        let (one, two) = (first.wait(), second.wait())
        #expect(one.status == 0, "\(one.stderr)")
        #expect(two.status == 0, "\(two.stderr)")
        let events = two.stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(TransferProgress.self, from: Data($0.utf8)) }
        let shared = events.filter(\.sharedTransfer)
        #expect(shared.contains { $0.completedBytes > 0 && $0.completedBytes < size }, "the second reports the first's progress")
        #expect(nginx.bytesServed("big.gguf") < 2 * size, "one transfer for both")
    }

    @Test func processesOpeningANewStoreTogetherDoNotRaceItsMigrations() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let processes = try (0..<8).map { _ in try workspace.depot.start(["jobs"]) }
        for process in processes {
            let outcome = process.wait()
            #expect(outcome.status == 0, "\(outcome.stderr)")
        }
    }

    func waitForProgress(_ workspace: Workspace, of pull: DepotProcess.Running) throws -> PullJob {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard pull.process.isRunning else {
                let outcome = pull.wait()
                throw DepotFailure(message: "the pull ended (\(outcome.status)) before it made progress: \(outcome.stderr)")
            }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let outcome = try workspace.depot.run(["jobs", "--json"])
            if let jobs = try? decoder.decode([PullJob].self, from: Data(outcome.stdout.utf8)),
               let job = jobs.first(where: { $0.state == .running && $0.completedBytes > 0 }) {
                return job
            }
            usleep(50_000)
        }
        let jobs = try workspace.depot.run(["jobs", "--json"])
        throw DepotFailure(message: "no download made progress in 60 s; jobs: \(jobs.stdout) \(jobs.stderr)")
    }
}
