import DepotTestSupport
import Foundation
import GGUF
import Testing
@testable import ModelStore

@Suite struct FailureTests {
    @Test(.enabled(if: SmallDisk.available, "needs permission to mount a tmpfs"))
    func fullDiskRefusesTheImportAndLeavesTheStoreConsistent() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let disk = try #require(SmallDisk(megabytes: 4))
        defer { disk.remove() }
        let store = try ModelStore(root: disk.path + "/store")
        let small = try store.importModel(ImportRequest(weights: try scratch.model("small.gguf"), name: "small:x")).entry
        #expect(small.weights != nil)

        var big = TinyModels.LlamaShape()
        big.embedding = 256
        big.feedForward = 1024
        let bigFile = scratch.path + "/big.gguf"
        try TinyModels.llama(shape: big).write(to: bigFile)
        let error = storeError { _ = try store.importModel(ImportRequest(weights: bigFile, name: "big:x")) }
        #expect(error?.code == .diskFull)
        #expect(error?.message.contains("free") == true)
        #expect(try store.listModels().map(\.name) == ["small:x"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256") == [small.weights!.sha256])
        #expect(try store.validate(full: true).map(\.status) == [.ready])
    }

    @Test func storeUnderAFileIsUnwritable() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let file = scratch.write("plain-file", [1])
        let error = storeError { _ = try ModelStore(root: file + "/store") }
        #expect(error?.code == .unwritable)
        #expect(error?.message.contains("--store") == true)
    }

    @Test(.enabled(if: SmallDisk.available, "needs permission to mount a tmpfs"))
    func readOnlyStoreIsUnwritable() throws {
        let disk = try #require(SmallDisk(megabytes: 1, readOnly: true))
        defer { disk.remove() }
        let error = storeError { _ = try ModelStore(root: disk.path) }
        #expect(error?.code == .unwritable)
    }

    @Test func concurrentImportsAndDeletesFromManyThreadsStayConsistent() async throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let file = try scratch.model("m.gguf")
        let root = scratch.storeRoot
        _ = try scratch.store()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    // Each worker opens its own store, as separate apps would.
                    let store = try ModelStore(root: root)
                    for _ in 0..<15 {
                        _ = try store.importModel(ImportRequest(weights: file, name: "shared:x", app: "com.w\(worker)"))
                        do {
                            _ = try store.deleteModel(named: "shared:x", app: "com.w\(worker)")
                        } catch let error as StoreError where error.code == .inUse || error.code == .notFound {}
                    }
                    _ = try store.importModel(ImportRequest(weights: file, name: "shared:x", app: "com.w\(worker)"))
                }
            }
            try await group.waitForAll()
        }
        let store = try scratch.store()
        let entry = try store.model(named: "shared:x")
        #expect(entry.apps.map(\.app) == ["com.w0", "com.w1", "com.w2", "com.w3"])
        #expect(try store.validate(full: true).map(\.status) == [.ready])
        #expect(scratch.files(in: "blobs/sha256") == [entry.weights!.sha256])
        #expect(scratch.files(in: "tmp").isEmpty)
    }
}
