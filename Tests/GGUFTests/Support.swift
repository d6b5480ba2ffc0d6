#if canImport(Glibc)
import Glibc
#endif

func unlinkFile(_ path: String) { unlink(path) }
