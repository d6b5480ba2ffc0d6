import DepotTestSupport
import Foundation
import Testing
@testable import ModelStore

@Suite struct AppReferenceTests {
    @Test func useReleaseAndPin() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let clock = TestClock()
        let store = try scratch.store(now: clock.now)
        _ = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x"))
        #expect(try store.model(named: "m:x").lastUsedAt == nil)
        clock.advance(10)
        var entry = try store.useModel(named: "m:x", app: "com.a", pin: true)
        #expect(entry.apps.map(\.app) == ["com.a"])
        #expect(entry.isPinned)
        #expect(entry.lastUsedAt == clock.now())
        entry = try store.useModel(named: "m:x", app: "com.a")
        #expect(entry.isPinned, "using again without --pin keeps the pin")
        entry = try store.useModel(named: "m:x", app: "com.a", pin: false)
        #expect(!entry.isPinned)
        #expect(try store.releaseModel(named: "m:x", app: "com.a"))
        #expect(try !store.releaseModel(named: "m:x", app: "com.a"))
        #expect(try store.model(named: "m:x").apps.isEmpty)
        #expect(storeError { try store.useModel(named: "nope:x", app: "com.a") }?.code == .notFound)
        #expect(storeError { try store.useModel(named: "m:x", app: "bad/app") }?.code == .invalidName)
    }
}

@Suite struct DeleteTests {
    @Test func deleteIsRefusedWhileAnotherAppUsesTheModel() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x", app: "com.a")).entry
        try store.useModel(named: "m:x", app: "com.b")

        let refused = storeError { _ = try store.deleteModel(named: "m:x", app: "com.a") }
        #expect(refused?.code == .inUse)
        #expect(refused?.message.contains("'com.b'") == true)
        #expect(refused?.message.contains("'com.a'") == false)
        let anonymous = storeError { _ = try store.deleteModel(named: "m:x") }
        #expect(anonymous?.message.contains("'com.a', 'com.b'") == true)
        #expect(FileManager.default.fileExists(atPath: entry.weights!.path))

        try store.releaseModel(named: "m:x", app: "com.b")
        let deleted = try store.deleteModel(named: "m:x", app: "com.a")
        #expect(deleted.removedBlobs == [entry.weights!.sha256])
        #expect(deleted.bytesFreed == entry.sizeBytes)
        #expect(!FileManager.default.fileExists(atPath: entry.weights!.path))
        #expect(try store.listModels().isEmpty)
    }

    @Test func forceOverridesAndSaysWhom() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        _ = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x", app: "com.b"))
        let deleted = try store.deleteModel(named: "m:x", app: "com.a", force: true)
        #expect(deleted.overriddenApps == ["com.b"])
        #expect(storeError { _ = try store.model(named: "m:x") }?.code == .notFound)
    }

    @Test func sharedBlobsStayUntilTheLastEntryGoes() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let file = try scratch.model("m.gguf")
        _ = try store.importModel(ImportRequest(weights: file, name: "a:x"))
        let b = try store.importModel(ImportRequest(weights: file, projector: try scratch.projector(), name: "b:x")).entry
        let first = try store.deleteModel(named: "a:x")
        #expect(first.removedBlobs.isEmpty)
        #expect(first.bytesFreed == 0)
        #expect(scratch.files(in: "blobs/sha256").count == 2)
        let second = try store.deleteModel(named: "b:x")
        #expect(Set(second.removedBlobs) == Set(b.files.map(\.sha256)))
        #expect(scratch.files(in: "blobs/sha256").isEmpty)
        #expect(FileManager.default.fileExists(atPath: file), "the original of a hardlink is untouched")
    }
}

