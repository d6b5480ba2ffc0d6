import Foundation
import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// A source file checked as GGUF, before any bytes move.
struct InspectedFile: Sendable {
    let role: FileRole
    let shardIndex: Int
    /// The path as given, for messages.
    let path: String
    /// The path with symlinks resolved: what is linked, copied or moved, so a blob is never a symlink.
    let realPath: String
    let status: FileStatus
    let facts: GGUFFacts
    let origin: FileOrigin
    let hashSource: HashSource

    /// Parses the header and checks the file is what its role says; nothing is written.
    init(path: String, role: FileRole, shardIndex: Int = 0, origin: FileOrigin? = nil,
         hashSource: HashSource = .imported) throws(StoreError) {
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
        realPath = Self.resolve(path)
        self.origin = origin ?? FileOrigin(sourceURL: URL(fileURLWithPath: path).absoluteString,
                                           originalFilename: URL(fileURLWithPath: path).lastPathComponent)
        self.hashSource = hashSource
        self.status = status
        self.facts = facts
    }
}

extension InspectedFile {
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
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
    /// False for files another component owns (a download's partial file survives a failed record).
    let ownsTemporaryFile: Bool

    var size: UInt64 { source.status.size }

    /// Links (same file system) or copies `source` into `temporaryDirectory` and hashes it.
    init(_ source: InspectedFile, mode: ImportMode, temporaryDirectory: String) throws(StoreError) {
        let temporaryPath = temporaryDirectory + "/import-\(getpid())-\(UUID().uuidString).partial"
        var descriptor: Int32 = -1
        var linked = false
        if mode != .copy, linkat(AT_FDCWD, source.realPath, AT_FDCWD, temporaryPath, AT_SYMLINK_FOLLOW) == 0 {
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
        // The lock tells gc the file is live. A linked file shares its inode, and so its locks,
        // with the original: if another program holds one there, the grace period protects it.
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 && errno == EINTR {}
        do throws(StoreError) {
            var opened = stat()
            guard fstat(descriptor, &opened) == 0, !linked || (UInt64(opened.st_dev) == source.status.device
                                                               && UInt64(opened.st_ino) == source.status.inode) else {
                throw StoreError(.sourceChanged, "\(source.path) was replaced while it was being imported; try again")
            }
            digest = linked
                ? try BlobHasher.hash(path: temporaryPath)
                : try BlobHasher.copy(path: source.realPath, to: descriptor, outputPath: temporaryPath)
            guard let after = try FileStatus.of(source.realPath), after.sameContents(as: source.status) else {
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
        ownsTemporaryFile = true
    }

    /// A file a downloader wrote into `tmp/` and hashed as it arrived.
    init(downloaded source: InspectedFile, digest: String) {
        self.source = source
        temporaryPath = source.path
        descriptor = -1
        self.digest = digest
        method = .downloaded
        ownsTemporaryFile = false
    }

    /// A source that is already the blob `digest`: nothing to link, copy or hash.
    init(alreadyStored source: InspectedFile, digest: String, mode: ImportMode) {
        self.source = source
        temporaryPath = nil
        descriptor = -1
        self.digest = digest
        method = mode == .move ? .moved : .hardlinked
        ownsTemporaryFile = false
    }

    /// Removes the temporary file if it is still there and releases its lock.
    func discard() {
        guard let temporaryPath, ownsTemporaryFile else { return }
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
