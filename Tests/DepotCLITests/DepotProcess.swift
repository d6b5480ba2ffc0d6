import Foundation
import GGUF
import ModelStore
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `depot` binary, as a user or a script would.
struct DepotProcess {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The binary sits next to the test bundle in the build directory.
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["DEPOT_BINARY"] { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("depot").path
    }()

    let store: String

    /// Runs `depot ARGS --store STORE` and collects its output.
    @discardableResult
    func run(_ arguments: [String], environment: [String: String] = [:], useStore: Bool = true) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments + (useStore ? ["--store", store] : [])
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = try OutputFile(), err = try OutputFile()
        process.standardOutput = out.handle
        process.standardError = err.handle
        try process.run()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: out.contents(), stderr: err.contents())
    }

    /// A `depot` process running in the background.
    final class Running {
        let process = Process()
        private let out: OutputFile, err: OutputFile
        var stdoutPath: String { out.path }

        init(_ arguments: [String], binary: String = DepotProcess.binary, environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            out = try OutputFile()
            err = try OutputFile()
            process.standardOutput = out.handle
            process.standardError = err.handle
            try process.run()
        }

        func wait() -> Outcome {
            process.waitUntilExit()
            return Outcome(status: process.terminationStatus, stdout: out.contents(), stderr: err.contents())
        }
    }

    /// Starts `depot ARGS --store STORE` without waiting for it.
    func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        try Running(arguments + ["--store", store], environment: environment)
    }

    /// Runs a command that must succeed and decodes its `--json` output.
    func json<T: Decodable>(_ type: T.Type, _ arguments: [String]) throws -> T {
        let outcome = try run(arguments + ["--json"])
        guard outcome.status == 0 else {
            throw DepotFailure(message: "depot \(arguments) exited \(outcome.status): \(outcome.stderr)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: Data(outcome.stdout.utf8))
    }
}

struct DepotFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A temporary file to collect a child's output without pipe-buffer deadlocks.
final class OutputFile {
    let path = "/tmp/depot-out-\(UUID().uuidString)"
    let handle: FileHandle

    init() throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    func contents() -> String {
        try? handle.close()
        defer { unlink(path) }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

/// A fresh directory for one test.
struct Workspace {
    let path = "/tmp/depot-e2e-\(getpid())-\(UUID().uuidString.prefix(8))"

    init() { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

    func remove() { _ = try? FileManager.default.removeItem(atPath: path) }

    var depot: DepotProcess { DepotProcess(store: path + "/store") }

    func model(_ name: String, seed: UInt64 = 1) throws -> String {
        try TinyModels.llama(seed: seed).write(to: path + "/" + name)
        return path + "/" + name
    }

    /// A GGUF file of about `megabytes` MB: one large int8 tensor.
    func bigModel(_ name: String, megabytes: Int) throws -> String {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        let rows = UInt64(megabytes) * 1024
        try writer.addTensor(name: "w", dimensions: [1024, rows], type: .i8,
                             data: (0..<Int(rows) * 1024).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
        try writer.write(to: path + "/" + name)
        return path + "/" + name
    }

    func files(in relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/store/" + relative)) ?? []).sorted()
    }
}

/// `.build/test-artifacts`, made if need be: screenshots and other files a test keeps for people.
func testArtifacts() throws -> String {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/test-artifacts").standardized.path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
