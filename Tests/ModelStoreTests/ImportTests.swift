import DepotTestSupport
import Foundation
import GGUF
import Testing
@testable import ModelStore

@Suite struct ImportTests {
    @Test func importHardlinksRecordsFactsAndHashesCorrectly() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let file = try scratch.model("Tiny-Llama-F32.gguf")
        let store = try scratch.store()
        let result = try store.importModel(ImportRequest(weights: file, app: "com.example.chat"))

        #expect(result.created)
        #expect(result.entry.name == "tiny-llama:f32")
        #expect(result.files.map(\.method) == [.hardlinked])
        let weights = try #require(result.entry.weights)
        #expect(weights.sha256 == (try sha256sum(file)))
        #expect(weights.path == store.root + "/blobs/sha256/" + weights.sha256)
        #expect(inode(weights.path) == inode(file))
        #expect(weights.originalFilename == "Tiny-Llama-F32.gguf")
        #expect(result.entry.sourceURL == "file://" + file)
        #expect(result.entry.facts?.architecture == "llama")
        #expect(result.entry.facts?.quantization == "F32")
        #expect(result.entry.license == "mit")
        #expect(result.entry.apps.map(\.app) == ["com.example.chat"])
        #expect(scratch.files(in: "tmp").isEmpty)
        #expect(try store.listModels().map(\.name) == ["tiny-llama:f32"])
    }

    @Test func sameBytesAreStoredOnce() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let first = try scratch.model("a.gguf", seed: 3)
        let second = try scratch.model("b.gguf", seed: 3)
        let store = try scratch.store()
        _ = try store.importModel(ImportRequest(weights: first, name: "one:x"))
        let again = try store.importModel(ImportRequest(weights: second, name: "two:x", mode: .copy))
        #expect(again.files[0].alreadyStored)
        #expect(scratch.files(in: "blobs/sha256").count == 1)
        #expect(try store.usedBytes() == again.files[0].size)
    }

    @Test func aFileThatAlreadyIsAStoredBlobIsNotHashedAgain() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let file = try scratch.model("m.gguf")
        let store = try scratch.store()
        let first = try store.importModel(ImportRequest(weights: file, name: "a:x"))
        // Alter a byte but keep size and mtime: hashing would notice, the inode shortcut trusts it.
        var times = stat()
        stat(file, &times)
        let handle = try #require(FileHandle(forUpdatingAtPath: file))
        try handle.seek(toOffset: first.files[0].size - 1)
        handle.write(Data([0xEE]))
        try handle.close()
        var restore = [times.st_atim, times.st_mtim]
        utimensat(AT_FDCWD, file, &restore, 0)

        let second = try store.importModel(ImportRequest(weights: file, name: "b:x"))
        #expect(second.files[0].alreadyStored)
        #expect(second.files[0].sha256 == first.files[0].sha256)
        #expect(scratch.files(in: "tmp").isEmpty)
        let copied = try store.importModel(ImportRequest(weights: file, name: "c:x", mode: .copy))
        #expect(copied.files[0].sha256 != first.files[0].sha256, "--copy always hashes what it copies")
    }

    @Test func weightsAndProjectorFormOneEntry() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let result = try store.importModel(ImportRequest(
            weights: try scratch.model("vision.gguf"), projector: try scratch.projector(), name: "vision:tiny"))
        #expect(result.entry.files.map(\.role) == [.weights, .projector])
        #expect(result.entry.projector?.facts?.isProjector == true)
        #expect(result.entry.facts?.architecture == "llama")
        #expect(result.entry.sizeBytes == result.files.reduce(0) { $0 + $1.size })
        #expect(scratch.files(in: "blobs/sha256").count == 2)
    }

    @Test func copyModeKeepsTheStoreApartFromTheOriginal() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let file = try scratch.model("m.gguf")
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: file, name: "m:copy", mode: .copy)).entry
        let blob = try #require(entry.weights).path
        #expect(inode(blob) != inode(file))
        #expect(linkCount(file) == 1)
        let handle = try #require(FileHandle(forWritingAtPath: file))
        handle.write(Data("scribble".utf8))
        try handle.close()
        #expect(try sha256sum(blob) == entry.weights?.sha256)
    }

    @Test func moveModeRemovesTheOriginalOnlyOnSuccess() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        _ = try store.importModel(ImportRequest(weights: try scratch.model("taken.gguf", seed: 1), name: "taken:x"))
        let file = try scratch.model("m.gguf", seed: 2)
        let conflict = storeError { _ = try store.importModel(ImportRequest(weights: file, name: "taken:x", mode: .move)) }
        #expect(conflict?.code == .alreadyExists)
        #expect(FileManager.default.fileExists(atPath: file))

        let moved = try store.importModel(ImportRequest(weights: file, name: "m:moved", mode: .move))
        #expect(moved.files[0].method == .moved)
        #expect(!FileManager.default.fileExists(atPath: file))
        #expect(try sha256sum(moved.entry.weights!.path) == moved.entry.weights!.sha256)
    }

    @Test func aSymlinkedSourceBecomesARealBlob() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let target = try scratch.model("target.gguf")
        let link = scratch.path + "/link.gguf"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "target.gguf")
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: link, name: "m:x")).entry
        let blob = entry.weights!.path
        #expect(try FileManager.default.attributesOfItem(atPath: blob)[.type] as? FileAttributeType == .typeRegular)
        #expect(inode(blob) == inode(target))
        #expect(entry.weights?.originalFilename == "link.gguf")

        let moved = try store.importModel(ImportRequest(weights: link, name: "m:moved", mode: .move)).entry
        #expect(moved.weights?.sha256 == entry.weights?.sha256)
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil, "the symlink went with its file")
        #expect(try sha256sum(blob) == entry.weights?.sha256)
    }

    @Test func movingABlobIntoTheStoreKeepsIt() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x")).entry
        let again = try store.importModel(ImportRequest(weights: entry.weights!.path, name: "m:again", mode: .move))
        #expect(again.files[0].alreadyStored)
        #expect(FileManager.default.fileExists(atPath: entry.weights!.path))
        #expect(try store.validate(full: true).map(\.status) == [.ready, .ready])
    }

    @Test func sameNameWithOtherContentNeedsReplace() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let old = try store.importModel(ImportRequest(weights: try scratch.model("a.gguf", seed: 1), name: "m:x", mode: .copy))
        let newer = try scratch.model("b.gguf", seed: 2)
        let error = storeError { _ = try store.importModel(ImportRequest(weights: newer, name: "m:x")) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains("--force") == true)
        #expect(try store.model(named: "m:x").weights?.sha256 == old.entry.weights?.sha256)

        let replaced = try store.importModel(ImportRequest(weights: newer, name: "m:x", replace: true))
        #expect(replaced.entry.weights?.sha256 != old.entry.weights?.sha256)
        #expect(scratch.files(in: "blobs/sha256") == [replaced.entry.weights!.sha256])
    }

    @Test func reimportingTheSameFilesOnlyAddsTheApp() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let file = try scratch.model("m.gguf")
        _ = try store.importModel(ImportRequest(weights: file, name: "m:x", app: "com.a"))
        let again = try store.importModel(ImportRequest(weights: file, name: "m:x", app: "com.b", pin: true))
        #expect(!again.created)
        #expect(again.entry.apps.map(\.app) == ["com.a", "com.b"])
        #expect(again.entry.apps.map(\.pinned) == [false, true])
    }

    @Test func badFilesAreRefusedAndChangeNothing() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        _ = try store.importModel(ImportRequest(weights: try scratch.model("keep.gguf"), name: "keep:x"))
        let full = TinyModels.llama().encoded()
        let cases: [(String, StoreError.Code)] = [
            (scratch.write("text.gguf", Array("just some text".utf8)), .notGGUF),
            (scratch.write("empty.gguf", []), .notGGUF),
            (scratch.write("truncated.gguf", Array(full.prefix(full.count / 2))), .notGGUF),
            (scratch.write("header-only.gguf", Array(full.prefix(40))), .notGGUF),
            (scratch.path + "/missing.gguf", .invalidInput),
            (scratch.path, .invalidInput),
            (try scratch.projector(), .invalidInput),
        ]
        for (path, code) in cases {
            let error = storeError { _ = try store.importModel(ImportRequest(weights: path, name: "bad:x")) }
            #expect(error?.code == code, "\(path): \(String(describing: error))")
            #expect(error?.message.contains(path) == true)
        }
        let notProjector = storeError {
            _ = try store.importModel(ImportRequest(weights: try scratch.model("w.gguf"), projector: try scratch.model("p.gguf", seed: 9)))
        }
        #expect(notProjector?.code == .invalidInput)
        #expect(try store.listModels().map(\.name) == ["keep:x"])
        #expect(scratch.files(in: "blobs/sha256").count == 1)
        #expect(scratch.files(in: "tmp").isEmpty)
    }

    @Test func fileReplacedDuringImportIsDetected() throws {
        // A source whose status differs after hashing must not be recorded under the old hash.
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let file = try scratch.model("m.gguf")
        let inspected = try InspectedFile(path: file, role: .weights)
        try scratch.model("m.gguf", seed: 5)  // rewritten between inspection and staging
        #expect(throws: StoreError.self) {
            _ = try StagedFile(inspected, mode: .copy, temporaryDirectory: store.root + "/tmp")
        }
        #expect(scratch.files(in: "tmp").isEmpty)
    }
}
