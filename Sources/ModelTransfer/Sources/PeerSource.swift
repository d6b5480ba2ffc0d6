import Foundation

/// Another agent that holds a file: its blob address (`…/p2p/blobs/sha256/<hex>`) and the
/// coordinator's ticket that admits this download there.
public struct PeerSource: Sendable, Codable, Equatable {
    public var url: String
    public var ticket: String?

    /// Where a peer expects the ticket.
    public static let ticketHeader = "X-Depot-Ticket"

    public init(url: String, ticket: String?) {
        self.url = url
        self.ticket = ticket
    }
}
