import Foundation
import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// A source file checked as GGUF, before any bytes move.
struct InspectedFile: Sendable {
    let role: FileRole
    let shardIndex: Int
    let path: String
    let status: FileStatus
    let facts: GGUFFacts

    /// Parses the header and checks the file is what its role says; nothing is written.
    init(path: String, role: FileRole, shardIndex: Int = 0) throws(StoreError) {
        guard let status = try FileStatus.of(path) else {
            throw StoreError(.invalidInput, "\(path) does not exist")
        }
        guard status.isRegularFile else { throw StoreError(.invalidInput, "\(path) is not a regular file") }
        let facts: GGUFFacts
        do {
            facts = try GGUFReader.read(path: path).facts
        } catch {
            throw StoreError(.notGGUF, "\(path) is not a usable GGUF file: \(error); nothing was imported")
        }
        if role == .projector && !facts.isProjector {
            throw StoreError(.invalidInput, "\(path) is a \(facts.architecture ?? "language") model, not a multimodal projector; pass the projector (mmproj) file with --projector")
        }
        if role != .projector && facts.isProjector {
            throw StoreError(.invalidInput, "\(path) is a multimodal projector, not model weights; import it with --projector next to its model's weights")
        }
        self.role = role
        self.shardIndex = shardIndex
        self.path = path
        self.status = status
        self.facts = facts
    }
}

/// A file hardlinked or copied into `tmp/` and hashed. It holds an `flock` on its temporary
/// file until placed or discarded, so garbage collection never removes it mid-import.
/// A source that already is a stored blob (same inode) needs no temporary file at all.
struct StagedFile: Sendable {
    let source: InspectedFile
    let temporaryPath: String?
    let descriptor: Int32
    let digest: String
    let method: ImportMethod

    var size: UInt64 { source.status.size }

    /// Links (same file system) or copies `source` into `temporaryDirectory` and hashes it.
    init(_ source: InspectedFile, mode: ImportMode, temporaryDirectory: String) throws(StoreError) {
        let temporaryPath = temporaryDirectory + "/import-\(getpid())-\(UUID().uuidString).partial"
        var descriptor: Int32 = -1
        var linked = false
        if mode != .copy, link(source.path, temporaryPath) == 0 {
            linked = true
            descriptor = open(temporaryPath, O_RDONLY | O_CLOEXEC)
        } else {
            try Self.checkSpace(for: source, in: temporaryDirectory)
            descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        guard descriptor >= 0 else {
            let message = systemMessage()
            unlink(temporaryPath)
            throw StoreError(.unwritable, "cannot create a temporary file in \(temporaryDirectory): \(message)")
        }
        flock(descriptor, LOCK_EX)
        do throws(StoreError) {
            digest = linked
                ? try BlobHasher.hash(path: temporaryPath)
                : try BlobHasher.copy(path: source.path, to: descriptor, outputPath: temporaryPath)
            guard let after = try FileStatus.of(source.path), after.sameContents(as: source.status) else {
                throw StoreError(.sourceChanged, "\(source.path) changed while it was being imported; try again once nothing writes to it")
            }
        } catch {
            close(descriptor)
            unlink(temporaryPath)
            throw error
        }
        self.source = source
        self.temporaryPath = temporaryPath
        self.descriptor = descriptor
        method = !linked ? .copied : mode == .move ? .moved : .hardlinked
    }

    /// A source that is already the blob `digest`: nothing to link, copy or hash.
    init(alreadyStored source: InspectedFile, digest: String, mode: ImportMode) {
        self.source = source
        temporaryPath = nil
        descriptor = -1
        self.digest = digest
        method = mode == .move ? .moved : .hardlinked
    }

    /// Removes the temporary file if it is still there and releases its lock.
    func discard() {
        guard let temporaryPath else { return }
        unlink(temporaryPath)
        close(descriptor)
    }

    private static func checkSpace(for source: InspectedFile, in directory: String) throws(StoreError) {
        // Leave a little room for the database and its journal.
        let needed = source.status.size + (1 << 20)
        if let available = availableBytes(at: directory), available < needed {
            throw StoreError(.diskFull, "not enough space to import \(source.path): it needs \(ByteCount.format(needed)), the store's disk has \(ByteCount.format(available)) free; free some space or use a store on another disk (--store)")
        }
    }
}
