import Foundation
import Testing
import ModelStore

@Suite struct WorkflowTests {
    @Test func importListShowUseValidateDeleteThroughTheBinary() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let depot = workspace.depot
        let file = try workspace.model("Tiny-Chat-F32.gguf")

        let imported = try depot.json(ImportResult.self, ["import", file, "--app", "com.example.chat"])
        #expect(imported.entry.name == "tiny-chat:f32")
        #expect(imported.files.map(\.method) == [.hardlinked])

        let listed = try depot.json([ModelEntry].self, ["list"])
        #expect(listed.map(\.name) == ["tiny-chat:f32"])
        #expect(listed[0].facts?.architecture == "llama")

        let shown = try depot.json(ModelEntry.self, ["show", "tiny-chat:f32"])
        #expect(shown.apps.map(\.app) == ["com.example.chat"])
        #expect(shown.weights?.sha256 == imported.files[0].sha256)

        let text = try depot.run(["show", "tiny-chat:f32"])
        #expect(text.stdout.contains("architecture: llama"))
        #expect(text.stdout.contains("com.example.chat"))

        #expect(try depot.run(["use", "tiny-chat:f32", "--app", "com.example.notes", "--pin"]).status == 0)
        let refused = try depot.run(["delete", "tiny-chat:f32", "--app", "com.example.chat"])
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("com.example.notes"))
        #expect(refused.stderr.contains("--force"))

        let dry = try depot.run(["prune", "--max-bytes", "0", "--dry-run"])
        #expect(dry.status == 0)
        #expect(dry.stdout.contains("pinned"))

        #expect(try depot.run(["validate", "--full"]).status == 0)
        let released = try depot.run(["release", "tiny-chat:f32", "--app", "com.example.notes"])
        #expect(released.stdout.contains("released"))
        let deleted = try depot.json(DeletionResult.self, ["delete", "tiny-chat:f32", "--app", "com.example.chat"])
        #expect(deleted.removedBlobs == [imported.files[0].sha256])
        #expect(try depot.json([ModelEntry].self, ["list"]).isEmpty)
        #expect(workspace.files(in: "blobs/sha256").isEmpty)
        #expect(FileManager.default.fileExists(atPath: file))
    }

    @Test func badInputGetsAClearErrorAndAnExitCode() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let depot = workspace.depot
        let notGGUF = workspace.path + "/notes.gguf"
        _ = FileManager.default.createFile(atPath: notGGUF, contents: Data("hello".utf8))
        let cases: [([String], Int32, String)] = [
            (["import", notGGUF], 2, "not a usable GGUF file"),
            (["import", workspace.path + "/absent.gguf"], 2, "does not exist"),
            (["import", try workspace.model("m.gguf"), "--name", "../escape"], 2, "must not contain '..'"),
            (["import", try workspace.model("m.gguf"), "--name", "a\u{1}b"], 2, "control character"),
            (["import", try workspace.model("m.gguf"), "--move", "--copy"], 64, "cannot be combined"),
            (["import", try workspace.model("m.gguf"), "--pin"], 64, "--pin needs --app"),
            (["show", "nothing:here"], 3, "no model named 'nothing:here'"),
            (["delete", "nothing:here"], 3, "depot list"),
            (["use", "x:y", "--app", "com/evil"], 2, "app id"),
            (["prune", "--max-bytes", "lots"], 64, "not a size"),
        ]
        for (arguments, status, message) in cases {
            let outcome = try depot.run(arguments)
            #expect(outcome.status == status, "\(arguments): \(outcome.stderr)")
            #expect(outcome.stderr.contains(message), "\(arguments): \(outcome.stderr)")
        }
        #expect(try depot.json([ModelEntry].self, ["list"]).isEmpty)
        #expect(workspace.files(in: "blobs/sha256").isEmpty)
        #expect(workspace.files(in: "tmp").isEmpty)
    }

    @Test func corruptionMakesValidateExitWithFive() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let depot = workspace.depot
        let imported = try depot.json(ImportResult.self, ["import", try workspace.model("m.gguf"), "--copy"])
        let blob = imported.entry.weights!.path
        chmod(blob, 0o644)
        let handle = try #require(FileHandle(forUpdatingAtPath: blob))
        try handle.seek(toOffset: 100)
        handle.write(Data([0xDE, 0xAD]))
        try handle.close()
        let outcome = try depot.run(["validate"])
        #expect(outcome.status == 5)
        #expect(outcome.stdout.contains("corrupt"))
        #expect(try depot.run(["list"]).stdout.contains("corrupt"))
    }

    @Test func theDefaultStoreFollowsTheEnvironment() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let home = workspace.path + "/depot-home"
        let file = try workspace.model("m.gguf")
        #expect(try workspace.depot.run(["import", file, "--name", "m:x"], environment: ["DEPOT_HOME": home], useStore: false).status == 0)
        let xdg = workspace.path + "/xdg"
        #expect(try workspace.depot.run(["import", file, "--name", "m:x"],
                                         environment: ["DEPOT_HOME": "", "XDG_DATA_HOME": xdg], useStore: false).status == 0)
        #expect(FileManager.default.fileExists(atPath: home + "/depot.sqlite"))
        #expect(FileManager.default.fileExists(atPath: xdg + "/depot/depot.sqlite"))
        let listed = try workspace.depot.run(["list"], environment: ["DEPOT_HOME": home], useStore: false)
        #expect(listed.stdout.contains("m:x"))
    }
}
