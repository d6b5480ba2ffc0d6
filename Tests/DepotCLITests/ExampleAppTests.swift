import DepotTestSupport
import Foundation
import GGUF
import ModelStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The example chat app end to end: it gets a model and its projector from Depot (through the
/// agent daemon, directly on the shared store, or in its own store), loads them in llama.cpp
/// and answers a prompt.
@Suite(.serialized) struct ExampleAppTests {
    /// A llama of about 16 MB (slow enough to download at nginx's 4 MB/s to kill something
    /// midway) and a projector that fits it, served by nginx.
    struct Setup {
        let workspace = Workspace()
        let nginx: Nginx
        let weightsSHA256: String
        let projectorSHA256: String

        init() throws {
            let www = workspace.path + "/www"
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            var shape = TinyModels.LlamaShape()
            shape.embedding = 256
            shape.feedForward = 1024
            shape.blocks = 4
            try TinyModels.llama(seed: 5, shape: shape).write(to: www + "/chat.gguf")
            try TinyModels.projector(textEmbedding: shape.embedding).write(to: www + "/mmproj.gguf")
            weightsSHA256 = try sha256sum(www + "/chat.gguf")
            projectorSHA256 = try sha256sum(www + "/mmproj.gguf")
            nginx = try Nginx(root: www)
        }

        var arguments: [String] {
            ["--model", nginx.url("slow/chat.gguf"), "--projector", nginx.url("mmproj.gguf"), "--sha256", weightsSHA256,
             "--projector-sha256", projectorSHA256, "--store", workspace.path + "/store"]
        }

        func example(_ extra: [String], environment: [String: String] = [:]) throws -> DepotProcess.Running {
            try DepotProcess.Running(arguments + extra, binary: Self.exampleBinary, environment: environment)
        }

        static let exampleBinary = URL(fileURLWithPath: DepotProcess.binary).deletingLastPathComponent()
            .appendingPathComponent("depot-chat-example").path

        func remove() {
            nginx.stop()
            workspace.remove()
        }
    }

    @Test func twoInstancesShareOneDownloadThroughTheAgent() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try AgentProcess(setup.workspace, arguments: ["--connections", "1"])
        defer { agent.stop() }
        let first = try setup.example(["--agent", agent.base])
        let second = try setup.example(["--agent", agent.base])
        let (one, two) = (first.wait(), second.wait())
        for outcome in [one, two] {
            #expect(outcome.status == 0, "\(outcome.stdout)\n\(outcome.stderr)")
            #expect(outcome.stdout.contains("manager: sharedThroughAgent"))
            #expect(outcome.stdout.contains("ready: example:chat (verified"))
            #expect(outcome.stdout.contains("answer: ") && !outcome.stdout.contains("answer: 0 tokens"), "llama.cpp answered: \(outcome.stdout)")
        }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: setup.workspace.path + "/www/chat.gguf")[.size] as? UInt64)
        #expect(setup.nginx.bytesServed("chat.gguf") < 2 * size, "one download for both")
        let entry = try setup.workspace.depot.json(ModelEntry.self, ["show", "example:chat"])
        #expect(entry.projector != nil && entry.apps.map(\.app) == ["com.example.chat"])
    }

    @Test func whenTheAgentDiesMidDownloadTheAppCarriesOnAndSaysSo() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try AgentProcess(setup.workspace, arguments: ["--connections", "1"])
        defer { agent.stop() }
        let app = try setup.example(["--agent", agent.base])
        _ = try agent.wait(for: "/model/status") { (($0["pull"] as? [String: Any])?["completedBytes"] as? Int ?? 0) > 0 }
        kill(agent.running.process.processIdentifier, SIGKILL)
        let outcome = app.wait()
        #expect(outcome.status == 0, "\(outcome.stdout)\n\(outcome.stderr)")
        #expect(outcome.stdout.contains("stopped answering; continuing the download in this process"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("ready: example:chat (verified"))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: setup.workspace.path + "/www/chat.gguf")[.size] as? UInt64)
        #expect(setup.nginx.bytesServed("chat.gguf") < 2 * size, "the app resumed the agent's partial file")
    }

    @Test func withoutTheSharedStoreTheAppUsesItsOwn() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let own = setup.workspace.path + "/app-store"
        let app = try setup.example(["--agent", "http://127.0.0.1:\(freePort())", "--app-directory", own],
                                    environment: ["DEPOT_SHARED": "off"])
        let outcome = app.wait()
        #expect(outcome.status == 0, "\(outcome.stdout)\n\(outcome.stderr)")
        #expect(outcome.stdout.contains("manager: appLocal: sharing is switched off"))
        #expect(FileManager.default.fileExists(atPath: own + "/depot.sqlite"))
        #expect(!FileManager.default.fileExists(atPath: setup.workspace.path + "/store/depot.sqlite"), "the shared store is untouched")
    }
}
