import ArgumentParser
import Foundation
import ModelStore
import ModelTransfer
#if canImport(Glibc)
import Glibc
#endif

/// Shows a pull's progress: NDJSON events with `--json`, a redrawn bar on a terminal, and a
/// line per stage otherwise (logs stay readable).
final class PullDisplay: @unchecked Sendable {
    // Callbacks arrive from several connections; `lock` keeps lines whole.
    private let lock = NSLock()
    private let json: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private var lastStage: TransferProgress.Stage?
    private var lastShared = false

    init(json: Bool) { self.json = json }

    /// Runs a pull (or resume) with this display, shuts the downloader down, and exits with the
    /// error's code on failure.
    static func run(_ downloader: ModelDownloader, json: Bool,
                    _ pull: (PullDisplay) async throws(TransferError) -> ImportResult) async throws {
        let display = PullDisplay(json: json)
        let outcome: Result<ImportResult, TransferError>
        do throws(TransferError) {
            outcome = .success(try await pull(display))
        } catch {
            outcome = .failure(error)
        }
        await downloader.shutdown()
        switch outcome {
        case .success(let result): display.finish(result)
        case .failure(let error):
            Output.error(error.message)
            throw ExitCode(error.exitCode)
        }
    }

    func show(_ progress: TransferProgress) {
        lock.withLock {
            if json { return Self.printLine(Output.jsonText(progress, pretty: false)) }
            let stageChanged = progress.stage != lastStage || progress.sharedTransfer != lastShared
            lastStage = progress.stage
            lastShared = progress.sharedTransfer
            if let note = progress.message, progress.stage == .downloading || progress.stage == .resolving {
                if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                FileHandle.standardError.write(Data("\(note)\n".utf8))
            }
            if progress.stage == .downloading, terminal {
                FileHandle.standardError.write(Data(("\r" + Self.bar(progress) + "\u{1B}[K").utf8))
            } else if stageChanged {
                if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                let file = progress.file.map { " \($0.rawValue)" } ?? ""
                let shared = progress.sharedTransfer ? " (another process is downloading it; waiting for it)" : ""
                FileHandle.standardError.write(Data("\(progress.stage.rawValue)\(file)\(shared)\n".utf8))
            }
        }
    }

    func finish(_ result: ImportResult) {
        lock.withLock {
            if json {
                Self.printLine(Output.jsonText(result, pretty: false))
                return
            }
            if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            for file in result.files {
                print("\(file.role.rawValue)  \(ByteCount.format(file.size))  \(Output.shortDigest(file.sha256))  \(file.alreadyStored ? "already stored" : "downloaded")")
            }
            let trust = result.entry.isVerified ? "verified" : "UNVERIFIED (no expected SHA-256; recorded on first download)"
            print("\(result.created ? "pulled" : "already had") \(result.entry.name), \(trust)")
        }
    }

    static func bar(_ progress: TransferProgress) -> String {
        let fraction = progress.totalBytes == 0 ? 0 : min(1, Double(progress.completedBytes) / Double(progress.totalBytes))
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = progress.bytesPerSecond
        let eta = rate > 0 ? Int(Double(progress.totalBytes - min(progress.totalBytes, progress.completedBytes)) / rate) : nil
        return "pulling \(progress.file?.rawValue ?? "")  \(Int(fraction * 100))% ▕\(String(repeating: "█", count: filled))\(String(repeating: " ", count: width - filled))▏ "
            + "\(ByteCount.format(progress.completedBytes))/\(ByteCount.format(progress.totalBytes))  "
            + "\(ByteCount.format(UInt64(rate)))/s" + (eta.map { "  \(Self.duration($0))" } ?? "")
    }

    static func duration(_ seconds: Int) -> String {
        seconds >= 3600 ? "\(seconds / 3600)h\(seconds % 3600 / 60)m" : seconds >= 60 ? "\(seconds / 60)m\(seconds % 60)s" : "\(seconds)s"
    }

    static func printLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
