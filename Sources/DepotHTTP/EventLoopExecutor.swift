import NIOCore
import NIOPosix

/// Where a server's async handlers run.
public enum EventLoopExecutor {
    /// Makes NIO's event loops Swift Concurrency's global executor, so a request's handler runs
    /// on the thread that read it instead of hopping to the concurrency pool and back (the hops
    /// cost a small handler more than its work). Only for servers whose handlers never block
    /// long: a blocked handler stalls every connection on its loop. Call first thing in `main`,
    /// on the main thread, before any task starts; returns whether it took effect.
    @discardableResult
    public static func install() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
