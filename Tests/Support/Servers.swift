import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests on one machine).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

public func waitForPort(_ port: Int, seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        close(fd)
        if connected { return true }
        usleep(20_000)
    }
    return false
}

/// A real nginx (Debian's package) serving `root` on an ephemeral loopback port.
public final class Nginx {
    public let root: String
    public let port: Int
    let directory: String
    private let process = Process()

    public init(root: String) throws {
        self.root = root
        directory = root + "-nginx"
        port = freePort()
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        let configuration = """
            daemon off;
            master_process off;
            worker_processes 1;
            error_log \(directory)/logs/error.log;
            pid \(directory)/nginx.pid;
            events { worker_connections 512; }
            http {
              log_format bytes '$request $status $body_bytes_sent "$http_range"';
              access_log \(directory)/logs/access.log bytes;
              client_body_temp_path \(directory)/body;
              proxy_temp_path \(directory)/proxy;
              fastcgi_temp_path \(directory)/fastcgi;
              uwsgi_temp_path \(directory)/uwsgi;
              scgi_temp_path \(directory)/scgi;
              sendfile on;
              server {
                listen 127.0.0.1:\(port);
                root \(root);
                location /slow/ { alias \(root)/; limit_rate 4m; }
                location /crawl/ { alias \(root)/; limit_rate 384k; }
                location /trickle/ { alias \(root)/; limit_rate 96k; }
              }
            }
            """
        try configuration.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        process.arguments = ["-c", directory + "/nginx.conf", "-p", directory]
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard waitForPort(port) else { throw ServerFailure(message: "nginx did not start on port \(port)") }
    }

    public func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    /// Body bytes nginx sent for requests whose line contains `name`.
    public func bytesServed(_ name: String) -> UInt64 {
        accessLog().filter { $0.contains(name) }.compactMap { line in
            line.split(separator: " ").dropFirst(4).first.flatMap { UInt64($0) }
        }.reduce(0, +)
    }

    public func requests(_ name: String) -> [String] { accessLog().filter { $0.contains(name) } }

    private func accessLog() -> [String] {
        ((try? String(contentsOfFile: directory + "/logs/access.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// SIGKILL: a child started from a test thread may inherit a mask that blocks SIGTERM.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// `Tests/Fixtures/fault_server.py`: a server that misbehaves on purpose.
public final class FaultServer {
    public struct Request: Decodable {
        public let method: String
        public let path: String
        public let host: String
        public let range: String?
        public let authorization: Bool
        public let status: Int
        public let sent: Int
    }

    public let root: String
    public let port: Int
    private let log: String
    private let process = Process()

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/fault_server.py").path

    public init(root: String) throws {
        self.root = root
        log = root + "-requests.jsonl"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, root, log]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let line = output.fileHandleForReading.availableData
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ServerFailure(message: "the fault server did not report its port")
        }
        self.port = port
    }

    public func url(_ fault: String, _ name: String) -> String { "http://127.0.0.1:\(port)/\(fault)/\(name)" }

    public var requests: [Request] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONDecoder().decode(Request.self, from: Data($0.utf8))
        }
    }

    /// SIGKILL: a child started from a test thread may inherit a mask that blocks SIGTERM.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

public struct ServerFailure: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// SHA-256 of a file by an independent implementation (coreutils), to check Depot's own.
public func sha256sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(64))
}

/// A small tmpfs the test mounts itself (the machines run tests as root), unmounted by `remove()`.
public struct SmallDisk {
    public let path: String

    public init?(megabytes: Int, readOnly: Bool = false) {
        path = "/tmp/depot-disk-\(getpid())-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let options = "size=\(megabytes)m" + (readOnly ? ",ro" : "")
        guard mount("tmpfs", path, "tmpfs", 0, options) == 0 else { return nil }
    }

    public func remove() {
        umount(path)
        rmdir(path)
    }

    public static var available: Bool {
        guard let probe = SmallDisk(megabytes: 1) else { return false }
        probe.remove()
        return true
    }
}
