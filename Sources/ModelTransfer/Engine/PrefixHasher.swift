import Crypto
import Foundation
import NIOCore

/// The whole-file SHA-256 of a download, taken over its contiguous prefix as it grows. Bytes
/// that arrive right at the end of what is hashed are hashed from the connection's buffer as
/// it writes them (one connection in order needs no read at all); the rest is read back from
/// the partial file once the prefix reaches it. Only for downloads whose written bytes are
/// final: with a piece manifest a bad piece is written again, so there only checked bytes are
/// hashed, read back.
final class PrefixHasher: @unchecked Sendable {
    // Guarded by `lock`; a read-back holds it while it hashes, so the two ways never overlap.
    private var hasher = SHA256()
    private var hashed: UInt64 = 0
    private let lock = NSLock()
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PrefixHasher.readSize, alignment: 4096)

    static let readSize = 4 << 20

    deinit { buffer.deallocate() }

    /// Hashes `count` bytes of `chunk` just written at `offset`, if they continue the prefix.
    /// Never waits: while a read-back runs, the bytes are left to it.
    func absorb(_ chunk: ByteBuffer, count: Int, at offset: UInt64) {
        guard lock.try() else { return }
        defer { lock.unlock() }
        guard offset == hashed else { return }
        chunk.withUnsafeReadableBytes { bytes in hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes.prefix(count))) }
        hashed += UInt64(count)
    }

    /// Reads back and hashes what is written up to `available` and not hashed yet, a chunk at
    /// a time (the lock is let go between chunks); returns how far the hash has come.
    func catchUp(to available: UInt64, from partial: PartialFile) throws(TransferError) -> UInt64 {
        while true {
            lock.lock()
            defer { lock.unlock() }
            guard hashed < available else { return hashed }
            let count = Int(min(UInt64(Self.readSize), available - hashed))
            try partial.read(into: buffer, count: count, at: hashed)
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            hashed += UInt64(count)
        }
    }

    /// The digest, once everything is hashed.
    func digest() -> String { lock.withLock { hasher.finalize().hexString } }
}
