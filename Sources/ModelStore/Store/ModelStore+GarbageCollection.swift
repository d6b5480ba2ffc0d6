import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// What garbage collection removed.
public struct GarbageReport: Codable, Sendable {
    /// Blobs no entry referenced.
    public var removedBlobs: [String]
    /// Temporary files past the grace period that no live process held.
    public var removedTemporaryFiles: [String]
    /// Bytes freed in all.
    public var bytesFreed: UInt64
    /// Temporary files left alone: locked by a live writer or younger than the grace period.
    public var keptTemporaryFiles: Int
}

extension ModelStore {
    /// Removes blobs no entry references and stale temporary files. A temporary file is
    /// removed only when older than the grace period and not locked by the process writing it.
    public func collectGarbage(gracePeriod: TimeInterval? = nil) throws(StoreError) -> GarbageReport {
        let grace = gracePeriod ?? configuration.temporaryFileGracePeriod
        return try lock.withLock { () throws(StoreError) in
            var report = GarbageReport(removedBlobs: [], removedTemporaryFiles: [], bytesFreed: 0, keptTemporaryFiles: 0)
            let referenced = try database.write { db in
                try db.execute(sql: "DELETE FROM blob WHERE digest NOT IN (SELECT blobDigest FROM modelFile)")
                return try String.fetchSet(db, ModelFileRecord.select(ModelFileRecord.Columns.blobDigest))
            }
            for name in try directoryEntries(blobDirectory) where Self.isDigest(name) && !referenced.contains(name) {
                let path = blobDirectory + "/" + name
                report.bytesFreed += (try? FileStatus.of(path))??.size ?? 0
                unlink(path)
                report.removedBlobs.append(name)
            }
            let now = Int64(configuration.now().timeIntervalSince1970 * 1e9)
            for name in try directoryEntries(temporaryDirectory) {
                let path = temporaryDirectory + "/" + name
                guard let status = try FileStatus.of(path), status.isRegularFile else { continue }
                let age = Double(now - max(status.modifiedNanoseconds, status.changedNanoseconds)) / 1e9
                guard age >= grace, let held = tryLockFile(path) else {
                    report.keptTemporaryFiles += 1
                    continue
                }
                unlink(path)
                close(held)
                report.bytesFreed += status.size
                report.removedTemporaryFiles.append(name)
            }
            return report
        }
    }

    private func directoryEntries(_ path: String) throws(StoreError) -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
            throw StoreError(.io, "cannot list \(path): \(underlyingMessage(error))")
        }
    }

    static func isDigest(_ name: String) -> Bool {
        name.utf8.count == 64 && name.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
