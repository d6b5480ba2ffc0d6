import ArgumentParser
import Foundation
import ModelStore
import ModelTransfer

extension Depot {
    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, pause, resume or cancel download jobs.",
            discussion: "A job is kept until it finishes or is cancelled; pulling the same source again also resumes it.",
            subcommands: [ListJobs.self, Pause.self, Resume.self, Cancel.self], defaultSubcommand: ListJobs.self)
    }

    struct ListJobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List running, paused, interrupted and failed downloads.")
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let jobs = try await withDownloader(options) { downloader throws(TransferError) in try downloader.jobs() }
            options.emit(jobs) {
                guard !jobs.isEmpty else { return print("No downloads in progress.") }
                Output.table(["ID", "NAME", "SOURCE", "DONE", "SIZE", "STATE", "UPDATED"], jobs.map { job in
                    let percent = job.totalBytes == 0 ? 0 : Int(Double(job.completedBytes) / Double(job.totalBytes) * 100)
                    return [String(job.id.prefix(8)), job.name ?? "-", job.source, "\(percent)%", ByteCount.format(job.totalBytes),
                            job.state.rawValue, Output.age(job.updatedAt)]
                })
                for job in jobs where job.state == .failed { print("\(job.id.prefix(8)): \(job.message ?? "failed")") }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a download and keep its partial files.")
        @Argument(help: "Job id (or its first 8 or more characters).") var id: String
        @OptionGroup var options: StoreOptions

        func run() async throws {
            try await withDownloader(options) { downloader throws(TransferError) in try downloader.pause(downloader.job(matching: id).id) }
            print("paused \(id); `depot jobs resume \(id)` continues it")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Continue a paused, interrupted or failed download here, in the foreground.")
        @Argument(help: "Job id (or its first 8 or more characters).") var id: String
        @Option(help: "Bearer token for the source's host, if it needs one (tokens are never stored).") var token: String?
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let downloader = try openDownloader(options)
            try await PullDisplay.run(downloader, json: options.json) { display throws(TransferError) in
                try await downloader.resume(downloader.job(matching: id).id, token: token) { display.show($0) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a download and delete everything it downloaded.")
        @Argument(help: "Job id (or its first 8 or more characters).") var id: String
        @OptionGroup var options: StoreOptions

        func run() async throws {
            try await withDownloader(options) { downloader throws(TransferError) in try await downloader.cancel(downloader.job(matching: id).id) }
            print("cancelled \(id); nothing of it is kept")
        }
    }
}

private func openDownloader(_ options: StoreOptions) throws -> ModelDownloader {
    let store = try options.openStore()
    do throws(TransferError) {
        return try ModelDownloader(store: store)
    } catch {
        Output.error(error.message)
        throw ExitCode(error.exitCode)
    }
}

/// Runs `body` with a downloader over the store, shuts it down, and exits with the error's code.
private func withDownloader<T>(_ options: StoreOptions,
                               _ body: (ModelDownloader) async throws(TransferError) -> T) async throws -> T {
    let downloader = try openDownloader(options)
    let outcome: Result<T, TransferError>
    do throws(TransferError) { outcome = .success(try await body(downloader)) } catch { outcome = .failure(error) }
    await downloader.shutdown()
    switch outcome {
    case .success(let value): return value
    case .failure(let error):
        Output.error(error.message)
        throw ExitCode(error.exitCode)
    }
}
