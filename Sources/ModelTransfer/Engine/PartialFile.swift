import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The file a download is written into, under the store's `tmp/`, preallocated to its final
/// size once the first bytes arrive and written at offsets by several connections. Holding it open holds an `flock`, so
/// garbage collection and other processes leave it alone while it is being written.
final class PartialFile: @unchecked Sendable {
    // The descriptor is only used for pwrite/pread/fsync, which are safe from any thread.
    let path: String
    let descriptor: Int32

    /// Opens and locks `path`, creating it for a new job; waits while another process holds the
    /// lock. Nil when an existing job's file is gone (another process finished it meanwhile).
    static func open(path: String, create: Bool,
                     whileWaiting: @Sendable () -> Void = {}) async throws(TransferError) -> PartialFile? {
        let descriptor = Glibc.open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
        guard descriptor >= 0 else {
            if !create && errno == ENOENT { return nil }
            throw TransferError(.io, "cannot open the partial file \(path): \(String(cString: strerror(errno)))")
        }
        return try await PartialFile(path: path, descriptor: descriptor, whileWaiting: whileWaiting)
    }

    private init(path: String, descriptor: Int32, whileWaiting: @Sendable () -> Void) async throws(TransferError) {
        self.path = path
        self.descriptor = descriptor
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            whileWaiting()
            // Another depot process is fetching this very file; wait for it rather than race it.
            do { try await Task.sleep(for: .milliseconds(200)) } catch {
                // deinit closes the descriptor.
                throw TransferError(.cancelled, "cancelled while waiting for another download of the same file")
            }
        }
    }

    deinit { close(descriptor) }

    var currentSize: UInt64 {
        var info = stat()
        return fstat(descriptor, &info) == 0 ? UInt64(info.st_size) : 0
    }

    // Guarded by `lock`: the size to reserve when the first bytes arrive.
    private var pendingReservation: UInt64?
    private let lock = NSLock()

    /// Reserves `size` bytes when the first bytes are written: a server that claims a size
    /// and then sends nothing (or an error) leaves nothing allocated behind.
    func reserveOnFirstWrite(_ size: UInt64) {
        lock.withLock { pendingReservation = currentSize >= size ? nil : size }
    }

    /// Reserves `size` bytes on disk, so a full disk shows now rather than hours in.
    func reserve(_ size: UInt64) throws(TransferError) {
        let result = posix_fallocate(descriptor, 0, off_t(size))
        if result == 0 { return }
        if result == ENOSPC || result == EDQUOT || result == EFBIG {
            throw TransferError(.diskFull, "not enough free space for \(size) bytes in \(URL(fileURLWithPath: path).deletingLastPathComponent().path); free some space or use a store on another disk")
        }
        // File systems without fallocate: set the size; a full disk then shows on write.
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            throw TransferError(.io, "cannot size the partial file \(path): \(String(cString: strerror(errno)))")
        }
    }

    func write(_ buffer: ByteBuffer, count: Int, at offset: UInt64) throws(TransferError) {
        let reservation = lock.withLock { () -> UInt64? in
            defer { pendingReservation = nil }
            return pendingReservation
        }
        if let reservation { try reserve(reservation) }
        let result: Int32 = buffer.withUnsafeReadableBytes { bytes in
            var done = 0
            while done < count {
                let n = pwrite(descriptor, bytes.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return errno }
                done += n
            }
            return 0
        }
        guard result == 0 else {
            if result == ENOSPC || result == EDQUOT || result == EFBIG {
                throw TransferError(.diskFull, "the disk filled up while downloading into \(path); the partial file is kept, free some space and pull again to resume")
            }
            throw TransferError(.io, "cannot write \(path): \(String(cString: strerror(result)))")
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, count: Int, at offset: UInt64) throws(TransferError) {
        var done = 0
        while done < count {
            let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TransferError(.io, "cannot read back \(path) at \(offset + UInt64(done))") }
            done += n
        }
    }

    /// Asks the kernel to start writing dirty pages back now, without waiting for them.
    func startWriteback() { _ = syncFileRange?(descriptor, 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */) }

    /// Flushes written bytes to disk before the journal says they are there.
    func sync() throws(TransferError) {
        guard fdatasync(descriptor) == 0 else {
            throw TransferError(.io, "cannot flush \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Linux's `sync_file_range`, which Swift's Glibc module does not declare (it needs
/// _GNU_SOURCE); nil where the C library has none.
private let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "sync_file_range") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
}()
