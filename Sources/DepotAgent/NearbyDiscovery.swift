import DepotHTTP
import Foundation
import MeshProtocol
import ModelRuntime
#if canImport(Glibc)
import Glibc
#endif

/// Nearby discovery on the LAN, the Linux counterpart of the BLE layer: every agent announces
/// its `NearbyRecord` to a UDP multicast group every interval and at once when its model or
/// load state changes; listeners keep a table of peers and drop one after three missed
/// announcements. Records are signed by the announcing agent's key (its id is the key's), so
/// nobody announces for another agent; an older record of a known agent (a replay) is dropped,
/// and the table is capped: while it is full of live peers, newcomers wait.
public final class NearbyDiscovery: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var group = "239.255.42.99"
        public var port: UInt16 = 43020
        /// The interface (by its IPv4 address) to announce and listen on.
        public var interface = "0.0.0.0"
        public var interval: Duration = .seconds(5)
        /// Peers kept at most (the table is fed by unauthenticated UDP).
        public var maximumPeers = 256
        public init() {}
    }

    public struct Peer: Codable, Sendable {
        public var agentId: String
        public var activeModel: String?
        public var paramSize: Double
        public var currentLoad: Int
        public var freeMemoryMB: UInt32
        public var address: String
        public var lastSeen: Date
        /// Announcements this peer made while loading a model (routers skipped it then).
        public var loadingAnnouncements: Int
        /// Hex prefixes of the SHA-256 of the blobs the peer seeds to the LAN.
        public var seeds: [String]
        public var available: Bool { currentLoad >= 0 }
        var record: NearbyRecord?

        enum CodingKeys: String, CodingKey {
            case agentId, activeModel, paramSize, currentLoad, freeMemoryMB, address, lastSeen, loadingAnnouncements, seeds
        }
    }

    /// Records heard and why some were not taken (`GET /mesh/peers/stats`).
    public struct Stats: Codable, Sendable {
        public var accepted = 0
        /// Malformed, or not signed by the key they carry.
        public var invalid = 0
        /// Not newer than the last record taken from that agent.
        public var replayed = 0
        /// A new agent while the table was full of live peers.
        public var tableFull = 0
        public var peers = 0
    }
    let configuration: Configuration
    let ownID: String
    // Guarded by `lock`.
    private var peers: [String: Peer] = [:]
    private var counts = Stats()
    private var stopped = false
    private let lock = NSLock()
    private var receiver: Int32 = -1
    private var sender: Int32 = -1

    init(configuration: Configuration, ownID: String) throws {
        self.configuration = configuration
        self.ownID = ownID
        receiver = try Self.openReceiver(configuration)
        sender = try Self.openSender(configuration)
        let thread = Thread { [weak self] in self?.listen() }
        thread.name = "depot.nearby"
        thread.start()
    }

    deinit {
        close(receiver)
        close(sender)
    }

    func stop() { lock.withLock { stopped = true } }

    /// Peers heard from within three intervals, most available first.
    public func currentPeers(at now: Date = Date()) -> [Peer] {
        let expiry = 3 * configuration.interval.seconds
        return lock.withLock { Array(peers.values) }
            .filter { now.timeIntervalSince($0.lastSeen) <= expiry }
            .sorted { ($0.available ? 0 : 1, $0.currentLoad, $0.agentId) < ($1.available ? 0 : 1, $1.currentLoad, $1.agentId) }
    }

    public var stats: Stats {
        lock.withLock {
            var stats = counts
            stats.peers = peers.count
            return stats
        }
    }

    /// Nearby peers that say they seed the blob with this SHA-256, least loaded first.
    public func seeders(of sha256: String) -> [Peer] {
        currentPeers().filter { $0.record?.seeds(sha256: sha256) == true }
    }

    /// The best nearby peer for `model`: running it, not loading, lowest load.
    public func route(_ model: String) -> Peer? {
        currentPeers().first { $0.available && $0.activeModel == model }
    }

    func announce(_ record: NearbyRecord, signedBy identity: MeshIdentity) {
        guard let bytes = try? record.encoded(signedBy: identity) else { return }
        var address = Self.socketAddress(configuration.group, configuration.port)
        _ = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(sender, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    private func listen() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while !lock.withLock({ stopped }) {
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(receiver, &buffer, buffer.count, 0, $0, &length) }
            }
            guard count > 0 else { continue }
            take(Array(buffer[0..<count]), at: Date())
        }
    }

    /// Takes one datagram into the table, or counts why not.
    func take(_ datagram: [UInt8], at now: Date) {
        guard let record = try? NearbyRecord(decoding: datagram) else {
            lock.withLock { counts.invalid += 1 }
            return
        }
        let id = record.agentId
        guard id != ownID else { return }
        let expiry = 3 * configuration.interval.seconds
        lock.withLock {
            let previous = peers[id]
            if let previous, record.sequence <= previous.record?.sequence ?? 0 {
                counts.replayed += 1
                return
            }
            if previous == nil, peers.count >= configuration.maximumPeers {
                peers = peers.filter { now.timeIntervalSince($0.value.lastSeen) <= expiry }
                guard peers.count < configuration.maximumPeers else {
                    counts.tableFull += 1
                    return
                }
            }
            counts.accepted += 1
            peers[id] = Peer(agentId: id, activeModel: record.activeModel, paramSize: record.paramSize, currentLoad: record.currentLoad,
                             freeMemoryMB: record.freeMemoryMB, address: "http://\(record.host):\(record.port)", lastSeen: now,
                             loadingAnnouncements: (previous?.loadingAnnouncements ?? 0) + (record.isLoading ? 1 : 0),
                             seeds: record.seeded.map(\.lowercaseHex), record: record)
        }
    }

    private static func socketAddress(_ host: String, _ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        return address
    }

    private static func openReceiver(_ configuration: Configuration) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
        guard socket >= 0 else { throw DiscoveryError("cannot open a UDP socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(socket, SOL_SOCKET, SO_REUSEPORT, &yes, socklen_t(MemoryLayout<Int32>.size))
        // Wake up twice a second, so stop() is noticed.
        var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = socketAddress("0.0.0.0", configuration.port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(socket)
            throw DiscoveryError("cannot listen on UDP port \(configuration.port): \(String(cString: strerror(errno)))")
        }
        var membership = ip_mreq()
        inet_pton(AF_INET, configuration.group, &membership.imr_multiaddr)
        inet_pton(AF_INET, configuration.interface, &membership.imr_interface)
        guard setsockopt(socket, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &membership, socklen_t(MemoryLayout<ip_mreq>.size)) == 0 else {
            close(socket)
            throw DiscoveryError("cannot join the multicast group \(configuration.group): \(String(cString: strerror(errno)))")
        }
        return socket
    }

    private static func openSender(_ configuration: Configuration) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
        guard socket >= 0 else { throw DiscoveryError("cannot open a UDP socket: \(String(cString: strerror(errno)))") }
        var interface = in_addr()
        inet_pton(AF_INET, configuration.interface, &interface)
        setsockopt(socket, Int32(IPPROTO_IP), IP_MULTICAST_IF, &interface, socklen_t(MemoryLayout<in_addr>.size))
        var loop: UInt8 = 1, ttl: UInt8 = 1  // other agents on this host hear it; it stays on the LAN
        setsockopt(socket, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, &loop, 1)
        setsockopt(socket, Int32(IPPROTO_IP), IP_MULTICAST_TTL, &ttl, 1)
        return socket
    }
}

struct DiscoveryError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
