#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock over the store shared by every process and thread that uses it.
///
/// Held while blobs enter or leave `blobs/` together with their database rows, so no process
/// ever sees a row without its file or removes a file another process is about to reference.
/// It is an `flock` on a fresh descriptor per holder, which also excludes threads of one process.
struct StoreLock: Sendable {
    let path: String

    func withLock<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StoreError(.unwritable, "cannot open the store lock \(path): \(systemMessage())")
        }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StoreError(.io, "cannot lock the store at \(path): \(systemMessage())") }
        }
        return try body()
    }
}

/// Tries to take an exclusive `flock` on `path` without waiting; nil when another holder has it.
/// Writers of temporary files hold such a lock so garbage collection leaves their files alone.
func tryLockFile(_ path: String) -> Int32? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
        close(descriptor)
        return nil
    }
    return descriptor
}
