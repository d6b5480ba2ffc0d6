import DepotHTTP
import Foundation
import GRDB
import MeshProtocol

/// Seed credits and liar reports. A seeder submits the latest receipt of each ticket it served
/// under; the coordinator checks its own ticket, the downloader's signature and the size, keeps
/// the largest receipt per (ticket, seeder) and credits only its growth:
///
///     credits = bytes / 2^30 × creditsPerGiB × (1 + 1 / seeders)
///
/// where `seeders` is the number of complete seeders the ticket counted when it was issued
/// (a sole seeder earns double, ten earn 1.1×). A download (one downloader, one blob, within
/// `downloadWindow`) is credited at most the blob's size over all its seeders, and a seeder at
/// most `dailyCreditCap` a day. Credits are held until the downloader's heartbeat lists the
/// blob. CDN bytes earn nothing: no receipt names the CDN.
extension Coordinator {
    public struct CreditPolicy: Sendable {
        public var creditsPerGiB = 1.0
        public var dailyCreditCap = 1_000.0
        /// Downloads of one blob by one downloader within this time count as one download.
        public var downloadWindow: Duration = .seconds(30 * 86_400)
        /// How long after its ticket expires a receipt is still taken.
        public var receiptWindow: Duration = .seconds(86_400)
        /// Agent ids an operator declared to have one owner: they earn nothing from each other.
        public var ownerGroups: [Set<String>] = []
        /// Distinct downloaders whose reports ban a seeder.
        public var reportsUntilBan = 2
        public var banDuration: Duration = .seconds(7 * 86_400)
        public init() {}
    }

    static let gibibyte = Double(1 << 30)

    /// The rarity bonus for a blob with `seeders` complete seeders.
    public static func rarity(seeders: Int) -> Double { 1 + 1 / Double(max(1, seeders)) }

    static func migrateCredits(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3: seed credits") { db in
            try db.create(table: "receipt") { t in
                t.column("ticketHash", .text).notNull()
                t.column("seeder", .text).notNull()
                t.column("verifiedBytes", .integer).notNull()
                t.column("sequence", .integer).notNull()
                t.primaryKey(["ticketHash", "seeder"])
            }
            try db.create(table: "credit") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("seeder", .text).notNull().indexed()
                t.column("downloader", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("bytes", .integer).notNull()
                t.column("credits", .double).notNull()
                t.column("mintedAt", .double).notNull()
                t.column("settled", .boolean).notNull()
            }
            try db.create(index: "creditDownload", on: "credit", columns: ["downloader", "sha256"])
            try db.create(table: "report") { t in
                t.column("reporter", .text).notNull()
                t.column("seeder", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("piece", .integer).notNull()
                t.column("reportedAt", .double).notNull()
                t.primaryKey(["reporter", "seeder", "sha256"])
            }
            try db.create(table: "ban") { t in
                t.primaryKey("seeder", .text)
                t.column("until", .double).notNull()
            }
        }
    }

