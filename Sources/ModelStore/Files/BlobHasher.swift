import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// Streams files through SHA-256, optionally copying them at the same time, in one pass.
enum BlobHasher {
    /// Large reads keep the hash (with the CPU's SHA instructions) the bottleneck, not syscalls.
    static let chunkSize = 4 << 20

    /// SHA-256 of the file at `path`, as lowercase hex.
    static func hash(path: String) throws(StoreError) -> String {
        let input = try openForReading(path)
        defer { close(input) }
        var hasher = SHA256()
        try stream(from: input, path: path) { chunk throws(StoreError) in hasher.update(bufferPointer: chunk) }
        return hasher.finalize().hexString
    }

    /// Copies `path` into the already-open `output` while hashing, then flushes it to disk.
    /// Returns the SHA-256 as lowercase hex. `outputPath` is only used in messages.
    static func copy(path: String, to output: Int32, outputPath: String) throws(StoreError) -> String {
        let input = try openForReading(path)
        defer { close(input) }
        var hasher = SHA256()
        try stream(from: input, path: path) { chunk throws(StoreError) in
            hasher.update(bufferPointer: chunk)
            try writeAll(chunk, to: output, path: outputPath)
        }
        guard fsync(output) == 0 else {
            let code = errno
            throw StoreError(isOutOfSpace(code) ? .diskFull : .io, "cannot flush \(outputPath): \(systemMessage(code))")
        }
        return hasher.finalize().hexString
    }

    private static func openForReading(_ path: String) throws(StoreError) -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError(.invalidInput, "cannot read \(path): \(systemMessage())") }
        posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        return descriptor
    }

    private static func stream(from input: Int32, path: String,
                               _ consume: (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let count = read(input, buffer.baseAddress, chunkSize)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw StoreError(.io, "cannot read \(path): \(systemMessage())") }
            if count == 0 { return }
            try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to output: Int32, path: String) throws(StoreError) {
        var written = 0
        while written < bytes.count {
            let count = write(output, bytes.baseAddress! + written, bytes.count - written)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let code = errno
                if isOutOfSpace(code) {
                    throw StoreError(.diskFull, "the disk holding \(path) is full (\(systemMessage(code))); free some space or use a store on another disk (--store)")
                }
                throw StoreError(.io, "cannot write \(path): \(systemMessage(code))")
            }
            written += count
        }
    }
}

extension Digest {
    /// The digest as lowercase hex, the form blobs are named by.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
