import Foundation
import NIOCore

/// What an agent that seeds (`depot serve --seed`) gives its peers: verified blobs, to at most
/// `maximumUploads` peers at once, at most `bytesPerSecond` over all of them.
public struct SeedPolicy: Sendable, Equatable {
    public var maximumUploads = 4
    /// Nil: as fast as the link goes.
    public var bytesPerSecond: UInt64?

    public init(maximumUploads: Int = 4, bytesPerSecond: UInt64? = nil) {
        self.maximumUploads = maximumUploads
        self.bytesPerSecond = bytesPerSecond
    }

    /// Whether an address is on this machine or a private network: the peers an agent serves
    /// without a coordinator's ticket (loopback, RFC 1918, link-local, IPv6 unique-local).
    static func isLocalNetwork(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let address)?:
            let bytes = withUnsafeBytes(of: address.address.sin_addr.s_addr) { Array($0) }
            return bytes[0] == 127 || bytes[0] == 10 || (bytes[0] == 172 && (16...31).contains(bytes[1]))
                || (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 169 && bytes[1] == 254)
        case .v6(let address)?:
            let bytes = withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {  // IPv4-mapped
                return isLocalNetwork(try? SocketAddress(ipAddress: bytes[12..<16].map(String.init).joined(separator: "."), port: 0))
            }
            return bytes == Array(repeating: 0, count: 15) + [1] || bytes[0] & 0xFE == 0xFC || (bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80)
        default:
            return false
        }
    }
}

/// The uploads in progress and the shared rate: a slot per upload, and each chunk waits for
/// its share of the byte rate (a token bucket holding at most `burst` bytes).
final class UploadSlots: @unchecked Sendable {
    let policy: SeedPolicy
    // Guarded by `lock`.
    private var active = 0
    /// When the bytes promised so far will have been sent at the allowed rate.
    private var nextFree = ContinuousClock.now
    private var uploads = 0
    private var bytesSent: UInt64 = 0
    private var refused: [String: Int] = [:]
    private let lock = NSLock()
    static let burst: UInt64 = 256 << 10

    init(policy: SeedPolicy) { self.policy = policy }

    func acquire() -> Bool {
        lock.withLock {
            guard active < policy.maximumUploads else { return false }
            active += 1
            uploads += 1
            return true
        }
    }

    func release() { lock.withLock { active -= 1 } }

    func refuse(_ reason: String) { lock.withLock { refused[reason, default: 0] += 1 } }

    /// Waits until `count` more bytes may go out, then counts them.
    func send(_ count: Int) async throws {
        let wait: Duration = lock.withLock {
            bytesSent += UInt64(count)
            guard let rate = policy.bytesPerSecond, rate > 0 else { return .zero }
            let now = ContinuousClock.now
            let burstTime = Duration.seconds(Double(Self.burst) / Double(rate))
            nextFree = max(nextFree, now - burstTime) + .seconds(Double(count) / Double(rate))
            return max(.zero, nextFree - now - burstTime)
        }
        if wait > .zero { try await Task.sleep(for: wait) }
    }

    /// Uploads in progress and started, and bytes sent, as things stand.
    var counts: (active: Int, started: Int, bytesSent: UInt64) { lock.withLock { (active, uploads, bytesSent) } }

    /// The `/metrics` lines for seeding.
    func renderMetrics() -> String {
        lock.withLock {
            var lines = [
                "# HELP depot_seed_uploads_total Blob uploads to peers started.", "# TYPE depot_seed_uploads_total counter",
                "depot_seed_uploads_total \(uploads)",
                "# HELP depot_seed_uploads_active Blob uploads to peers in progress.", "# TYPE depot_seed_uploads_active gauge",
                "depot_seed_uploads_active \(active)",
                "# HELP depot_seed_bytes_total Bytes sent to peers.", "# TYPE depot_seed_bytes_total counter",
                "depot_seed_bytes_total \(bytesSent)",
                "# HELP depot_seed_refused_total Peer requests refused, by reason.", "# TYPE depot_seed_refused_total counter",
            ]
            for reason in ["busy", "notHeld", "notVerified", "notLocal", "badTicket", "badReceipt", "receiptsBehind", "tooLarge"] { lines.append("depot_seed_refused_total{reason=\"\(reason)\"} \(refused[reason, default: 0])") }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}