@Suite struct PruneTests {
    /// Three models used in order a, b, c, each ~`size` bytes.
    func threeModels(_ scratch: Scratch, clock: TestClock) throws -> (ModelStore, UInt64) {
        let store = try scratch.store(now: clock.now)
        var size: UInt64 = 0
        for (index, name) in ["a:x", "b:x", "c:x"].enumerated() {
            size = try store.importModel(ImportRequest(weights: try scratch.model("\(index).gguf", seed: UInt64(index + 1)),
                                                       name: name)).entry.sizeBytes
            clock.advance(60)
        }
        for name in ["b:x", "a:x", "c:x"] {
            try store.useModel(named: name, app: "com.app")
            clock.advance(60)
        }
        return (store, size)
    }

    @Test func removesLeastRecentlyUsedFirst() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let clock = TestClock()
        let (store, size) = try threeModels(scratch, clock: clock)
        let plan = try store.pruneLeastRecentlyUsed(toFit: size * 2)
        #expect(plan.removals.map(\.name) == ["b:x"])
        #expect(plan.bytesReclaimed == size)
        #expect(plan.bytesAfter == size * 2)
        #expect(plan.fits)
        #expect(try store.listModels().map(\.name) == ["a:x", "c:x"])
        #expect(scratch.files(in: "blobs/sha256").count == 2)
    }

    @Test func dryRunChangesNothingAndPinnedEntriesStay() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let clock = TestClock()
        let (store, size) = try threeModels(scratch, clock: clock)
        try store.useModel(named: "b:x", app: "com.other", pin: true)
        let dry = try store.pruneLeastRecentlyUsed(toFit: 0, dryRun: true)
        #expect(dry.removals.map(\.name) == ["a:x", "c:x"])
        #expect(dry.pinned == ["b:x"])
        #expect(!dry.fits)
        #expect(dry.bytesAfter == size)
        #expect(try store.listModels().count == 3)

        let real = try store.pruneLeastRecentlyUsed(toFit: 0)
        #expect(real.removals.map(\.name) == ["a:x", "c:x"])
        #expect(try store.listModels().map(\.name) == ["b:x"])
    }

    @Test func aBlobSharedByTwoEntriesCountsOnce() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let clock = TestClock()
        let store = try scratch.store(now: clock.now)
        let file = try scratch.model("m.gguf")
        let size = try store.importModel(ImportRequest(weights: file, name: "a:x")).entry.sizeBytes
        clock.advance(1)
        _ = try store.importModel(ImportRequest(weights: file, name: "b:x"))
        #expect(try store.pruneLeastRecentlyUsed(toFit: size, dryRun: true).removals.isEmpty)
        let plan = try store.pruneLeastRecentlyUsed(toFit: size - 1, dryRun: true)
        #expect(plan.removals.map(\.name) == ["a:x", "b:x"])
        #expect(plan.removals.map(\.bytesReclaimed) == [0, size])
    }
}

@Suite struct ValidateTests {
    @Test func fastPathReadsNothingAndFullPathCatchesSilentCorruption() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x", mode: .copy)).entry
        let blob = entry.weights!.path
        #expect(try store.validate().map(\.bytesHashed) == [0])
        #expect(try store.validate(full: true).map(\.bytesHashed) == [entry.sizeBytes])

        // Flip a byte but put size and mtime back: only --full can notice.
        var times = stat()
        stat(blob, &times)
        chmod(blob, 0o644)
        let handle = try #require(FileHandle(forUpdatingAtPath: blob))
        try handle.seek(toOffset: entry.sizeBytes - 1)
        handle.write(Data([0xFF]))
        try handle.close()
        var restore = [times.st_atim, times.st_mtim]
        utimensat(AT_FDCWD, blob, &restore, 0)