    /// Bans still in force, from SQLite (at start).
    func loadBans(at now: Date = Date()) throws -> [String: Date] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT seeder, until FROM ban WHERE until > ?", arguments: [now.timeIntervalSince1970])
        }.reduce(into: [:]) { bans, row in bans[row["seeder"]] = Date(timeIntervalSince1970: row["until"]) }
    }

    func isBanned(_ seeder: String, at now: Date) -> Bool {
        lock.withLock { (bans[seeder] ?? .distantPast) > now }
    }

    /// Checks and credits a seeder's receipts, one verdict each; one transaction, so
    /// concurrent submissions see each other's caps.
    public func submitReceipts(_ submission: ReceiptSubmission, credential: String?, at now: Date = Date()) throws(APIError) -> ReceiptVerdicts {
        guard let credential, let seeder = sessions.agent(of: credential, at: now) else {
            throw APIError(.unauthorized, "submitting receipts needs this coordinator's session credential: register first")
        }
        guard submission.receipts.count <= ReceiptSubmission.maximumReceipts else {
            throw APIError.badRequest("field 'receipts' lists \(submission.receipts.count); at most \(ReceiptSubmission.maximumReceipts) a submission")
        }
        let verdicts: [ReceiptVerdicts.Verdict]
        do {
            verdicts = try database.write { db in
                try submission.receipts.map { item in try self.credit(item, seeder: seeder, db, at: now) }
            }
        } catch {
            throw APIError(.internalServerError, "the ledger could not be written: \(error)")
        }
        lock.withLock {
            for verdict in verdicts {
                if let refused = verdict.refused { counters.receiptsRefused[refused, default: 0] += 1 } else { counters.receipts += 1 }
                counters.creditsMinted += verdict.credits
            }
        }
        try? settleCredits(at: now)
        return ReceiptVerdicts(verdicts: verdicts)
    }

    /// One receipt's verdict, written to the ledger in `db`.
    private func credit(_ item: ReceiptSubmission.Item, seeder: String, _ db: Database, at now: Date) throws -> ReceiptVerdicts.Verdict {
        func refused(_ reason: String) -> ReceiptVerdicts.Verdict { .init(bytes: 0, credits: 0, refused: reason) }
        let policy = configuration.credits
        guard case .success(let ticket) = SeederTicket.verified(item.ticket, coordinatorKey: publicKey) else { return refused("badTicket") }
        guard ticket.seeder == seeder else { return refused("notYourTicket") }
        guard Double(ticket.expires) / 1000 + policy.receiptWindow.seconds > now.timeIntervalSince1970 else { return refused("ticketTooOld") }
        if let problem = item.receipt.problem(under: ticket, token: item.ticket) { return refused(problem.reason) }
        guard !sameOwner(ticket.seeder, ticket.downloader) else { return refused("selfDealing") }
        guard !isBanned(seeder, at: now) else { return refused("banned") }

        let receipt = item.receipt
        let previous = try Row.fetchOne(db, sql: "SELECT verifiedBytes, sequence FROM receipt WHERE ticketHash = ? AND seeder = ?",
                                        arguments: [receipt.ticketHash, seeder])
        let previousBytes: UInt64 = previous.map { UInt64($0["verifiedBytes"] as Int64) } ?? 0
        guard receipt.sequence > previous.map({ UInt64($0["sequence"] as Int64) }) ?? 0, receipt.verifiedBytes > previousBytes else {
            return refused("replayed")
        }
        try db.execute(sql: "INSERT OR REPLACE INTO receipt (ticketHash, seeder, verifiedBytes, sequence) VALUES (?, ?, ?, ?)",
                       arguments: [receipt.ticketHash, seeder, Int64(receipt.verifiedBytes), Int64(receipt.sequence)])

        var reason: String?
        let claimed = receipt.verifiedBytes - previousBytes
        let creditedForDownload = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM credit WHERE downloader = ? AND sha256 = ? AND mintedAt > ?",
                                                     arguments: [ticket.downloader, ticket.sha256, now.timeIntervalSince1970 - policy.downloadWindow.seconds]) ?? 0
        var bytes = min(claimed, ticket.sizeBytes - min(ticket.sizeBytes, UInt64(creditedForDownload)))
        if bytes < claimed { reason = "downloadCap" }
        let perByte = policy.creditsPerGiB * Self.rarity(seeders: ticket.seeders) / Self.gibibyte
        var credits = Double(bytes) * perByte
        let mintedToday = try Double.fetchOne(db, sql: "SELECT COALESCE(SUM(credits), 0) FROM credit WHERE seeder = ? AND mintedAt > ?",
                                              arguments: [seeder, now.timeIntervalSince1970 - 86_400]) ?? 0
        if mintedToday + credits > policy.dailyCreditCap {
            credits = max(0, policy.dailyCreditCap - mintedToday)
            bytes = UInt64(credits / perByte)
            reason = "dailyCap"
        }
        guard bytes > 0 else { return refused(reason ?? "replayed") }
        try db.execute(sql: "INSERT INTO credit (seeder, downloader, sha256, bytes, credits, mintedAt, settled) VALUES (?, ?, ?, ?, ?, ?, 0)",
                       arguments: [seeder, ticket.downloader, ticket.sha256, Int64(bytes), credits, now.timeIntervalSince1970])
        return .init(bytes: bytes, credits: credits, refused: reason)
    }

    /// Whether two agents are one owner's: the same id, or grouped by the operator.
    func sameOwner(_ one: String, _ other: String) -> Bool {
        one == other || configuration.credits.ownerGroups.contains { $0.contains(one) && $0.contains(other) }
    }

    /// Releases held credits whose downloaders now list the blob in their heartbeats.
    func settleCredits(at now: Date = Date()) throws {
        let pending = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT DISTINCT downloader, sha256 FROM credit WHERE settled = 0")
        }.map { (downloader: $0["downloader"] as String, sha256: $0["sha256"] as String) }
        guard !pending.isEmpty else { return }
        let landed = withCurrentTable(at: now) { table in
            pending.filter { item in table.entries[item.downloader]?.heartbeat.installedModels.contains { $0.sha256 == item.sha256 } == true }
        }
        guard !landed.isEmpty else { return }
        try database.write { db in
            for item in landed { try Self.markSettled(downloader: item.downloader, sha256: item.sha256, db) }
        }
    }

    /// Releases the held credits of one download.
    static func markSettled(downloader: String, sha256: String, _ db: Database) throws {
        try db.execute(sql: "UPDATE credit SET settled = 1 WHERE settled = 0 AND downloader = ? AND sha256 = ?", arguments: [downloader, sha256])
    }

    /// What `agent` earned by seeding.
    public func credits(of agent: String, at now: Date = Date()) throws(APIError) -> CreditBalance {
        guard agent.utf8.count == 16, agent.allSatisfy(\.isHexDigit) else { throw APIError.badRequest("give ?agent= with an agent id (16 hex digits)") }
        do {
            try settleCredits(at: now)
            return try database.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT settled, COALESCE(SUM(bytes), 0) AS bytes, COALESCE(SUM(credits), 0) AS credits FROM credit WHERE seeder = ? GROUP BY settled",
                                            arguments: [agent])
                var balance = CreditBalance(agentId: agent, credits: 0, pendingCredits: 0, bytesCredited: 0, bytesPending: 0)
                for row in rows {
                    if row["settled"] as Bool {
                        balance.credits = row["credits"]
                        balance.bytesCredited = UInt64(row["bytes"] as Int64)
                    } else {
                        balance.pendingCredits = row["credits"]
                        balance.bytesPending = UInt64(row["bytes"] as Int64)
                    }
                }
                return balance
            }
        } catch {
            throw APIError(.internalServerError, "the ledger could not be read: \(error)")
        }
    }

    /// A downloader's report of a bad piece from a seeder it holds a ticket for: recorded here
    /// for this coordinator's tickets, passed on to the federation peer that issued any other
    /// (`reportAcrossFederation`). Returns whether the seeder is banned now.
    public func report(_ report: SeederReport, credential: String?, at now: Date = Date()) async throws(APIError) -> Bool {
        guard let credential, let reporter = sessions.agent(of: credential, at: now) else {
            throw APIError(.unauthorized, "reporting a seeder needs this coordinator's session credential: register first")
        }
        guard case .success(let ticket) = SeederTicket.verified(report.ticket, coordinatorKey: publicKey) else {
            if let issuer = configuration.peers.first(where: { peer in
                if case .success = SeederTicket.verified(report.ticket, coordinatorKey: peer.publicKey) { return true }
                return false
            }) {
                return try await reportAcrossFederation(report, reporter: reporter, to: issuer, at: now)
            }
            throw refuseReport("badTicket", "the ticket is not one this coordinator or a federation peer issued")
        }
        return try recordReport(on: ticket, piece: report.piece, by: reporter, at: now)
    }

    func refuseReport(_ reason: String, _ message: String) -> APIError {
        lock.withLock { counters.reportsRefused[reason, default: 0] += 1 }
        return APIError(.forbidden, message)
    }

    /// One report per (downloader, seeder, blob) counts; reports from `reportsUntilBan`
    /// distinct downloaders ban the seeder (no tickets, no credits) for `banDuration`.
    func recordReport(on ticket: SeederTicket, piece: Int, by reporter: String, at now: Date) throws(APIError) -> Bool {
        let policy = configuration.credits
        guard ticket.downloader == reporter else { throw refuseReport("notYourTicket", "the ticket was issued to another agent") }
        guard Double(ticket.expires) / 1000 + policy.receiptWindow.seconds > now.timeIntervalSince1970 else {
            throw refuseReport("ticketTooOld", "the ticket is too old to report on")
        }
        guard piece >= 0 else { throw APIError.badRequest("field 'piece' must not be negative") }
        let banned: Bool
        do {
            banned = try database.write { db in
                try db.execute(sql: "INSERT OR IGNORE INTO report (reporter, seeder, sha256, piece, reportedAt) VALUES (?, ?, ?, ?, ?)",
                               arguments: [reporter, ticket.seeder, ticket.sha256, piece, now.timeIntervalSince1970])
                let reporters = try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT reporter) FROM report WHERE seeder = ? AND reportedAt > ?",
                                                 arguments: [ticket.seeder, now.timeIntervalSince1970 - policy.banDuration.seconds]) ?? 0
                guard reporters >= policy.reportsUntilBan else { return false }
                try db.execute(sql: "INSERT OR REPLACE INTO ban (seeder, until) VALUES (?, ?)",
                               arguments: [ticket.seeder, now.timeIntervalSince1970 + policy.banDuration.seconds])
                return true
            }
        } catch {
            throw APIError(.internalServerError, "the report could not be recorded: \(error)")
        }
        lock.withLock {
            counters.reports += 1
            if banned {
                if (bans[ticket.seeder] ?? .distantPast) <= now { counters.seedersBanned += 1 }
                bans[ticket.seeder] = now.addingTimeInterval(policy.banDuration.seconds)
            }
        }
        return banned
    }
}
