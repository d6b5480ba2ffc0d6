import DepotTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `depot serve` (or `depot coordinator`) on an ephemeral loopback port, and requests to it
/// through curl.
final class AgentProcess {
    let running: DepotProcess.Running
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    /// `descriptorLimit`: run it under `ulimit -n` of that many (through prlimit).
    init(_ workspace: Workspace, command: String = "serve", arguments: [String] = [], environment: [String: String] = [:],
         descriptorLimit: Int? = nil) throws {
        let arguments = [command, "--port", "0"] + arguments + ["--store", workspace.depot.store]
        if let descriptorLimit {
            running = try DepotProcess.Running(["--nofile=\(descriptorLimit):\(descriptorLimit)", DepotProcess.binary] + arguments,
                                               binary: "/usr/bin/prlimit", environment: environment)
        } else {
            running = try DepotProcess.Running(arguments, environment: environment)
        }
        let deadline = Date().addingTimeInterval(30)
        while true {
            let text = (try? String(contentsOfFile: running.stdoutPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }),
               let port = Int(line.split(separator: ":").last ?? "") {
                self.port = port
                return
            }
            guard running.process.isRunning, Date() < deadline else {
                kill(running.process.processIdentifier, SIGKILL)
                let outcome = running.wait()
                throw DepotFailure(message: "depot \(command) did not start (\(outcome.status)): \(outcome.stderr)")
            }
            usleep(20_000)
        }
    }

    /// SIGTERM, then the exit status and output.
    func terminate() -> DepotProcess.Outcome {
        kill(running.process.processIdentifier, SIGTERM)
        return running.wait()
    }

    func stop() {
        if running.process.isRunning { kill(running.process.processIdentifier, SIGKILL) }
        _ = running.wait()
    }

    struct Reply {
        var status: Int
        var body: String
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
    }

    func request(_ method: String, _ path: String, _ body: String? = nil, headers: [String] = [], maxTime: Double = 60) throws -> Reply {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-N", "-X", method, "--max-time", "\(maxTime)", "-w", "\n%{http_code}", base + path]
        if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
        for header in headers { arguments += ["-H", header] }
        process.arguments = arguments
        let out = try OutputFile()
        process.standardOutput = out.handle
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = out.contents()
        let split = text.range(of: "\n", options: .backwards)
        let status = split.map { Int(text[$0.upperBound...]) ?? 0 } ?? 0
        return Reply(status: status, body: split.map { String(text[..<$0.lowerBound]) } ?? text)
    }

    func get(_ path: String, headers: [String] = []) throws -> Reply { try request("GET", path, headers: headers) }
    func post(_ path: String, _ body: String, headers: [String] = []) throws -> Reply { try request("POST", path, body, headers: headers) }

    /// Polls `path` until `condition` holds on its JSON.
    func wait(for path: String, timeout: Double = 60, _ condition: ([String: Any]) -> Bool) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let reply = try get(path)
            if condition(reply.object) { return reply.object }
            guard Date() < deadline else { throw DepotFailure(message: "\(path) never matched: \(reply.body)") }
            usleep(100_000)
        }
    }
}
