import DepotAgent
import Foundation
import GRDB

/// A coordinator's view of its agents: the latest heartbeat of each, persisted (SQLite) so a
/// restart keeps it. An agent that missed `missedBeatsUntilOffline` heartbeats is offline: it
/// stays listed, marked so, but leaves the capability summaries.
public final class Coordinator: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The agents' heartbeat interval.
        public var heartbeatInterval: Duration = .seconds(15)
        public var missedBeatsUntilOffline = 3
        /// Federation peers: they get this coordinator's signed summary and what it relays, and
        /// only their gossip is taken.
        public var peers: [CoordinatorPeer] = []
        public var gossipInterval: Duration = .seconds(60)
        /// How many coordinators a summary may cross.
        public var hopLimit = 4
        public init() {}
    }

    public struct AgentRow: Codable, Sendable {
        public var heartbeat: Heartbeat
        public var lastSeen: Date
        public var online: Bool

        init(_ entry: AgentTable.Entry) {
            heartbeat = entry.heartbeat
            lastSeen = entry.lastSeen
            online = entry.online
        }
    }

    public let id: String
    let identity: CoordinatorIdentity
    let configuration: Configuration
    let database: DatabasePool
    // Guarded by `lock`; the database is written behind.
    private var table = AgentTable()
    private var remote: [String: (message: GossipMessage, receivedAt: Date)] = [:]
    private var unsaved: Set<String> = []
    private var rejected: [GossipRejection: Int] = [:]
    private var accepted = 0
    private let lock = NSLock()
    let outbox: GossipOutbox
    /// The coordinator's public key (base64), which its peers configure.
    public var publicKey: String { identity.publicKey }

    /// The id and public key of the coordinator whose state is in `directory`, made there if
    /// it has none yet (so peers can be configured before it first starts).
    public static func identity(directory: String) throws -> (id: String, publicKey: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let identity = try CoordinatorIdentity.load(directory: directory)
        return (identity.id, identity.publicKey)
    }

    /// Opens (or creates) the coordinator's state in `directory`.
    public init(directory: String, configuration: Configuration = Configuration()) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        identity = try CoordinatorIdentity.load(directory: directory)
        id = identity.id
        self.configuration = configuration
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
        try migrator.migrate(database)
        Task { [weak self] in
            // Rows that changed while no heartbeat followed still reach the disk; the loop ends
            // with the coordinator (it holds it only while persisting).
            while true {
                try? await Task.sleep(for: .milliseconds(Int(Coordinator.persistInterval * 1000)))
                guard let self else { return }
                try? self.persist()
            }
        }
        let summaries = try database.read { db in try Row.fetchAll(db, sql: "SELECT message, receivedAt FROM remoteSummary") }
        for row in summaries {
            guard let message = try? GossipMessage.decoder.decode(GossipMessage.self, from: Data((row["message"] as String).utf8)) else { continue }
            remote[message.signed.origin] = (message, Date(timeIntervalSince1970: row["receivedAt"]))
        }
        let rows = try database.read { db in try Row.fetchAll(db, sql: "SELECT heartbeat, lastSeen FROM agent ORDER BY lastSeen") }
        for row in rows {
            guard let heartbeat = try? JSONDecoder().decode(Heartbeat.self, from: Data((row["heartbeat"] as String).utf8)) else { continue }
            table.record(heartbeat, at: Date(timeIntervalSince1970: row["lastSeen"]))
        }
    }

    /// Records a heartbeat (or registration). The table lives in memory; changed rows reach
    /// SQLite in one transaction at most `persistInterval` later, off the request's path, so a
    /// crash loses at most that much of heartbeats the agents send again anyway.
    public func record(_ heartbeat: Heartbeat, at now: Date = Date()) {
        lock.withLock {
            table.record(heartbeat, at: now)
            unsaved.insert(heartbeat.agentId)
        }
    }

    static let persistInterval: TimeInterval = 0.5

    /// Writes the rows changed since the last time.
    public func persist() throws {
        let rows: [(String, Heartbeat, Date)] = lock.withLock {
            defer { unsaved.removeAll() }
            return unsaved.compactMap { id in table.entries[id].map { (id, $0.heartbeat, $0.lastSeen) } }
        }
        guard !rows.isEmpty else { return }
        let encoder = JSONEncoder()
        try database.write { db in
            let insert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO agent (id, heartbeat, lastSeen) VALUES (?, ?, ?)")
            for (id, heartbeat, lastSeen) in rows {
                try insert.execute(arguments: [id, String(decoding: try encoder.encode(heartbeat), as: UTF8.self), lastSeen.timeIntervalSince1970])
            }
        }
    }

    /// How long an agent stays online after its last heartbeat.
    var agentExpiry: Double { Double(configuration.missedBeatsUntilOffline) * configuration.heartbeatInterval.seconds }

    /// Every agent, online first, newest heartbeat first.
    public func agentRows(at now: Date = Date()) -> [AgentRow] {
        withCurrentTable(at: now) { table in table.entries.values.map(AgentRow.init) }
            .sorted { ($0.online ? 0 : 1, $1.lastSeen) < ($1.online ? 0 : 1, $0.lastSeen) }
    }

    /// EdgeCoder's capability summary: per model, the available agents running it, their
    /// parameter capacity and average load. Loading or offline agents do not count.
    public func summary(at now: Date = Date()) -> CapabilitySummary {
        withCurrentTable(at: now) { table in
            CapabilitySummary(coordinatorId: id, agentCount: table.onlineCount, modelAvailability: table.availability, timestamp: now)
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
    private func withCurrentTable<T>(at now: Date, _ body: (inout AgentTable) -> T) -> T {
        lock.withLock {
            table.expire(before: now.addingTimeInterval(-agentExpiry))
            return body(&table)
        }
    }
}

// MARK: Federation

extension Coordinator {
    /// This coordinator's summary, signed, for its peers.
    func outgoing(url: String, at now: Date = Date()) throws -> GossipMessage {
        try identity.sign(GossipMessage.Signed(protocolVersion: GossipMessage.protocolVersion, type: "capability_summary", origin: id,
                                               originKey: identity.publicKey, originURL: url,
                                               sequence: UInt64(now.timeIntervalSince1970 * 1000), sentAt: now, summary: summary(at: now)))
    }

    /// How old a summary may be before it expires: three gossip rounds.
    var expiry: Double { 3 * configuration.gossipInterval.seconds }

    /// Takes a peer's message: true when it is new, or came by a shorter path (and should be
    /// relayed), else the reason it was refused. Messages from outside the configured peers,
    /// and unsigned, forged, replayed and stale ones are refused and counted.
    public func receive(_ message: GossipMessage, at now: Date = Date()) -> Result<Bool, GossipRejection> {
        let verdict: Result<Bool, GossipRejection> = {
            guard message.signed.protocolVersion == GossipMessage.protocolVersion, message.signed.type == "capability_summary",
                  message.hops >= 0 else {
                return .failure(.unsupported)
            }
            guard let peer = configuration.peers.first(where: { $0.id == message.sender }) else { return .failure(.notAPeer) }
            guard message.senderForgery(by: peer) == nil, message.forgery() == nil else { return .failure(.forged) }
            guard now.timeIntervalSince(message.signed.sentAt) <= expiry else { return .failure(.stale) }
            if message.signed.origin == id { return .success(false) }  // our own, come back around
            return lock.withLock {
                if let known = remote[message.signed.origin], known.message.signed.sequence >= message.signed.sequence {
                    guard known.message.signature == message.signature else { return .failure(.replayed) }
                    // The same summary by a shorter path: passed on, it reaches coordinators the
                    // first copy's hop count stopped short of.
                    guard message.hops < known.message.hops else { return .failure(.duplicate) }
                }
                remote[message.signed.origin] = (message, now)
                return .success(true)
            }
        }()
        lock.withLock {
            switch verdict {
            case .success: accepted += 1
            case .failure(let reason): rejected[reason, default: 0] += 1
            }
        }
        if case .success(true) = verdict, let text = try? GossipMessage.encoder.encode(message) {
            try? database.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO remoteSummary (origin, message, receivedAt) VALUES (?, ?, ?)",
                               arguments: [message.signed.origin, String(decoding: text, as: UTF8.self), now.timeIntervalSince1970])
            }
        }
        return verdict
    }

    /// Federated summaries that have not expired.
    func liveRemoteSummaries(at now: Date = Date()) -> [GossipMessage] {
        lock.withLock { remote.values.map(\.message) }.filter { now.timeIntervalSince($0.signed.sentAt) <= expiry }
    }

    public struct GossipStats: Codable, Sendable {
        public var accepted: Int
        public var rejected: [String: Int]
        public var knownOrigins: [String]
        public var traffic: GossipOutbox.Traffic
    }

    public var gossipStats: GossipStats {
        lock.withLock {
            GossipStats(accepted: accepted, rejected: Dictionary(uniqueKeysWithValues: rejected.map { ($0.key.rawValue, $0.value) }),
                        knownOrigins: remote.keys.sorted(), traffic: outbox.traffic)
        }
    }
}

/// What a coordinator knows, per model (EdgeCoder's `capability_summary`).
public struct CapabilitySummary: Codable, Sendable, Equatable {
    public struct ModelAvailability: Codable, Sendable, Equatable {
        public var agentCount: Int
        public var totalParamCapacity: Double
        public var avgLoad: Double
    }

    public var coordinatorId: String
    public var agentCount: Int
    public var modelAvailability: [String: ModelAvailability]
    public var timestamp: Date
}
