import Foundation
import MeshProtocol

/// The coordinator's agents, with each model's availability kept current on every heartbeat
/// and every expiry, so a summary costs as much as the number of models and a route as much
/// as the agents running that model, never a pass over all agents.
///
/// Not thread-safe: the coordinator guards it with its lock. Time must not go backwards:
/// an agent that expired stays offline until its next heartbeat.
struct AgentTable {
    struct Entry {
        var heartbeat: Heartbeat
        /// The agent's Ed25519 public key (base64), proven at registration.
        var publicKey: String
        var lastSeen: Date
        var online: Bool
    }

    /// The available agents running one model, with their parameter capacity (in millionths of
    /// a billion, so adding and removing agents never drifts) and summed load.
    struct ModelTally {
        var agents: Set<String> = []
        var capacityMicros: Int64 = 0
        var load = 0
    }

    private(set) var entries: [String: Entry] = [:]
    private(set) var tallies: [String: ModelTally] = [:]
    private(set) var onlineCount = 0
    /// Online seeding agents by the SHA-256 of each blob they hold.
    private(set) var holders: [String: Set<String>] = [:]
    /// Installed models listed by all agents together.
    private(set) var installedCount = 0
    /// Set when a model becomes available here or stops being so; the gossip loop clears it.
    var modelsChanged = false
    /// Online agents by the tenth of a second of their last heartbeat: expiry takes whole
    /// buckets (so an agent goes offline up to 0.1 s after its deadline).
    private var buckets: [Int64: Set<String>] = [:]
    /// Every bucket below this key has expired.
    private var expiredBelow = Int64.min
    /// Agents in the order they went offline, which is the order of their last heartbeats
    /// (expiry takes buckets in order); entries an agent has since left (it came back, or was
    /// removed) are skipped when met. Eviction and retention take from the front.
    private var offlineQueue = FIFOQueue<(id: String, lastSeen: Date)>()

    static func bucket(_ date: Date) -> Int64 {
        let tenths = (date.timeIntervalSince1970 * 10).rounded(.down)
        return tenths.isFinite ? Int64(max(-9e17, min(9e17, tenths))) : 0
    }

    /// Parameter sizes (billions) as whole millionths; callers validate the range.
    static func micros(_ size: Double?) -> Int64 { Int64(((size ?? 0) * 1_000_000).rounded()) }

    mutating func record(_ heartbeat: Heartbeat, publicKey: String, at time: Date) {
        let id = heartbeat.agentId
        var vacated: String?  // a model this agent alone ran here
        if let old = entries[id], old.online {
            let key = Self.bucket(old.lastSeen)
            buckets[key]?.remove(id)
            if buckets[key]?.isEmpty == true { buckets[key] = nil }
            vacated = takeOffline(id, old, queued: false)
        }
        defer { if let vacated, tallies[vacated] == nil { modelsChanged = true } }
        installedCount += heartbeat.installedModels.count - (entries[id]?.heartbeat.installedModels.count ?? 0)
        let key = Self.bucket(time)
        let entry = Entry(heartbeat: heartbeat, publicKey: publicKey, lastSeen: time, online: key >= expiredBelow)
        entries[id] = entry
        guard entry.online else {
            offlineQueue.append((id, time))  // a beat older than what already expired
            return
        }
        onlineCount += 1
        buckets[key, default: []].insert(id)
        if heartbeat.seeding != nil {
            for model in heartbeat.installedModels { holders[model.sha256, default: []].insert(id) }
        }
        guard let model = Self.availableModel(heartbeat) else { return }
        if tallies[model] == nil, model != vacated { modelsChanged = true }
        tallies[model, default: ModelTally()].agents.insert(id)
        tallies[model]!.capacityMicros += Self.micros(heartbeat.activeModelParamSize)
        tallies[model]!.load += heartbeat.currentLoad
    }

