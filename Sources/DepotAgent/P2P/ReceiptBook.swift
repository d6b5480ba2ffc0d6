import Foundation
import AsyncHTTPClient
import MeshProtocol

/// A seeder's side of seed credits: per ticket it served under, the bytes it sent and the
/// latest receipt the downloader signed. A ticketed peer is served only while what it has not
/// receipted stays within `slack` (twice the largest request it made, so a piece or two ahead);
/// the receipts go to the coordinator after each heartbeat. Kept in memory: receipts not yet
/// submitted when the agent stops are lost, and with them those credits.
final class ReceiptBook: @unchecked Sendable {
    struct Account {
        let token: String
        var sent: UInt64 = 0
        var largestRequest: UInt64 = 0
        var receipt: SeedReceipt?
        var submittedSequence: UInt64 = 0
        var lastUsed: Date
    }

    /// Whole ranges a ticketed peer may ask for at once (a piece can be no larger).
    static let maximumRequest: UInt64 = 64 << 20
    static let maximumAccounts = 4_096
    // Guarded by `lock`.
    private var accounts: [String: Account] = [:]
    private var receiptsTaken = 0
    private let lock = NSLock()

    enum Refusal: Error, Equatable {
        case badReceipt(String)
        case receiptsBehind(unreceipted: UInt64)
        case tooLarge
    }

    /// Takes the request's receipt (if any) and decides whether `length` more bytes may go to
    /// the holder of `ticket`. Counting starts when the bytes are sent (`sent`).
    func admit(ticket: SeederTicket, token: String, receiptHeader: String?, length: UInt64, at now: Date = Date()) throws(Refusal) {
        var receipt: SeedReceipt?
        if let receiptHeader {
            guard let parsed = SeedReceipt(headerValue: receiptHeader) else { throw .badReceipt("the receipt header holds no receipt") }
            if let problem = parsed.problem(under: ticket, token: token) { throw .badReceipt(problem.message) }
            receipt = parsed
        }
        guard length <= Self.maximumRequest else { throw .tooLarge }
        let key = SeederTicket.hash(of: token)
        let (unreceipted, slack) = lock.withLock {
            if accounts[key] == nil, accounts.count >= Self.maximumAccounts, let oldest = accounts.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                accounts[oldest.key] = nil
            }
            var account = accounts[key] ?? Account(token: token, lastUsed: now)
            if let receipt, receipt.sequence > account.receipt?.sequence ?? 0 {
                account.receipt = receipt
                receiptsTaken += 1
            }
            account.lastUsed = now
            account.largestRequest = max(account.largestRequest, length)
            let unreceipted = account.sent - min(account.sent, account.receipt?.verifiedBytes ?? 0)
            accounts[key] = account
            return (unreceipted, 2 * account.largestRequest)
        }
        guard unreceipted <= slack else { throw .receiptsBehind(unreceipted: unreceipted) }
    }

    /// Counts bytes sent under a ticket.
    func sent(_ bytes: Int, token: String) {
        let key = SeederTicket.hash(of: token)
        lock.withLock { accounts[key]?.sent += UInt64(bytes) }
    }

    /// The receipts not yet submitted, with their tickets.
    func unsubmitted() -> [ReceiptSubmission.Item] {
        lock.withLock {
            accounts.values.compactMap { account in
                guard let receipt = account.receipt, receipt.sequence > account.submittedSequence else { return nil }
                return ReceiptSubmission.Item(ticket: account.token, receipt: receipt)
            }
        }.prefix(ReceiptSubmission.maximumReceipts).map { $0 }
    }

    /// Marks receipts as submitted (the coordinator answered for them).
    func submitted(_ items: [ReceiptSubmission.Item]) {
        lock.withLock {
            for item in items {
                let key = SeederTicket.hash(of: item.ticket)
                guard var account = accounts[key] else { continue }
                account.submittedSequence = max(account.submittedSequence, item.receipt.sequence)
                accounts[key] = account
            }
        }
    }

    /// Receipts taken from downloaders (each one newer than the last of its ticket).
    var receiptCount: Int { lock.withLock { receiptsTaken } }
}