        #expect(try store.validate().map(\.status) == [.ready])
        let full = try store.validate(name: "m:x", full: true)
        #expect(full.map(\.status) == [.corrupt])
        #expect(full[0].detail?.contains("expected sha256 \(entry.weights!.sha256)") == true)
        #expect(try store.model(named: "m:x").status == .corrupt)
        #expect(try store.listModels()[0].statusDetail?.contains("import the original file again") == true)
    }

    @Test func changedMtimeIsRehashedAndMissingBlobIsCorrupt() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let entry = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x")).entry
        let blob = entry.weights!.path
        // Touch only: contents still match, so it is rehashed once and trusted again.
        var now = [timespec(tv_sec: 2_000_000_000, tv_nsec: 0), timespec(tv_sec: 2_000_000_000, tv_nsec: 0)]
        utimensat(AT_FDCWD, blob, &now, 0)
        #expect(try store.validate().map(\.bytesHashed) == [entry.sizeBytes])
        #expect(try store.validate().map(\.bytesHashed) == [0])

        let saved = scratch.path + "/saved"
        try FileManager.default.moveItem(atPath: blob, toPath: saved)
        let missing = try store.validate()
        #expect(missing[0].status == .corrupt)
        #expect(missing[0].detail?.contains("missing") == true)
        try FileManager.default.moveItem(atPath: saved, toPath: blob)
        #expect(try store.validate().map(\.status) == [.ready])
        #expect(try store.model(named: "m:x").statusDetail == nil)
    }
}

@Suite struct RepairTests {
    @Test func importingTheOriginalAgainRepairsACorruptEntry() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let store = try scratch.store()
        let file = try scratch.model("m.gguf")
        let entry = try store.importModel(ImportRequest(weights: file, name: "m:x", app: "com.a", mode: .copy)).entry
        try FileManager.default.removeItem(atPath: entry.weights!.path)
        #expect(try store.validate().map(\.status) == [.corrupt])
        #expect(try store.model(named: "m:x").statusDetail?.contains("import the original file again") == true)

        let repaired = try store.importModel(ImportRequest(weights: file, name: "m:x"))
        #expect(!repaired.created)
        #expect(repaired.entry.status == .ready)
        #expect(repaired.entry.apps.map(\.app) == ["com.a"])
        #expect(try sha256sum(entry.weights!.path) == entry.weights!.sha256)
        #expect(try store.validate().map(\.bytesHashed) == [0], "the repaired blob's status is recorded")
        #expect(try store.validate(full: true).map(\.status) == [.ready])
    }
}

@Suite struct GarbageCollectionTests {
    @Test func removesOrphansAndStaleTemporariesButNotLiveOnes() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let clock = TestClock()
        clock.advance(Date().timeIntervalSince1970 - clock.now().timeIntervalSince1970)
        let store = try scratch.store(now: clock.now)
        let entry = try store.importModel(ImportRequest(weights: try scratch.model("m.gguf"), name: "m:x")).entry
        let orphan = String(repeating: "ab", count: 32)
        _ = FileManager.default.createFile(atPath: store.root + "/blobs/sha256/" + orphan, contents: Data(count: 100))
        _ = FileManager.default.createFile(atPath: store.root + "/blobs/sha256/README", contents: Data())
        _ = FileManager.default.createFile(atPath: store.root + "/tmp/stale.partial", contents: Data(count: 10))
        _ = FileManager.default.createFile(atPath: store.root + "/tmp/live.partial", contents: Data(count: 10))
        let live = try #require(tryLockFile(store.root + "/tmp/live.partial"))
        defer { close(live) }

        let young = try store.collectGarbage()
        #expect(young.removedBlobs == [orphan])
        #expect(young.removedTemporaryFiles.isEmpty)
        #expect(young.keptTemporaryFiles == 2)

        clock.advance(2 * 3600)
        let old = try store.collectGarbage()
        #expect(old.removedTemporaryFiles == ["stale.partial"])
        #expect(old.keptTemporaryFiles == 1)
        #expect(scratch.files(in: "tmp") == ["live.partial"])
        #expect(Set(scratch.files(in: "blobs/sha256")) == ["README", entry.weights!.sha256])
        #expect(try store.validate(full: true).map(\.status) == [.ready])
    }
}
