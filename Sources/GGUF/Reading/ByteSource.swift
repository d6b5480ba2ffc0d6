#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random-access bytes of known size: a file on disk or a buffer in memory.
protocol ByteSource {
    var size: UInt64 { get }
    /// Reads exactly `count` bytes at `offset`; the caller has checked the range lies inside `size`.
    func read(at offset: UInt64, count: Int) throws(GGUFError) -> [UInt8]
}

struct MemoryByteSource: ByteSource {
    let bytes: [UInt8]
    var size: UInt64 { UInt64(bytes.count) }

    func read(at offset: UInt64, count: Int) throws(GGUFError) -> [UInt8] {
        Array(bytes[Int(offset)..<Int(offset) + count])
    }
}

/// Reads a file with `pread`, so only the requested regions are ever loaded.
final class FileByteSource: ByteSource {
    let size: UInt64
    private let descriptor: Int32
    private let path: String

    init(path: String) throws(GGUFError) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw GGUFError(.io, offset: nil, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw GGUFError(.io, offset: nil, "\(path) is not a regular file")
        }
        size = UInt64(info.st_size)
    }

    deinit { close(descriptor) }

    func read(at offset: UInt64, count: Int) throws(GGUFError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw GGUFError(.io, offset: offset + UInt64(done), "read failed in \(path): file shrank or I/O error")
            }
            done += n
        }
        return buffer
    }
}
