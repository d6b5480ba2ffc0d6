import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Sends datagrams to the discovery group on the loopback interface, as a forger on the LAN would.
final class MulticastSender {
    let socket: Int32
    var address = sockaddr_in()

    init(port: UInt16, group: String = "239.255.42.99") throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
        guard socket >= 0 else { throw DepotFailure(message: "no UDP socket") }
        var interface = in_addr()
        inet_pton(AF_INET, "127.0.0.1", &interface)
        setsockopt(socket, Int32(IPPROTO_IP), IP_MULTICAST_IF, &interface, socklen_t(MemoryLayout<in_addr>.size))
        var loop: UInt8 = 1
        setsockopt(socket, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, &loop, 1)
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, group, &address.sin_addr)
    }

    deinit { close(socket) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}

/// A raw TCP connection to 127.0.0.1, for clients that misbehave.
final class TCPConnection {
    let socket: Int32

    init?(port: Int) {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(socket)
            return nil
        }
    }

    deinit { close(socket) }

    func write(_ text: String) { _ = text.withCString { Glibc.send(socket, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }

    /// Sends `text` and returns the status line of the answer (nil when the server closed the
    /// connection or said nothing within `timeout`).
    func exchange(_ text: String, timeout: Double = 5) -> String? {
        write(text)
        var received: [UInt8] = []
        var pollDescriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, !received.contains(0x0A) {
            guard poll(&pollDescriptor, 1, 200) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            received += buffer[0..<count]
        }
        return String(decoding: received.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
    }

    /// Sends `text` (pipelined requests, say) and reads `count` answers, each by its
    /// `Content-Length`: their statuses and bodies, in the order they came (fewer when the
    /// server closed the connection or went quiet for `timeout`).
    func exchange(_ text: String, answers count: Int, timeout: Double = 5) -> [(status: Int, body: String)] {
        write(text)
        var received: [UInt8] = [], answers: [(status: Int, body: String)] = []
        var pollDescriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while answers.count < count {
            if let (answer, length) = Self.firstAnswer(in: received) {
                answers.append(answer)
                received.removeFirst(length)
                continue
            }
            guard Date() < deadline else { break }
            guard poll(&pollDescriptor, 1, 200) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let read = recv(socket, &buffer, buffer.count, 0)
            guard read > 0 else { break }
            received += buffer[0..<read]
        }
        return answers
    }

    /// The first complete answer in `bytes` and how many bytes it took.
    static func firstAnswer(in bytes: [UInt8]) -> ((status: Int, body: String), Int)? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0..<$0 + 4].elementsEqual(separator) }) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased().components(separatedBy: "\r\n")
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        let length = head.lazy.compactMap { $0.hasPrefix("content-length:") ? Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) : nil }.first ?? 0
        guard bytes.count >= end + 4 + length else { return nil }
        return ((status, String(decoding: bytes[(end + 4)..<(end + 4 + length)], as: UTF8.self)), end + 4 + length)
    }

    /// Whether the server closed the connection (a read gives end of file or a reset) in time.
    func waitForClose(timeout: Double) -> Bool {
        var pollDescriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard poll(&pollDescriptor, 1, 200) > 0 else { continue }
            var byte: UInt8 = 0
            let count = recv(socket, &byte, 1, 0)
            if count <= 0 { return true }
        }
        return false
    }
}
