import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps a desktop from sleeping while downloads run, when the app asks for it: Depot never
/// holds one by itself. On Linux it runs `systemd-inhibit … cat` from the first download that
/// starts until the last one ends; `cat` reads a pipe this process holds, so the inhibitor ends
/// when the pipe is closed, or when this process dies. Without `systemd-inhibit` it says so once.
public final class SleepInhibitor: @unchecked Sendable {
    // Guarded by `lock`.
    private var holders = 0
    private var process: Process?
    private var pipe: Pipe?
    private var warned = false
    private let lock = NSLock()
    let appID: String
    let searchPath: String
    let log: @Sendable (String) -> Void

    /// `log` receives the one line saying no inhibitor is available (default: standard error);
    /// `searchPath` is where `systemd-inhibit` is looked for (default: `$PATH`).
    public init(appID: String, searchPath: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.appID = appID
        self.searchPath = searchPath
        self.log = log
    }

    /// Whether an inhibitor process is running now.
    public var isHolding: Bool { lock.withLock { process?.isRunning ?? false } }

    func begin() {
        lock.withLock {
            holders += 1
            guard holders == 1 else { return }
            guard let tool = Self.find("systemd-inhibit", in: searchPath) else {
                if !warned { log("depot: systemd-inhibit is not available, so the system may sleep during this download") }
                warned = true
                return
            }
            let inhibit = Process()
            inhibit.executableURL = URL(fileURLWithPath: tool)
            inhibit.arguments = ["--what=sleep:idle", "--who=\(appID)", "--why=Downloading models", "--mode=block", "cat"]
            let pipe = Pipe()
            inhibit.standardInput = pipe
            inhibit.standardOutput = FileHandle.nullDevice
            inhibit.standardError = FileHandle.nullDevice
            if (try? inhibit.run()) != nil {
                process = inhibit
                self.pipe = pipe
            } else {
                log("depot: could not start \(tool); the system may sleep during this download")
            }
        }
    }

    func end() {
        lock.withLock {
            holders -= 1
            guard holders == 0, let process else { return }
            try? pipe?.fileHandleForWriting.close()
            process.waitUntilExit()
            self.process = nil
            pipe = nil
        }
    }

    static func find(_ tool: String, in path: String) -> String? {
        path.split(separator: ":").map { "\($0)/\(tool)" }.first { access($0, X_OK) == 0 }
    }
}