    /// Takes every agent last heard from before `cutoff` out of the summaries.
    mutating func expire(before cutoff: Date) {
        let limit = Self.bucket(cutoff)
        guard limit > expiredBelow else { return }
        // Walk the keys in between when that is cheaper than looking at every bucket.
        let due = expiredBelow != .min && limit - expiredBelow <= Int64(buckets.count)
            ? Array(expiredBelow..<limit) : buckets.keys.filter { $0 < limit }.sorted()
        for key in due {
            for id in buckets.removeValue(forKey: key) ?? [] {
                if takeOffline(id, entries[id]!) != nil { modelsChanged = true }
            }
        }
        expiredBelow = limit
    }

    /// Forgets an agent.
    mutating func remove(_ id: String) {
        guard let entry = entries[id] else { return }
        if entry.online {
            let key = Self.bucket(entry.lastSeen)
            buckets[key]?.remove(id)
            if buckets[key]?.isEmpty == true { buckets[key] = nil }
            if takeOffline(id, entry, queued: false) != nil { modelsChanged = true }
        }
        installedCount -= entry.heartbeat.installedModels.count
        entries[id] = nil
    }

    /// The offline agent heard from longest ago: the first to go when the table is full.
    mutating func oldestOffline() -> String? {
        dropStaleQueueFront()
        return offlineQueue.first?.id
    }

    /// Takes the offline agents last heard from before `cutoff` off the queue, oldest first.
    mutating func dequeueOffline(lastSeenBefore cutoff: Date) -> [String] {
        var due: [String] = []
        while true {
            dropStaleQueueFront()
            guard let front = offlineQueue.first, front.lastSeen < cutoff else { return due }
            due.append(front.id)
            offlineQueue.removeFirst()
        }
    }

    private mutating func dropStaleQueueFront() {
        while let (id, lastSeen) = offlineQueue.first {
            if let entry = entries[id], !entry.online, entry.lastSeen == lastSeen { break }
            offlineQueue.removeFirst()
        }
    }

    /// The agent's model when it can take work: online, a model loaded, not loading another.
    private static func availableModel(_ heartbeat: Heartbeat) -> String? {
        heartbeat.currentLoad >= 0 && !heartbeat.modelSwapInProgress ? heartbeat.activeModel : nil
    }

    /// Withdraws the agent's contribution (its bucket is the caller's business); returns its
    /// model when no other agent here runs it. The tally is changed in place: a copy would copy
    /// the set of every agent running the model.
    @discardableResult
    private mutating func takeOffline(_ id: String, _ entry: Entry, queued: Bool = true) -> String? {
        entries[id]?.online = false
        onlineCount -= 1
        if queued { offlineQueue.append((id, entry.lastSeen)) }
        if entry.heartbeat.seeding != nil {
            for model in entry.heartbeat.installedModels {
                holders[model.sha256]?.remove(id)
                if holders[model.sha256]?.isEmpty == true { holders[model.sha256] = nil }
            }
        }
        guard let model = Self.availableModel(entry.heartbeat), tallies[model] != nil else { return nil }
        tallies[model]!.agents.remove(id)
        tallies[model]!.capacityMicros -= Self.micros(entry.heartbeat.activeModelParamSize)
        tallies[model]!.load -= entry.heartbeat.currentLoad
        guard tallies[model]!.agents.isEmpty else { return nil }
        tallies[model] = nil
        return model
    }

    var availability: [String: CapabilitySummary.ModelAvailability] {
        tallies.mapValues {
            .init(agentCount: $0.agents.count, totalParamCapacity: Double($0.capacityMicros) / 1_000_000,
                  avgLoad: Double($0.load) / Double($0.agents.count))
        }
    }

    /// The available agent running `model` with the lowest load (ties: the smallest id).
    func bestAgent(for model: String) -> Entry? {
        tallies[model]?.agents.lazy.compactMap { entries[$0] }
            .min { ($0.heartbeat.currentLoad, $0.heartbeat.agentId) < ($1.heartbeat.currentLoad, $1.heartbeat.agentId) }
    }
}
