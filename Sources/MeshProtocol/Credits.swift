import Crypto
import Foundation

/// A downloader's signed word that it verified `verifiedBytes` of a blob from one seeder
/// under one ticket. Cumulative: each verified piece makes a new receipt with a larger count
/// and sequence, so a seeder keeps only the latest, and the coordinator credits the growth.
/// The downloader's key travels with it: the ticket names the downloader by id, and the id is
/// derived from the key, so anyone can check a receipt without asking the coordinator.
public struct SeedReceipt: Codable, Sendable, Equatable {
    public static let version = 1
    public var version: Int
    /// `SeederTicket.hash(of:)` of the ticket the download ran under.
    public var ticketHash: String
    public var sha256: String
    public var seeder: String
    public var downloader: String
    /// The downloader's Ed25519 public key (base64).
    public var downloaderKey: String
    public var verifiedBytes: UInt64
    public var sequence: UInt64
    /// Base64 Ed25519 signature over `signedBytes`.
    public var signature: String

    /// The receipt for `verifiedBytes` under `ticketToken`, signed by the downloader.
    public init(ticketToken: String, sha256: String, seeder: String, downloader: MeshIdentity,
                verifiedBytes: UInt64, sequence: UInt64) throws {
        version = Self.version
        ticketHash = SeederTicket.hash(of: ticketToken)
        self.sha256 = sha256
        self.seeder = seeder
        self.downloader = downloader.id
        downloaderKey = downloader.publicKey
        self.verifiedBytes = verifiedBytes
        self.sequence = sequence
        signature = ""
        signature = try downloader.signature(for: signedBytes)
    }

    /// Every field but the signature, with a domain prefix of its own.
    public var signedBytes: Data {
        Data("depot-seed-receipt|\(version)|\(ticketHash)|\(sha256)|\(seeder)|\(downloader)|\(downloaderKey)|\(verifiedBytes)|\(sequence)".utf8)
    }

    /// Why this receipt is not the downloader's word about `ticket` (whose token is
    /// `ticketToken`), or nil when it is: the same ticket, blob and parties, the downloader's
    /// own key and signature, and no more bytes than the blob has.
    public func problem(under ticket: SeederTicket, token ticketToken: String) -> Problem? {
        guard version == Self.version, ticketHash == SeederTicket.hash(of: ticketToken),
              sha256 == ticket.sha256, seeder == ticket.seeder, downloader == ticket.downloader else {
            return Problem(reason: "otherTicket", message: "the receipt names another ticket, blob, seeder or downloader than the ticket given")
        }
        guard let key = MeshIdentity.publicKey(downloaderKey), MeshIdentity.id(ofKey: key.rawRepresentation) == downloader,
              MeshIdentity.isValid(signature: signature, for: signedBytes, by: key) else {
            return Problem(reason: "badSignature", message: "the receipt is not signed by the downloader's key")
        }
        guard verifiedBytes <= ticket.sizeBytes else {
            return Problem(reason: "overclaim", message: "the receipt claims \(verifiedBytes) bytes of a blob of \(ticket.sizeBytes)")
        }
        return nil
    }

    /// Why a receipt is refused: a counter's name and what the submitter is told.
    public struct Problem: Error, Sendable, Equatable {
        public var reason: String
        public var message: String

        public init(reason: String, message: String) {
            self.reason = reason
            self.message = message
        }
    }

    /// Where a downloader sends its latest receipt with each request to a seeder.
    public static let header = "X-Depot-Receipt"

    /// The receipt as one header value: base64url(JSON).
    public var headerValue: String {
        SeederTicket.base64URL((try? JSONEncoder().encode(self)) ?? Data())
    }

    /// The receipt a header value holds, or nil when it holds none.
    public init?(headerValue: String) {
        guard headerValue.utf8.count <= 2048, let data = SeederTicket.data(base64URL: Substring(headerValue)),
              let receipt = try? JSONDecoder().decode(SeedReceipt.self, from: data) else { return nil }
        self = receipt
    }
}

/// `POST /mesh/receipts` from a seeder: the latest receipt of each ticket it served under,
/// with the ticket itself (the coordinator keeps no tickets: it checks its own signature).
public struct ReceiptSubmission: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var ticket: String
        public var receipt: SeedReceipt

        public init(ticket: String, receipt: SeedReceipt) {
            self.ticket = ticket
            self.receipt = receipt
        }
    }

    public var receipts: [Item]

    public init(receipts: [Item]) { self.receipts = receipts }

    public static let maximumReceipts = 256
}

/// The coordinator's answer to a submission: what each receipt earned, in order.
public struct ReceiptVerdicts: Codable, Sendable, Equatable {
    public struct Verdict: Codable, Sendable, Equatable {
        /// Bytes newly credited (held until the downloader lists the blob).
        public var bytes: UInt64
        public var credits: Double
        /// Why the receipt earned nothing or less than it claimed (nil: all of it).
        public var refused: String?

        public init(bytes: UInt64, credits: Double, refused: String?) {
            self.bytes = bytes
            self.credits = credits
            self.refused = refused
        }
    }

    public var verdicts: [Verdict]

    public init(verdicts: [Verdict]) { self.verdicts = verdicts }
}

/// `GET /mesh/credits?agent=`: what an agent earned by seeding.
public struct CreditBalance: Codable, Sendable, Equatable {
    public var agentId: String
    /// Credits whose downloaders have listed the blob since.
    public var credits: Double
    /// Credits held until their downloaders list the blob.
    public var pendingCredits: Double
    public var bytesCredited: UInt64
    public var bytesPending: UInt64

    public init(agentId: String, credits: Double, pendingCredits: Double, bytesCredited: UInt64, bytesPending: UInt64) {
        self.agentId = agentId
        self.credits = credits
        self.pendingCredits = pendingCredits
        self.bytesCredited = bytesCredited
        self.bytesPending = bytesPending
    }
}

/// `POST /mesh/reports` from a downloader: a seeder it was sent to (the ticket proves it) sent
/// a piece that did not match the pieces root of the signed catalog.
public struct SeederReport: Codable, Sendable, Equatable {
    public var ticket: String
    /// The piece found bad, for the record.
    public var piece: Int

    public init(ticket: String, piece: Int) {
        self.ticket = ticket
        self.piece = piece
    }
}
