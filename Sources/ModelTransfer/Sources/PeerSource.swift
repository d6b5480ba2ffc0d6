import Foundation

/// Another agent that holds a file: its blob address (`…/p2p/blobs/sha256/<hex>`), the
/// coordinator's ticket that admits this download there, and the account of what the
/// download owes it (not persisted, not compared).
public struct PeerSource: Sendable, Codable, Equatable {
    public var url: String
    public var ticket: String?
    public var account: PeerAccount?

    /// Where a peer expects the ticket.
    public static let ticketHeader = "X-Depot-Ticket"

    public init(url: String, ticket: String?, account: PeerAccount? = nil) {
        self.url = url
        self.ticket = ticket
        self.account = account
    }

    enum CodingKeys: String, CodingKey { case url, ticket }

    public static func == (left: PeerSource, right: PeerSource) -> Bool { left.url == right.url && left.ticket == right.ticket }
}

/// What a download owes one peer: the bytes of its pieces that were verified, signed as a
/// cumulative receipt sent with each later request to it (the seeder serves only a little
/// ahead of its receipts, and is credited on them), and the bad pieces it sent, reported.
/// The signing and the reporting belong to the agent; this module only counts.
public final class PeerAccount: @unchecked Sendable {
    /// Signs a receipt for `verifiedBytes` with `sequence`; returns the header value.
    public typealias Signer = @Sendable (_ verifiedBytes: UInt64, _ sequence: UInt64) -> String?
    private let sign: Signer
    private let onBadPiece: @Sendable (Int) -> Void
    // Guarded by `lock`.
    private var verified: UInt64 = 0
    private var sequence: UInt64 = 0
    private var receipt: String?
    private let lock = NSLock()

    public init(sign: @escaping Signer, onBadPiece: @escaping @Sendable (Int) -> Void) {
        self.sign = sign
        self.onBadPiece = onBadPiece
    }

    /// Where the latest receipt goes in requests to the peer.
    public static let receiptHeader = "X-Depot-Receipt"

    public var verifiedBytes: UInt64 { lock.withLock { verified } }

    /// The header carrying the latest receipt, if any piece was verified yet.
    var headers: [String: String] { lock.withLock { receipt.map { [Self.receiptHeader: $0] } ?? [:] } }

    func verified(_ bytes: UInt64) {
        lock.withLock {
            verified += bytes
            sequence += 1
            receipt = sign(verified, sequence) ?? receipt
        }
    }

    func badPiece(_ index: Int) { onBadPiece(index) }
}

/// Asks, while a download runs, for the peers that hold or are downloading the same bytes
/// now: a swarm grows as agents join it, and an agent that started first learns of those
/// that came after. Not persisted; any two compare equal (like a peer's account).
public final class PeerFinder: Sendable, Equatable {
    public let find: @Sendable () async -> [PeerSource]

    public init(_ find: @escaping @Sendable () async -> [PeerSource]) { self.find = find }

    public static func == (left: PeerFinder, right: PeerFinder) -> Bool { true }
}
