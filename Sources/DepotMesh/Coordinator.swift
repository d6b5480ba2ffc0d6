import DepotHTTP
import Foundation
import GRDB
import MeshProtocol

/// A coordinator's view of its agents: the latest heartbeat of each, persisted (SQLite) so a
/// restart keeps it. An agent that missed `missedBeatsUntilOffline` heartbeats is offline: it
/// stays listed, marked so, but leaves the capability summaries; after `agentRetention` it is
/// forgotten. Agents register with their Ed25519 key (see `Coordinator+Agents`).
public final class Coordinator: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The agents' heartbeat interval.
        public var heartbeatInterval: Duration = .seconds(15)
        public var missedBeatsUntilOffline = 3
        /// Which agents may register.
        public var admission = Admission.open
        /// How long a session credential lasts; agents renew theirs before it ends.
        public var credentialLifetime: Duration = .seconds(600)
        /// Agents kept at most; the offline ones heard from longest ago make room first.
        public var maximumAgents = 50_000
        /// Offline agents are forgotten after this.
        public var agentRetention: Duration = .seconds(7 * 86_400)
        public var maximumInstalledModels = Heartbeat.Limits.defaultInstalledModels
        /// Installed models listed by all agents together, which bounds the table's memory
        /// (an entry is a few hundred bytes).
        public var maximumInstalledTotal = 1_000_000
        /// Models in one capability summary at most; beyond it, those with the least capacity
        /// are left out (and counted), so a summary always fits a peer's body limit.
        public var maximumSummaryModels = 1_000
        /// Federation peers: they get this coordinator's signed summary and what it relays, and
        /// only their gossip is taken.
        public var peers: [CoordinatorPeer] = []
        public var gossipInterval: Duration = .seconds(60)
        /// How many coordinators a summary may cross.
        public var hopLimit = 4
        /// How far in the future a peer's summary may be dated (clocks differ).
        public var maximumClockSkew: Duration = .seconds(60)
        /// Federated origins remembered at most.
        public var maximumOrigins = 1_024
        /// Connections, timeouts and the body limit of the HTTP server.
        public var limits: ServerLimits = {
            var limits = ServerLimits()
            limits.maximumBodyBytes = 1 << 20
            return limits
        }()
        /// Host names (besides loopback names and IP literals) this coordinator answers to.
        public var allowedHosts: [String] = []
        /// What seeding earns, and when liars are banned.
        public var credits = CreditPolicy()
        public init() {}
    }

    public struct AgentRow: Codable, Sendable {
        public var heartbeat: Heartbeat
        public var publicKey: String
        public var lastSeen: Date
        public var online: Bool
        public var installedModelCount: Int

        init(_ entry: AgentTable.Entry) {
            heartbeat = entry.heartbeat
            publicKey = entry.publicKey
            lastSeen = entry.lastSeen
            online = entry.online
            installedModelCount = entry.heartbeat.installedModels.count
        }

        /// The row without the list of installed models (their count stays): listings stay
        /// small unless the list is asked for.
        var summarized: AgentRow {
            var row = self
            row.heartbeat.installedModels = []
            return row
        }
    }

    public let id: String
    let identity: MeshIdentity
    let configuration: Configuration
    let database: DatabasePool
    let sessions: SessionCredentials
    let sequence: SequenceCounter
    // Guarded by `lock`; the database is written behind.
    private var table = AgentTable()
    var remote: [String: (message: GossipMessage, receivedAt: Date)] = [:]
    private var unsaved: Set<String> = []
    private var forgotten: Set<String> = []
    var usedNonces = UsedNonces()
    var counters = Counters()
    /// Seeders banned after liar reports, until when (also in SQLite).
    var bans: [String: Date] = [:]
    /// Agents that asked for seeders of a blob, so still downloading it: they serve its
    /// verified pieces. By blob, then agent: until when, and the blob's size.
    var downloading: [String: [String: (until: Date, size: UInt64)]] = [:]
    var downloadingCount = 0
    let lock = NSLock()
    let outbox: GossipOutbox
    /// The coordinator's public key (base64), which its peers configure.
    public var publicKey: String { identity.publicKey }

    /// What was refused or dropped, by reason (`/mesh/stats`, `/mesh/gossip/stats`).
    struct Counters {
        var heartbeats = 0
        var registrations = 0
        var refused: [String: Int] = [:]
        var evicted = 0
        var forgottenAfterRetention = 0
        var summaryModelsDropped = 0
        var ticketsIssued = 0
        var federatedTickets = 0
        var federationRefused: [String: Int] = [:]
        var receipts = 0
        var receiptsRefused: [String: Int] = [:]
        var creditsMinted = 0.0
        var reports = 0
        var reportsRefused: [String: Int] = [:]
        /// Reports on federation peers' tickets passed on to them.
        var reportsPassedOn = 0
        var seedersBanned = 0
        var gossipAccepted = 0
        var gossipRejected: [GossipRejection: Int] = [:]
    }

    /// The id and public key of the coordinator whose state is in `directory`, made there if
    /// it has none yet (so peers can be configured before it first starts).
    public static func identity(directory: String) throws -> (id: String, publicKey: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let identity = try MeshIdentity.load(path: directory + "/coordinator.key")
        return (identity.id, identity.publicKey)
    }

    /// Opens (or creates) the coordinator's state in `directory`.
    public init(directory: String, configuration: Configuration = Configuration()) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        identity = try MeshIdentity.load(path: directory + "/coordinator.key")
        id = identity.id
        self.configuration = configuration
        sessions = SessionCredentials(credentialLifetime: configuration.credentialLifetime.seconds)
        sequence = try SequenceCounter(path: directory + "/gossip.sequence")
        outbox = GossipOutbox(peers: configuration.peers)
        var options = GRDB.Configuration()
        options.busyMode = .timeout(10)
        database = try DatabasePool(path: directory + "/coordinator.sqlite", configuration: options)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "agent") { t in
                t.primaryKey("id", .text)
                t.column("heartbeat", .text).notNull()
                t.column("lastSeen", .double).notNull()
            }
            try db.create(table: "remoteSummary") { t in
                t.primaryKey("origin", .text)
                t.column("message", .text).notNull()
                t.column("receivedAt", .double).notNull()
            }
        }
        migrator.registerMigration("v2: agents have keys") { db in
            // Rows from before agents had identities cannot be vouched for: they register again.
            try db.execute(sql: "DELETE FROM agent")
            try db.alter(table: "agent") { t in t.add(column: "publicKey", .text).notNull().defaults(to: "") }
        }
        Self.migrateCredits(&migrator)
        Self.migrateFederation(&migrator)
        try migrator.migrate(database)
        bans = try loadBans()
        Task { [weak self] in
            // Rows that changed while no heartbeat followed still reach the disk; the loop ends
            // with the coordinator (it holds it only while persisting).
            while true {
                try? await Task.sleep(for: .milliseconds(Int(Coordinator.persistInterval * 1000)))
                guard let self else { return }
                self.forgetRetired()
                try? self.persist()
            }
        }
        let summaries = try database.read { db in try Row.fetchAll(db, sql: "SELECT message, receivedAt FROM remoteSummary") }
        for row in summaries {
            guard let message = try? GossipMessage.decoder.decode(GossipMessage.self, from: Data((row["message"] as String).utf8)) else { continue }
            remote[message.signed.origin] = (message, Date(timeIntervalSince1970: row["receivedAt"]))
        }
        let rows = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT heartbeat, publicKey, lastSeen FROM agent ORDER BY lastSeen DESC LIMIT ?",
                             arguments: [configuration.maximumAgents])
        }
        for row in rows.reversed() {
            let key: String = row["publicKey"]
            guard let heartbeat = try? JSONDecoder().decode(Heartbeat.self, from: Data((row["heartbeat"] as String).utf8)),
                  MeshIdentity.id(ofPublicKey: key) == heartbeat.agentId else { continue }
            table.record(heartbeat, publicKey: key, at: Date(timeIntervalSince1970: row["lastSeen"]))
        }
    }

    /// Records a heartbeat of an agent whose key was proven (registration or credential). The
    /// table lives in memory; changed rows reach SQLite in one transaction at most
    /// `persistInterval` later, off the request's path, so a crash loses at most that much of
    /// heartbeats the agents send again anyway. Refused when the table is full of online agents
    /// or of installed models.
    @discardableResult
    func record(_ heartbeat: Heartbeat, publicKey: String, at now: Date = Date()) -> Refusal? {
        lock.withLock { recordLocked(heartbeat, publicKey: publicKey, at: now) }
    }

    /// `record`, with the lock held.
    private func recordLocked(_ heartbeat: Heartbeat, publicKey: String, at now: Date) -> Refusal? {
        let listed = table.entries[heartbeat.agentId]?.heartbeat.installedModels.count ?? 0
        while table.entries[heartbeat.agentId] == nil && table.entries.count >= configuration.maximumAgents
                || table.installedCount - listed + heartbeat.installedModels.count > configuration.maximumInstalledTotal {
            table.expire(before: now.addingTimeInterval(-agentExpiry))
            guard let oldest = table.oldestOffline(), oldest != heartbeat.agentId else {
                return Refusal("tableFull", .serviceUnavailable,
                               "this coordinator holds its maximum of agents (\(configuration.maximumAgents)) or installed models (\(configuration.maximumInstalledTotal)), all online")
            }
            forgetLocked(oldest)
            counters.evicted += 1
        }
        let previous = table.entries[heartbeat.agentId]
        table.record(heartbeat, publicKey: publicKey, at: now)
        if let previous, !Self.mustSave(heartbeat, at: now, over: previous) { return nil }
        unsaved.insert(heartbeat.agentId)
        forgotten.remove(heartbeat.agentId)
        return nil
    }

    /// Takes an agent out of the table, and its row out of SQLite at the next write (lock held).
    private func forgetLocked(_ id: String) {
        table.remove(id)
        forgotten.insert(id)
        unsaved.remove(id)
    }

    /// Records a heartbeat that came with a valid session credential, in one pass under the
    /// lock: the agent must still be in the table (a credential outlives an evicted agent), and
    /// the address must be the one its registration signed, since a credential alone travels in
    /// the clear on plain HTTP and must not be able to send clients elsewhere.
    func recordFromSession(_ heartbeat: Heartbeat, at now: Date) -> Refusal? {
        lock.withLock {
            guard let known = table.entries[heartbeat.agentId] else {
                return Refusal("unregistered", .unauthorized, "this coordinator no longer knows agent \(heartbeat.agentId): register again")
            }
            guard heartbeat.address == known.heartbeat.address else {
                return Refusal("addressChanged", .forbidden, "the address differs from the one this agent registered with: register again to change it")
            }
            if let refusal = recordLocked(heartbeat, publicKey: known.publicKey, at: now) { return refusal }
            counters.heartbeats += 1
            return nil
        }
    }

    static let persistInterval: TimeInterval = 0.5

    /// Whether a beat changes the saved row enough to write it again: what the agent holds, where
    /// and how it is reached, or a new minute of `lastSeen`. Load and free memory change on nearly
    /// every beat and mean nothing after a restart (agents register again), so writing each
    /// beat's row cost the coordinator more than checking its credential.
    static func mustSave(_ heartbeat: Heartbeat, at now: Date, over previous: AgentTable.Entry) -> Bool {
        let saved = previous.heartbeat
        return Int64(now.timeIntervalSince1970 / 60) != Int64(previous.lastSeen.timeIntervalSince1970 / 60)
            || heartbeat.address != saved.address || heartbeat.activeModel != saved.activeModel
            || heartbeat.platform != saved.platform || heartbeat.installedModels != saved.installedModels
            || heartbeat.seeding != saved.seeding
    }

    /// Writes the rows changed since the last time, and deletes the forgotten ones. A failed
    /// write keeps them pending for the next time.
    public func persist() throws {
        let (rows, gone): ([(String, Heartbeat, String, Date)], Set<String>) = lock.withLock {
            defer {
                unsaved.removeAll()
                forgotten.removeAll()
            }
            return (unsaved.compactMap { id in table.entries[id].map { (id, $0.heartbeat, $0.publicKey, $0.lastSeen) } }, forgotten)
        }
        guard !rows.isEmpty || !gone.isEmpty else { return }
        let encoder = JSONEncoder()
        do {
            try database.write { db in
                let insert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO agent (id, heartbeat, publicKey, lastSeen) VALUES (?, ?, ?, ?)")
                for (id, heartbeat, key, lastSeen) in rows {
                    try insert.execute(arguments: [id, String(decoding: try encoder.encode(heartbeat), as: UTF8.self), key,
                                                   lastSeen.timeIntervalSince1970])
                }
                let delete = try db.cachedStatement(sql: "DELETE FROM agent WHERE id = ?")
                for id in gone { try delete.execute(arguments: [id]) }
            }
        } catch {
            lock.withLock {
                // Put back what did not reach the disk, unless newer news replaced it meanwhile.
                for (id, _, _, _) in rows where !forgotten.contains(id) { unsaved.insert(id) }
                for id in gone where table.entries[id] == nil { forgotten.insert(id) }
            }
            throw error
        }
    }

    /// Forgets offline agents past the retention period.
    func forgetRetired(at now: Date = Date()) {
        lock.withLock {
            table.expire(before: now.addingTimeInterval(-agentExpiry))
            for id in table.dequeueOffline(lastSeenBefore: now.addingTimeInterval(-configuration.agentRetention.seconds)) {
                forgetLocked(id)
                counters.forgottenAfterRetention += 1
            }
        }
    }

    /// How long an agent stays online after its last heartbeat.
    var agentExpiry: Double { Double(configuration.missedBeatsUntilOffline) * configuration.heartbeatInterval.seconds }

    /// Every agent, online first, newest heartbeat first.
    public func agentRows(at now: Date = Date()) -> [AgentRow] {
        withCurrentTable(at: now) { table in table.entries.values.map(AgentRow.init) }
            .sorted { ($0.online ? 0 : 1, $1.lastSeen, $0.heartbeat.agentId) < ($1.online ? 0 : 1, $0.lastSeen, $1.heartbeat.agentId) }
    }

    /// EdgeCoder's capability summary: per model, the available agents running it, their
    /// parameter capacity and average load. Loading or offline agents do not count. At most
    /// `maximumSummaryModels` models: those with the most capacity.
    public func summary(at now: Date = Date()) -> CapabilitySummary {
        withCurrentTable(at: now) { table in
            var availability = table.availability
            let excess = availability.count - configuration.maximumSummaryModels
            if excess > 0 {
                let dropped = availability.sorted {
                    ($0.value.totalParamCapacity, $0.value.agentCount, $1.key) < ($1.value.totalParamCapacity, $1.value.agentCount, $0.key)
                }.prefix(excess)
                for (model, _) in dropped { availability[model] = nil }
                counters.summaryModelsDropped += excess
            }
            return CapabilitySummary(coordinatorId: id, agentCount: table.onlineCount, modelAvailability: availability, timestamp: now)
        }
    }

    /// Whether a model became available here, or stopped being so, since the last call.
    func takeModelsChanged(at now: Date = Date()) -> Bool {
        withCurrentTable(at: now) { table in
            defer { table.modelsChanged = false }
            return table.modelsChanged
        }
    }

    /// The best agent for `model`: available, running it, lowest load.
    public func route(_ model: String, at now: Date = Date()) -> AgentRow? {
        withCurrentTable(at: now) { table in table.bestAgent(for: model).map(AgentRow.init) }
    }

    /// The table under the lock, with the agents past their deadline at `now` taken offline.
    func withCurrentTable<T>(at now: Date, _ body: (inout AgentTable) -> T) -> T {
        lock.withLock {
            table.expire(before: now.addingTimeInterval(-agentExpiry))
            return body(&table)
        }
    }

    /// Agents in the table and how many are online (lock held).
    var agentCountsLocked: (total: Int, online: Int) { (table.entries.count, table.onlineCount) }
}
