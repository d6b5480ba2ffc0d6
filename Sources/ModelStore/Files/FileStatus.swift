import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The identity of a file's contents as the file system records it: if none of these
/// changed, the bytes are trusted not to have changed either (the fast validation path).
public struct FileStatus: Sendable, Equatable, Codable {
    /// Size in bytes.
    public var size: UInt64
    /// Inode number.
    public var inode: UInt64
    /// Modification time in nanoseconds since 1970.
    public var modifiedNanoseconds: Int64
    /// Status-change time in nanoseconds since 1970 (links and renames move it).
    public var changedNanoseconds: Int64
    /// Device the file lives on.
    public var device: UInt64
    /// Whether it is a regular file.
    public var isRegularFile: Bool

    /// Reads the status of `path`, or nil when nothing is there.
    static func of(_ path: String) throws(StoreError) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw StoreError(.io, "cannot inspect \(path): \(systemMessage())")
        }
        return FileStatus(info)
    }

    init(_ info: stat) {
        size = UInt64(info.st_size)
        inode = UInt64(info.st_ino)
        modifiedNanoseconds = Self.nanoseconds(info.st_mtim)
        changedNanoseconds = Self.nanoseconds(info.st_ctim)
        device = UInt64(info.st_dev)
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
    }

    /// Nanoseconds since 1970, saturating for times past the year 2262 instead of trapping.
    static func nanoseconds(_ time: timespec) -> Int64 {
        let (seconds, overflow) = Int64(time.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return time.tv_sec < 0 ? .min : .max }
        let (total, overflowSum) = seconds.addingReportingOverflow(Int64(time.tv_nsec))
        return overflowSum ? .max : total
    }

    /// Whether the contents can be assumed unchanged since `other` was taken.
    func sameContents(as other: FileStatus) -> Bool {
        size == other.size && inode == other.inode && modifiedNanoseconds == other.modifiedNanoseconds
    }
}

/// The text of the current `errno`.
func systemMessage(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Whether an errno says the file system ran out of room (or of the file-size limit).
func isOutOfSpace(_ code: Int32) -> Bool {
    code == ENOSPC || code == EDQUOT || code == EFBIG
}

/// Bytes available to this user on the file system holding `path`.
public func availableBytes(at path: String) -> UInt64? {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return nil }
    return UInt64(info.f_bavail) * UInt64(info.f_frsize)
}

/// Creates `path` and its parents, or explains why the store cannot live there.
func createDirectory(_ path: String) throws(StoreError) {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw StoreError(.unwritable, "cannot create the store directory \(path): \(underlyingMessage(error)); choose another store with --store or DEPOT_HOME")
    }
    guard access(path, W_OK | X_OK) == 0 else {
        throw StoreError(.unwritable, "the store directory \(path) is not writable (\(systemMessage())); choose another store with --store or DEPOT_HOME")
    }
}

func underlyingMessage(_ error: Error) -> String {
    let nsError = error as NSError
    if let posix = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
        return systemMessage(Int32(posix.code))
    }
    return nsError.localizedDescription
}

/// Flushes a directory so that a rename or link inside it survives a power loss.
func syncDirectory(_ path: String) {
    let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else { return }
    fsync(descriptor)
    close(descriptor)
}
