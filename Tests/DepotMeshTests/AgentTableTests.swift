import Foundation
import MeshProtocol
import Testing
@testable import DepotMesh

/// The incrementally kept availability against a recount from scratch, over random
/// heartbeats, swaps, loads and expiries.
@Suite struct AgentTableTests {
    // The flag that sends a summary early is checked in the same random walk.
    func heartbeat(_ agent: Int, model: String?, load: Int, size: Double?, swapping: Bool = false) -> Heartbeat {
        Heartbeat(agentId: "agent-\(agent)", platform: "linux", freeMemoryMB: 1024, address: "http://127.0.0.1:\(agent)", activeModel: model,
                  activeModelParamSize: size, modelSwapInProgress: swapping, currentLoad: load, installedModels: [])
    }

    /// What the table must say, counted from every agent's latest heartbeat.
    func recount(_ latest: [String: (Heartbeat, Date)], expiredBelow cutoff: Date?) -> [String: CapabilitySummary.ModelAvailability] {
        var counts: [String: (agents: Int, micros: Int64, load: Int)] = [:]
        for (heartbeat, seen) in latest.values {
            if let cutoff, AgentTable.bucket(seen) < AgentTable.bucket(cutoff) { continue }
            guard heartbeat.currentLoad >= 0, !heartbeat.modelSwapInProgress, let model = heartbeat.activeModel else { continue }
            let old = counts[model] ?? (0, 0, 0)
            counts[model] = (old.agents + 1, old.micros + AgentTable.micros(heartbeat.activeModelParamSize), old.load + heartbeat.currentLoad)
        }
        return counts.mapValues {
            .init(agentCount: $0.agents, totalParamCapacity: Double($0.micros) / 1_000_000, avgLoad: Double($0.load) / Double($0.agents))
        }
    }

    @Test func keptTalliesMatchARecountAfterEveryChange() {
        var generator = SystemRandomNumberGenerator()
        let models: [String?] = ["qwen:1.5b", "qwen:7b", "llama:3b", nil]
        let sizes: [Double?] = [0.1, 1.5, 7, nil, 0.3]
        for _ in 0..<20 {
            var table = AgentTable()
            var latest: [String: (Heartbeat, Date)] = [:]
            var now = Date(timeIntervalSince1970: 1_800_000_000)
            var cutoff: Date?
            for step in 0..<600 {
                now += Double.random(in: 0...0.05, using: &generator)
                let modelsBefore = Set(table.tallies.keys)
                table.modelsChanged = false
                if Int.random(in: 0..<10, using: &generator) == 0 {
                    let expiry = now - 1.5
                    table.expire(before: expiry)
                    if cutoff.map({ expiry > $0 }) ?? true { cutoff = expiry }
                } else {
                    let beat = heartbeat(Int.random(in: 0..<40, using: &generator), model: models.randomElement(using: &generator)!,
                                         load: Int.random(in: -1...5, using: &generator), size: sizes.randomElement(using: &generator)!,
                                         swapping: Int.random(in: 0..<8, using: &generator) == 0)
                    table.record(beat, publicKey: "", at: now)
                    latest[beat.agentId] = (beat, now)
                }
                let expected = recount(latest, expiredBelow: cutoff)
                #expect(table.availability == expected, "step \(step)")
                let online = latest.values.filter { cutoff == nil || AgentTable.bucket($0.1) >= AgentTable.bucket(cutoff!) }
                #expect(table.onlineCount == online.count, "step \(step)")
                #expect(table.modelsChanged == (Set(table.tallies.keys) != modelsBefore), "step \(step): flagged only when the set of models changes")
                if table.availability != expected || table.onlineCount != online.count { return }
            }
        }
    }

    @Test func anAgentGoesOfflineWithinATenthOfASecondOfItsDeadlineAndBackOnItsNextBeat() {
        var table = AgentTable()
        let seen = Date(timeIntervalSince1970: 1_800_000_000.05)
        table.record(heartbeat(1, model: "qwen:7b", load: 2, size: 7), publicKey: "", at: seen)
        table.record(heartbeat(2, model: "qwen:7b", load: 0, size: 7), publicKey: "", at: seen)
        table.expire(before: seen)
        #expect(table.availability["qwen:7b"]?.agentCount == 2, "not yet past its deadline")
        #expect(table.bestAgent(for: "qwen:7b")?.heartbeat.agentId == "agent-2", "the lower load wins")
        table.record(heartbeat(2, model: "qwen:7b", load: 0, size: 7), publicKey: "", at: seen + 0.5)
        table.expire(before: seen + 0.1)
        #expect(table.availability["qwen:7b"] == .init(agentCount: 1, totalParamCapacity: 7, avgLoad: 0))
        #expect(table.entries["agent-1"]?.online == false, "offline, still listed")
        #expect(table.bestAgent(for: "qwen:7b")?.heartbeat.agentId == "agent-2")
        table.record(heartbeat(1, model: "qwen:7b", load: -1, size: 7, swapping: true), publicKey: "", at: seen + 0.6)
        #expect(table.onlineCount == 2, "back online with its next beat")
        #expect(table.availability["qwen:7b"]?.agentCount == 1, "but loading, so not available")
        #expect(table.bestAgent(for: "llama:3b") == nil)
    }
}
