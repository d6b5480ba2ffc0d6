import DepotTestSupport
import Foundation
import MeshProtocol
import ModelStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Agents seeding models to peers, checked by a third party: libtorrent (Debian's
/// python3-libtorrent) computes BitTorrent v2 roots and downloads from agents as web seeds.
@Suite(.serialized) struct SeedingTests {
    static let peerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/libtorrent_peer.py").path

    /// Debian's python, where python3-libtorrent lives.
    func libtorrent(_ arguments: [String]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.peerScript] + arguments
        let out = try OutputFile()
        process.standardOutput = out.handle
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let object = try JSONSerialization.jsonObject(with: Data(out.contents().utf8)) as? [String: Any] else {
            throw DepotFailure(message: "libtorrent_peer.py \(arguments) failed: \(out.contents())")
        }
        return object
    }

    /// curl's status, headers and body (to a file) for one request.
    func curl(_ url: String, _ options: [String] = []) throws -> (status: Int, headers: String, body: Data) {
        let workspace = NSTemporaryDirectory() + "curl-\(UUID().uuidString)"
        defer { unlink(workspace + ".h"); unlink(workspace + ".b") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-D", workspace + ".h", "-o", workspace + ".b", "-w", "%{http_code}"] + options + [url]
        let out = try OutputFile()
        process.standardOutput = out.handle
        try process.run()
        process.waitUntilExit()
        return (Int(out.contents()) ?? 0, (try? String(contentsOfFile: workspace + ".h", encoding: .utf8)) ?? "",
                FileManager.default.contents(atPath: workspace + ".b") ?? Data())
    }

    @Test func piecesRootsAndLayersAreTheOnesLibtorrentMakes() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var generator = SystemRandomNumberGenerator()
        // Around each boundary: one block, one block and a byte, pieces with a short last one.
        for size in [1, 16_384, 16_385, 200_000, (1 << 20) + 5] {
            let path = workspace.path + "/f\(size)"
            try Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: path))
            for pieceSize in [16_384, 65_536, 1 << 20] {
                let theirs = try libtorrent(["root", path, String(pieceSize)])
                let ours = try workspace.depot.run(["catalog", "pieces", path, "--piece-size", String(pieceSize), "--layer"], useStore: false)
                let object = try JSONSerialization.jsonObject(with: Data(ours.stdout.utf8)) as? [String: Any] ?? [:]
                #expect(object["piecesRoot"] as? String == theirs["piecesRoot"] as? String, "size \(size), pieces of \(pieceSize)")
                // libtorrent leaves out the layer of a file of one piece, whose layer is its root.
                let layer = theirs["pieceLayer"] as? [String] ?? []
                #expect(object["pieceLayer"] as? [String] == (layer.isEmpty ? [theirs["piecesRoot"] as! String] : layer))
            }
        }
        let refused = try workspace.depot.run(["catalog", "pieces", workspace.path + "/f1", "--piece-size", "1000"], useStore: false)
        #expect(refused.status == 2 && refused.stderr.contains("power of two"))
    }

    @Test func aSeedingAgentServesVerifiedBlobsByRangeWithinItsLimitsAndNothingElse() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let model = try workspace.bigModel("big.gguf", megabytes: 3)
        #expect(try workspace.depot.run(["import", model, "--name", "big:one"]).status == 0)
        let bytes = FileManager.default.contents(atPath: model)!
        let digest = try sha256sum(model)

        let quiet = try AgentProcess(workspace)
        #expect(try curl(quiet.base + "/p2p/blobs/sha256/\(digest)").status == 403, "seeding is opt-in")
        quiet.stop()

        let agent = try AgentProcess(workspace, arguments: ["--seed", "--seed-uploads", "1", "--seed-rate", "1M"])
        defer { agent.stop() }
        let blob = agent.base + "/p2p/blobs/sha256/\(digest)"
        let head = try curl(blob, ["-I"])
        #expect(head.status == 200 && head.headers.contains("ETag: \"\(digest)\"") && head.headers.contains("Content-Length: \(bytes.count)"))
        let part = try curl(blob, ["-r", "100-199"])
        #expect(part.status == 206 && part.body == bytes[100..<200] && part.headers.contains("Content-Range: bytes 100-199/\(bytes.count)"))
        #expect(try curl(blob, ["-r", "-10"]).body == bytes.suffix(10))
        let beyond = try curl(blob, ["-r", "\(bytes.count)-"])
        #expect(beyond.status == 416 && beyond.headers.contains("Content-Range: bytes */\(bytes.count)"))
        let otherVersion = try curl(blob, ["-r", "0-9", "-H", "If-Range: \"feed\""])
        #expect(otherVersion.status == 200 && otherVersion.body == bytes, "an If-Range naming other bytes gets the whole file")
        #expect(try curl(agent.base + "/p2p/blobs/sha256/" + String(repeating: "0", count: 64)).status == 404)
        #expect(try curl(agent.base + "/p2p/blobs/sha256/ABC").status == 400)

        // One upload slot at 1 MiB/s: a second peer is told to come back, and the first gets
        // its 3 MB no faster than the cap allows (256 KiB of burst).
        let started = Date()
        let first = Process()
        first.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        first.arguments = ["-s", "-o", workspace.path + "/first", blob]
        try first.run()
        usleep(300_000)
        let second = try curl(blob)
        #expect(second.status == 503 && second.headers.contains("Retry-After: 1"))
        first.waitUntilExit()
        let elapsed = Date().timeIntervalSince(started)
        #expect(FileManager.default.contents(atPath: workspace.path + "/first") == bytes)
        #expect(elapsed >= Double(bytes.count - (256 << 10)) / Double(1 << 20) * 0.9, "the rate cap held: \(elapsed) s")
        let metrics = try agent.get("/metrics").body
        #expect(metrics.contains("depot_seed_refused_total{reason=\"busy\"} 1"))
        #expect(metrics.contains("depot_seed_refused_total{reason=\"notHeld\"} 1"))

        // Our own downloader takes an agent as a source.
        let other = Workspace()
        defer { other.remove() }
        let pulled = try other.depot.run(["pull", blob, "--sha256", digest, "--name", "big:copy", "--connections", "1"])
        #expect(pulled.status == 0, "\(pulled.stderr)")

        // A blob whose file changed behind the store's back is never served.
        agent.stop()
        let stored = workspace.path + "/store/blobs/sha256/" + digest
        chmod(stored, 0o644)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: stored))
        try handle.seek(toOffset: 1000)
        try handle.write(contentsOf: Data([bytes[1000] ^ 0xFF]))
        try handle.close()
        let restarted = try AgentProcess(workspace, arguments: ["--seed"])
        defer { restarted.stop() }
        #expect(try curl(restarted.base + "/p2p/blobs/sha256/\(digest)").status == 404)
    }

    @Test func libtorrentDownloadsAModelFromSeedingAgentsAndRejectsALiarsPieces() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let model = try workspace.bigModel("big.gguf", megabytes: 8)
        #expect(try workspace.depot.run(["import", model, "--name", "big:one"]).status == 0)
        let digest = try sha256sum(model)
        let agent = try AgentProcess(workspace, arguments: ["--seed"])
        defer { agent.stop() }
        // The liar serves the same file with byte 1000 flipped (Fixtures/fault_server.py).
        let liarRoot = workspace.path + "/liar"
        try FileManager.default.createDirectory(atPath: liarRoot, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: model, toPath: liarRoot + "/big.gguf")
        let liar = try FaultServer(root: liarRoot)
        defer { liar.stop() }

        let torrent = workspace.path + "/big.torrent"
        let written = try workspace.depot.run(["torrent", "big:one", "--web-seed", "http://127.0.0.1:\(liar.port)/corrupt/",
                                               "--piece-size", "65536", "-o", torrent])
        #expect(written.status == 0, "\(written.stderr)")
        let save = workspace.path + "/download"
        try FileManager.default.createDirectory(atPath: save, withIntermediateDirectories: true)
        // First the liar alone; once a piece fails its hash, the honest agent joins.
        let outcome = try libtorrent(["fetch", torrent, save, "90", agent.base + "/p2p/blobs/sha256/\(digest)/file/"])
        #expect(outcome["v2"] as? Bool == true)
        #expect(outcome["complete"] as? Bool == true, "\(outcome)")
        #expect((outcome["hashFailures"] as? Int ?? 0) >= 1, "the liar's piece was caught: \(outcome)")
        #expect(try sha256sum(save + "/big.gguf") == digest)
        let metrics = try agent.get("/metrics").body
        let sent = metrics.split(separator: "\n").first { $0.hasPrefix("depot_seed_bytes_total ") }.flatMap { UInt64($0.split(separator: " ")[1]) }
        #expect((sent ?? 0) > 0, "the agent served the pieces the liar could not")
    }
}

/// Agents pulling a model from each other through a coordinator, with nginx as the CDN and a
/// catalog carrying the weights' BEP 52 pieces root.
@Suite(.serialized) struct SwarmTests {
    struct Mesh {
        let place = Workspace()
        let nginx: Nginx
        let coordinator: AgentProcess
        let model: String
        let digest: String
        let size: Int

        /// `cdnDown`: the catalog's download address refuses connections (nginx still serves the
        /// catalog); `crawlingCDN`: it sends 384 KB/s a connection; `layerInCatalog`: the
        /// catalog carries the piece layer, so agents need no peer to hand it to them.
        /// `coordinatorArguments` are given the coordinator's key (made in `place` before it starts)
        /// and return more arguments for it.
        init(megabytes: Int = 24, cdnDown: Bool = false, crawlingCDN: Bool = false, layerInCatalog: Bool = false,
             coordinatorArguments: (String) throws -> [String] = { _ in [] }) throws {
            let www = place.path + "/www"
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            model = try place.bigModel("www/big.gguf", megabytes: megabytes)
            digest = try sha256sum(model)
            size = FileManager.default.contents(atPath: model)!.count
            let pieces = try place.depot.run(["catalog", "pieces", model, "--piece-size", "1048576", "--layer"], useStore: false)
            let description = try JSONSerialization.jsonObject(with: Data(pieces.stdout.utf8)) as? [String: Any]
            let root = try #require(description?["piecesRoot"] as? String)
            let layer = try #require(description?["pieceLayer"] as? [String])
            let manifest = layerInCatalog
                ? #", "pieces": {"pieceSize": 1048576, "scheme": "bep52", "sha256": ["# + layer.map { "\"\($0)\"" }.joined(separator: ",") + "]}"
                : ""
            nginx = try Nginx(root: www)
            let address = cdnDown ? "http://127.0.0.1:9/big.gguf" : nginx.url(crawlingCDN ? "crawl/big.gguf" : "big.gguf")
            try Data("""
                {"version": 1, "models": [{"modelId": "big:swarm", "displayName": "big", "paramSize": 0.00004, "quantization": "F32",
                 "fileSizeBytes": \(size), "downloadUrl": "\(address)", "checksumSha256": "\(digest)", "platform": "all",
                 "languages": ["en"], "minMemoryMB": 1, "piecesRoot": "\(root)", "pieceSize": 1048576\(manifest)}]}
                """.utf8).write(to: URL(fileURLWithPath: www + "/catalog.json"))
            let key = try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/coordinator"]).stdout
                .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            coordinator = try AgentProcess(place, command: "coordinator", arguments: ["--state", place.path + "/coordinator", "--heartbeat-interval", "1"]
                                           + coordinatorArguments(key))
        }

        /// An agent that seeds, with its own store (holding the model when `holding`), of the
        /// mesh's coordinator unless given another.
        func agent(_ workspace: Workspace, holding: Bool, _ more: [String] = [], of coordinator: AgentProcess? = nil) throws -> AgentProcess {
            if holding { #expect(try workspace.depot.run(["import", model, "--name", "big:swarm"]).status == 0) }
            return try AgentProcess(workspace, arguments: ["--coordinator", (coordinator ?? self.coordinator).base, "--heartbeat-interval", "1", "--seed",
                                                           "--catalog", nginx.url("catalog.json")] + more)
        }

        /// Waits until the coordinator lists `count` seeders of the model.
        func waitForSeeders(_ count: Int) throws {
            try waitUntil(timeout: 20) {
                let agents = try coordinator.get("/mesh/agents?installed=1").object["agents"] as? [[String: Any]] ?? []
                return agents.filter { row in
                    let installed = (row["heartbeat"] as? [String: Any])?["installedModels"] as? [[String: Any]] ?? []
                    return installed.contains { $0["sha256"] as? String == digest }
                }.count >= count && agents.count >= count + 1
            }
        }

        /// Waits until the agent serving `workspace`'s store has registered.
        func waitForAgent(of workspace: Workspace) throws {
            let id = try workspace.depot.run(["serve", "--print-identity"]).stdout.split(separator: " ").first.map(String.init) ?? "?"
            try waitUntil(timeout: 20) {
                let agents = try coordinator.get("/mesh/agents").object["agents"] as? [[String: Any]] ?? []
                return agents.contains { ($0["heartbeat"] as? [String: Any])?["agentId"] as? String == id && $0["online"] as? Bool == true }
            }
        }

        /// Starts a pull through the agent's job API; its job id.
        func startPull(_ agent: AgentProcess) throws -> String {
            let submitted = try agent.post("/jobs", #"{"model": "big:swarm"}"#)
            #expect(submitted.status == 202)
            return submitted.object["id"] as? String ?? ""
        }

        /// Pulls the model through the agent's job API and waits until it is in its store.
        func pull(_ agent: AgentProcess, into workspace: Workspace) throws {
            let submitted = try agent.post("/jobs", #"{"model": "big:swarm"}"#)
            #expect(submitted.status == 202)
            do {
                try waitUntil(timeout: 60) { try workspace.depot.run(["show", "big:swarm"]).status == 0 }
            } catch {
                throw DepotFailure(message: "the pull did not finish: \(submitted.body) \(try agent.get("/jobs").body) \(try agent.get("/jobs/" + (submitted.object["id"] as? String ?? "")).body)")
            }
            let entry = try workspace.depot.json(ModelEntry.self, ["show", "big:swarm"])
            #expect(entry.weights?.sha256 == digest && entry.status == .ready)
        }

        /// Two agents that pulled the model at once: both hold it, verified, the CDN served less
        /// than one and a half copies (two pulls from it alone take two), and each sent the other pieces.
        func expectBothPulledAndShared(_ first: (Workspace, AgentProcess), _ second: (Workspace, AgentProcess)) throws {
            try waitUntil(timeout: 90) {
                try first.0.depot.run(["show", "big:swarm"]).status == 0 && second.0.depot.run(["show", "big:swarm"]).status == 0
            }
            for workspace in [first.0, second.0] {
                let entry = try workspace.depot.json(ModelEntry.self, ["show", "big:swarm"])
                #expect(entry.weights?.sha256 == digest && entry.status == .ready)
            }
            let fromCDN = nginx.bytesServed("big.gguf")
            let sent = (try SwarmTests.seedBytes(first.1), try SwarmTests.seedBytes(second.1))
            #expect(fromCDN < UInt64(size) * 3 / 2, "the CDN served \(fromCDN) bytes for two pulls of \(size)")
            #expect(sent.0 > 0 && sent.1 > 0, "each sent the other pieces: \(sent.0) and \(sent.1)")
        }

        func remove() {
            coordinator.stop()
            nginx.stop()
            place.remove()
        }
    }

    static func seedBytes(_ agent: AgentProcess) throws -> Int {
        let metrics = try agent.get("/metrics").body
        return metrics.split(separator: "\n").first { $0.hasPrefix("depot_seed_bytes_total ") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    @Test func agentsPullAModelFromEachOtherAndTheCDNServesAlmostNothing() throws {
        let mesh = try Mesh()
        defer { mesh.remove() }
        let (a, b, c) = (Workspace(), Workspace(), Workspace())
        defer { [a, b, c].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true)
        defer { agentA.stop() }
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)

        try mesh.pull(agentB, into: b)
        let fromCDNForB = mesh.nginx.bytesServed("big.gguf")
        #expect(fromCDNForB < UInt64(mesh.size / 4), "B took \(fromCDNForB) of \(mesh.size) bytes from the CDN")
        #expect(try Self.seedBytes(agentA) >= mesh.size * 3 / 4)

        let agentC = try mesh.agent(c, holding: false)
        defer { agentC.stop() }
        try mesh.waitForSeeders(2)
        try mesh.pull(agentC, into: c)
        let fromCDN = mesh.nginx.bytesServed("big.gguf")
        #expect(fromCDN < UInt64(mesh.size / 2), "A, B and C together took \(fromCDN) bytes from the CDN for two pulls of \(mesh.size)")
        #expect(try Self.seedBytes(agentA) + Self.seedBytes(agentB) >= mesh.size * 3 / 2, "both pulls came mostly from peers")

        // Seed credits: B and C signed a receipt per verified piece, A and B handed them to the
        // coordinator after a heartbeat, and they were released once B and C listed the model.
        var balances: [(credits: Double, bytes: UInt64)] = []
        try waitUntil(timeout: 20) {
            balances = try [a, b].map { workspace in
                let run = try workspace.depot.run(["credits", "--coordinator", mesh.coordinator.base, "--json"])
                guard let balance = try? JSONDecoder().decode(CreditBalance.self, from: Data(run.stdout.utf8)) else {
                    throw DepotFailure(message: "depot credits: \(run.status) \(run.stdout) \(run.stderr)")
                }
                return (balance.credits, balance.bytesCredited)
            }
            let sent = [UInt64(try Self.seedBytes(agentA)), UInt64(try Self.seedBytes(agentB))]
            return balances[0].bytes + 8 << 20 >= sent[0] && balances[1].bytes + 8 << 20 >= sent[1]
        }
        let seeded = [try Self.seedBytes(agentA), try Self.seedBytes(agentB)]
        for (balance, sent) in zip(balances, seeded) {
            #expect(balance.bytes <= UInt64(sent), "credited \(balance.bytes) of \(sent) bytes sent")
            // Rarity: A was the sole seeder for B (×2), A and B were two for C (×1.5).
            let perGiB = balance.credits / (Double(balance.bytes) / Double(1 << 30))
            #expect(balance.bytes == 0 || (1.5 - 1e-9...2 + 1e-9).contains(perGiB), "\(balance.credits) credits for \(balance.bytes) bytes")
        }
        #expect(balances[0].bytes + balances[1].bytes <= 2 * UInt64(mesh.size), "two downloads credited at most their size each")
        let text = try a.depot.run(["credits", "--coordinator", mesh.coordinator.base])
        #expect(text.status == 0 && text.stdout.contains(" credits for "))
    }

    /// Two federated coordinators: A seeds at the far one, B asks its own for seeders and gets
    /// A with the far one's ticket, pulls from A, and A is credited at the far coordinator once
    /// B's coordinator says B lists the model. A request from outside the federation, a forged
    /// one and a replayed one are refused and counted.
    @Test func federatedCoordinatorsHandOutEachOthersSeedersAndCreditThem() throws {
        let far = Workspace()
        defer { far.remove() }
        let ports = (near: freePort(), far: freePort())
        let farKey = try far.depot.run(["coordinator", "--print-identity", "--state", far.path + "/coordinator"]).stdout
            .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        var farCoordinator: AgentProcess?
        let mesh = try Mesh { nearKey in
            farCoordinator = try AgentProcess(far, command: "coordinator", arguments: [
                "--state", far.path + "/coordinator", "--port", "\(ports.far)", "--heartbeat-interval", "1",
                "--peer", "http://127.0.0.1:\(ports.near)#\(nearKey)"])
            return ["--port", "\(ports.near)", "--peer", "http://127.0.0.1:\(ports.far)#\(farKey)"]
        }
        defer { mesh.remove() }
        let farSide = try #require(farCoordinator)
        defer { farSide.stop() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true, of: farSide)
        defer { agentA.stop() }
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try waitUntil(timeout: 20) {
            let agents = try farSide.get("/mesh/agents?installed=1").object["agents"] as? [[String: Any]] ?? []
            return agents.contains { (($0["heartbeat"] as? [String: Any])?["installedModels"] as? [[String: Any]])?.isEmpty == false }
        }
        try mesh.waitForAgent(of: b)
        #expect(try mesh.coordinator.get("/mesh/agents").object["total"] as? Int == 1, "A is not B's coordinator's agent")

        try mesh.pull(agentB, into: b)
        let fromCDN = mesh.nginx.bytesServed("big.gguf")
        #expect(fromCDN < UInt64(mesh.size / 4), "B took \(fromCDN) of \(mesh.size) bytes from the CDN")
        #expect(try Self.seedBytes(agentA) >= mesh.size * 3 / 4, "A, at the far coordinator, sent B the model")
        #expect(try farSide.get("/mesh/stats").object["federatedTickets"] as? Int ?? 0 >= 1)

        // A's receipts go to the far coordinator, which asks B's whether B lists the model.
        var balance: CreditBalance?
        try waitUntil(timeout: 30) {
            let run = try a.depot.run(["credits", "--coordinator", farSide.base, "--json"])
            balance = try? JSONDecoder().decode(CreditBalance.self, from: Data(run.stdout.utf8))
            return (balance?.bytesCredited ?? 0) + 8 << 20 >= UInt64(try Self.seedBytes(agentA))
        }
        let sent = try Self.seedBytes(agentA)
        #expect((balance?.bytesCredited ?? 0) <= UInt64(sent) && balance?.pendingCredits == 0, "\(String(describing: balance)) for \(sent) bytes")

        // Only the federation's coordinators may ask, with their own signature, once.
        let outsider = MeshIdentity()
        let stranger = try FederatedSeedersRequest(coordinator: outsider, downloader: String(repeating: "a", count: 16), sha256: mesh.digest, size: nil, limit: 4)
        #expect(try farSide.post("/mesh/federation/seeders", String(decoding: JSONEncoder().encode(stranger), as: UTF8.self)).status == 403)
        let nearIdentity = try MeshIdentity.load(path: mesh.place.path + "/coordinator/coordinator.key")
        var forged = try FederatedSeedersRequest(coordinator: nearIdentity, downloader: String(repeating: "b", count: 16), sha256: mesh.digest, size: nil, limit: 4)
        let honest = try farSide.post("/mesh/federation/seeders", String(decoding: JSONEncoder().encode(forged), as: UTF8.self))
        #expect(honest.status == 200 && (honest.object["seeders"] as? [[String: Any]])?.count == 1)
        let replayed = try farSide.post("/mesh/federation/seeders", String(decoding: JSONEncoder().encode(forged), as: UTF8.self))
        #expect(replayed.status == 409)
        forged.downloader = String(repeating: "c", count: 16)
        #expect(try farSide.post("/mesh/federation/seeders", String(decoding: JSONEncoder().encode(forged), as: UTF8.self)).status == 403)
        let refused = try farSide.get("/mesh/stats").object["federationRefused"] as? [String: Int] ?? [:]
        #expect(refused["notAPeer"] == 1 && refused["forged"] == 1 && refused["replayed"] == 1, "\(refused)")

        // Two agents of the near coordinator report A, each on its own far ticket: the near one
        // passes the reports on, and the far one bans A at the second and hands it out no more.
        let farAgents = try farSide.get("/mesh/agents").object["agents"] as? [[String: Any]]
        let seederA = try #require((farAgents?.first?["heartbeat"] as? [String: Any])?["agentId"] as? String)
        func farTicket(for agent: MeshAgent) throws -> String? {
            let answer = try mesh.coordinator.get("/mesh/seeders?sha256=\(mesh.digest)", headers: ["Authorization: Bearer \(agent.credential ?? "")"])
            return (answer.object["seeders"] as? [[String: Any]])?.first { $0["agentId"] as? String == seederA }?["ticket"] as? String
        }
        var reporters = [MeshAgent(), MeshAgent(), MeshAgent()]
        for index in reporters.indices { #expect(try reporters[index].register(with: mesh.coordinator).status == 200) }
        let firstTicket = try #require(try farTicket(for: reporters[0]))
        let stolen = try mesh.coordinator.post("/mesh/reports", #"{"ticket":"\#(firstTicket)","piece":3}"#,
                                               headers: ["Authorization: Bearer \(reporters[1].credential ?? "")"])
        #expect(stolen.status == 403, "another agent's ticket: \(stolen.body)")
        for (index, expected) in ["recorded", "banned"].enumerated() {
            let ticket = try #require(try farTicket(for: reporters[index]))
            let reply = try mesh.coordinator.post("/mesh/reports", #"{"ticket":"\#(ticket)","piece":3}"#,
                                                  headers: ["Authorization: Bearer \(reporters[index].credential ?? "")"])
            #expect(reply.status == 200 && reply.object["status"] as? String == expected, "\(reply.status) \(reply.body)")
        }
        let farStats = try farSide.get("/mesh/stats").object
        #expect(farStats["reports"] as? Int == 2 && farStats["seedersBanned"] as? Int == 1, "\(farStats)")
        #expect(try mesh.coordinator.get("/mesh/stats").object["reportsPassedOn"] as? Int == 2)
        #expect(try farTicket(for: reporters[2]) == nil, "a banned seeder is not handed out across the federation")
    }

    /// No coordinator: B hears A's nearby record name the weights (by prefix) and pulls them
    /// from A, asked directly on the LAN, with the CDN as the fallback it barely needs.
    @Test func aNearbySeederIsAskedDirectlyWithoutACoordinator() throws {
        let mesh = try Mesh()
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        #expect(try a.depot.run(["import", mesh.model, "--name", "big:swarm"]).status == 0)
        let discovery = ["--discovery", "--discovery-interface", "127.0.0.1", "--discovery-port", "\(freePort())", "--announce-interval", "0.3",
                         "--catalog", mesh.nginx.url("catalog.json")]
        let agentA = try AgentProcess(a, arguments: discovery + ["--seed"])
        defer { agentA.stop() }
        let agentB = try AgentProcess(b, arguments: discovery)
        defer { agentB.stop() }
        try waitUntil {
            let peers = try agentB.get("/mesh/peers").json as? [[String: Any]] ?? []
            return peers.first?["address"] as? String == agentA.base
                && (peers.first?["seeds"] as? [String])?.contains(String(mesh.digest.prefix(16))) == true
        }
        #expect((try agentA.get("/mesh/peers").json as? [[String: Any]])?.first?["seeds"] as? [String] == [], "B does not seed")

        try mesh.pull(agentB, into: b)
        let fromCDN = mesh.nginx.bytesServed("big.gguf")
        #expect(fromCDN < UInt64(mesh.size / 4), "B took \(fromCDN) of \(mesh.size) bytes from the CDN")
        #expect(try Self.seedBytes(agentA) >= mesh.size * 3 / 4)
    }

    /// `depot pull --peer`: the CLI takes the weights from an agent it is pointed at (the layer
    /// from the peer, checked against the catalog's pieces root), and refuses a peer it could not
    /// check.
    @Test func theCommandLinePullTakesTheWeightsFromAGivenPeer() throws {
        let mesh = try Mesh()
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true)
        defer { agentA.stop() }
        let catalog = ["--catalog", mesh.nginx.url("catalog.json")]

        let bad = try b.depot.run(["pull", "big:swarm", "--peer", "10.0.0.5:4302"] + catalog)
        #expect(bad.status == 64 && bad.stderr.contains("--peer takes an agent's address"), "\(bad.stderr)")
        let noHash = try b.depot.run(["pull", mesh.nginx.url("big.gguf"), "--name", "big:url", "--peer", agentA.base])
        #expect(noHash.status == 2 && noHash.stderr.contains("--peer needs the weights' SHA-256"), "\(noHash.stderr)")
        let nobody = try b.depot.run(["pull", "big:swarm", "--peer", "http://127.0.0.1:\(freePort())"] + catalog)
        #expect(nobody.status == 2 && nobody.stderr.contains("no peer answered"), "\(nobody.stderr)")
        #expect(mesh.nginx.bytesServed("big.gguf") == 0, "nothing was fetched for the refused pulls")

        let pulled = try b.depot.run(["pull", "big:swarm", "--peer", agentA.base + "/"] + catalog)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        let entry = try b.depot.json(ModelEntry.self, ["show", "big:swarm"])
        #expect(entry.weights?.sha256 == mesh.digest && entry.status == .ready)
        let fromCDN = mesh.nginx.bytesServed("big.gguf")
        #expect(fromCDN < UInt64(mesh.size / 4), "the CLI took \(fromCDN) of \(mesh.size) bytes from the CDN")
        #expect(try Self.seedBytes(agentA) >= mesh.size * 3 / 4)
    }

    /// No coordinator either: two agents pulling at once name the blob in their nearby records
    /// while they download, and each fetches the other's verified pieces.
    @Test func nearbyAgentsPullingTogetherShareWhatTheyHaveVerified() throws {
        let mesh = try Mesh(megabytes: 24, crawlingCDN: true, layerInCatalog: true)
        defer { mesh.remove() }
        let (b, c) = (Workspace(), Workspace())
        defer { [b, c].forEach { $0.remove() } }
        let discovery = ["--discovery", "--discovery-interface", "127.0.0.1", "--discovery-port", "\(freePort())", "--announce-interval", "0.3",
                         "--catalog", mesh.nginx.url("catalog.json"), "--seed"]
        let agentB = try AgentProcess(b, arguments: discovery)
        defer { agentB.stop() }
        let agentC = try AgentProcess(c, arguments: discovery)
        defer { agentC.stop() }
        try waitUntil { try (agentB.get("/mesh/peers").json as? [Any])?.count == 1 && (agentC.get("/mesh/peers").json as? [Any])?.count == 1 }
        _ = try mesh.startPull(agentB)
        _ = try mesh.startPull(agentC)
        try waitUntil(timeout: 20) {
            (try agentC.get("/mesh/peers").json as? [[String: Any]])?.first?["seeds"] as? [String] == [String(mesh.digest.prefix(16))]
        }
        try mesh.expectBothPulledAndShared((b, agentB), (c, agentC))
    }

    /// The web UI's mesh panel, in headless Chromium, shows what A earned by seeding to B (from
    /// the coordinator), what it sent, B among its nearby peers and B as a nearby seeder of the
    /// model once B holds it.
    @Test func theMeshPanelShowsCreditsPeersAndNearbySeeders() throws {
        let mesh = try Mesh()
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let discovery = ["--discovery", "--discovery-interface", "127.0.0.1", "--discovery-port", "\(freePort())", "--announce-interval", "0.3"]
        let agentA = try mesh.agent(a, holding: true, discovery)
        defer { agentA.stop() }
        let agentB = try mesh.agent(b, holding: false, discovery)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)
        try mesh.pull(agentB, into: b)
        var credits = 0.0
        try waitUntil(timeout: 20) {
            let run = try a.depot.run(["credits", "--coordinator", mesh.coordinator.base, "--json"])
            credits = (try? JSONDecoder().decode(CreditBalance.self, from: Data(run.stdout.utf8)))?.credits ?? 0
            return credits > 0
        }
        let overview = try agentA.get("/mesh/overview").object
        #expect(overview["agentId"] as? String == (try a.depot.run(["serve", "--print-identity"]).stdout.split(separator: " ").first.map(String.init)))
        #expect(((overview["seeding"] as? [String: Any])?["bytesSent"] as? Int ?? 0) >= mesh.size / 2)

        let artifacts = try testArtifacts()
        let check = try AgentTests().run(["python3", AgentTests().fixture("ui_mesh_check.py"), agentA.base, artifacts + "/web-ui-mesh.png",
                                          agentB.base, "big:swarm", String(credits / 2)])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    }

    @Test func agentsPullingTogetherFromASlowCDNShareTheirVerifiedPiecesAndNothingElse() throws {
        let mesh = try Mesh(megabytes: 24, crawlingCDN: true, layerInCatalog: true)
        defer { mesh.remove() }
        let (b, c) = (Workspace(), Workspace())
        defer { [b, c].forEach { $0.remove() } }
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        let agentC = try mesh.agent(c, holding: false)
        defer { agentC.stop() }
        try mesh.waitForAgent(of: b)
        try mesh.waitForAgent(of: c)
        // Neither holds the model: each pulls pieces nobody has from the CDN, and the other's
        // verified ones from the other, found through the coordinator as the pulls run.
        _ = try mesh.startPull(agentB)
        _ = try mesh.startPull(agentC)

        // Midway, B offers exactly the pieces it has verified: a piece it lists is the file's
        // bytes, one it does not list is refused.
        let blobAddress = agentB.base + "/p2p/blobs/sha256/\(mesh.digest)"
        var map: HaveMap?
        try waitUntil(timeout: 30) {
            let answer = try SeedingTests().curl(blobAddress + "/pieces?pieceSize=1048576")
            map = answer.status == 200 ? try? JSONDecoder().decode(HaveMap.self, from: answer.body) : nil
            guard let map, !map.complete else { return false }
            return (1..<map.have.count - 1).contains(map.have.population)
        }
        let midway = try #require(map)
        #expect(midway.size == UInt64(mesh.size) && midway.pieceSize == 1 << 20)
        let held = try #require((0..<midway.have.count).first { midway.have.contains($0) })
        let missing = try #require((0..<midway.have.count).first { !midway.have.contains($0) })
        let file = try #require(FileManager.default.contents(atPath: mesh.model))
        let served = try SeedingTests().curl(blobAddress, ["-r", "\(held << 20)-\((held << 20) + 99)"])
        #expect(served.status == 206 && served.body == file[(held << 20)..<(held << 20) + 100])
        let refused = try SeedingTests().curl(blobAddress, ["-r", "\(missing << 20)-\((missing << 20) + 99)"])
        #expect(refused.status == 416 || (refused.status == 206 && refused.body == file[(missing << 20)..<(missing << 20) + 100]),
                "an unverified piece is refused (or was verified since): \(refused.status)")

        try mesh.expectBothPulledAndShared((b, agentB), (c, agentC))
        #expect(try mesh.coordinator.get("/mesh/stats").object["ticketsIssued"] as? Int ?? 0 >= 2)
    }

    @Test func aLyingSeedersPieceIsCaughtAndTheCDNFillsIn() throws {
        let mesh = try Mesh(megabytes: 8)
        defer { mesh.remove() }
        let (liarStore, downloaderStore) = (Workspace(), Workspace())
        defer { [liarStore, downloaderStore].forEach { $0.remove() } }
        // A copy: an import hardlinks, and the CDN's file must stay honest.
        try FileManager.default.copyItem(atPath: mesh.model, toPath: liarStore.path + "/big.gguf")
        #expect(try liarStore.depot.run(["import", liarStore.path + "/big.gguf", "--name", "big:swarm"]).status == 0)
        let liar = try mesh.agent(liarStore, holding: false)
        defer { liar.stop() }
        // The liar computes its piece layer while its blob is honest (and keeps it); then the
        // blob changes behind its store's back with its mtime put back, so it still serves it
        // as verified: an honest layer, and one flipped byte in piece 5.
        let layer = try SeedingTests().curl(liar.base + "/p2p/blobs/sha256/\(mesh.digest)/layer?pieceSize=1048576")
        #expect(layer.status == 200 && layer.body.count == 32 * ((mesh.size + (1 << 20) - 1) >> 20))
        let blob = liarStore.path + "/store/blobs/sha256/" + mesh.digest
        var status = stat()
        stat(blob, &status)
        chmod(blob, 0o644)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: blob))
        try handle.seek(toOffset: 5 << 20 + 100)
        let original = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: 5 << 20 + 100)
        try handle.write(contentsOf: Data([original ^ 0xFF]))
        try handle.close()
        var times = [status.st_atim, status.st_mtim]
        utimensat(AT_FDCWD, blob, &times, 0)

        let downloader = try mesh.agent(downloaderStore, holding: false)
        try mesh.waitForSeeders(1)
        try mesh.pull(downloader, into: downloaderStore)
        #expect(try Self.seedBytes(liar) > 0, "the liar was used")
        let cdnRanges = mesh.nginx.requests("big.gguf").filter { $0.hasPrefix("GET") }
        #expect(!cdnRanges.isEmpty, "the CDN filled in what the liar got wrong: \(cdnRanges)")
        // The downloader reported the liar; one report does not ban it.
        do {
            try waitUntil(timeout: 10) { try mesh.coordinator.get("/mesh/stats").object["reports"] as? Int == 1 }
        } catch {
            throw DepotFailure(message: "no report: \(try mesh.coordinator.get("/mesh/stats").body) \(try downloader.get("/jobs").body)")
        }
        #expect(try mesh.coordinator.get("/mesh/stats").object["seedersBanned"] as? Int == 0)

        // A second downloader, with the liar the only seeder, catches it too: the second report bans it.
        downloader.stop()
        let secondStore = Workspace()
        defer { secondStore.remove() }
        let second = try mesh.agent(secondStore, holding: false)
        defer { second.stop() }
        try mesh.waitForAgent(of: secondStore)
        try mesh.pull(second, into: secondStore)
        do {
            try waitUntil(timeout: 10) { try mesh.coordinator.get("/mesh/stats").object["seedersBanned"] as? Int == 1 }
        } catch {
            throw DepotFailure(message: "no ban: \(try mesh.coordinator.get("/mesh/stats").body) liar sent \(try Self.seedBytes(liar)) \(try liar.get("/metrics").body.split(separator: "\n").filter { $0.contains("refused") })")
        }
        #expect(try mesh.coordinator.get("/mesh/stats").object["reports"] as? Int == 2)
    }

    @Test func theCDNDownForTheWholeDownloadWithASeederPresentCompletes() throws {
        let mesh = try Mesh(megabytes: 8, cdnDown: true)
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true)
        defer { agentA.stop() }
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)
        try mesh.pull(agentB, into: b)
        #expect(try Self.seedBytes(agentA) >= mesh.size, "every byte came from the seeder")
    }

    @Test func aSeederServingOnePeerAtATimeIsAskedAgainNotDropped() throws {
        // The CDN is down and the only seeder serves one request at once: the downloader's
        // second connection is told 503 again and again, and must wait rather than give up
        // on the one source there is.
        let mesh = try Mesh(megabytes: 8, cdnDown: true)
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true, ["--seed-uploads", "1", "--seed-rate", "4M"])
        defer { agentA.stop() }
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)
        try mesh.pull(agentB, into: b)
        let busy = try agentA.get("/metrics").body.split(separator: "\n")
            .first { $0.hasPrefix("depot_seed_refused_total{reason=\"busy\"} ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        #expect(busy > 0, "A turned requests away as busy")
        #expect(try Self.seedBytes(agentA) >= mesh.size, "every byte came from the seeder")
    }

    @Test func aSeederKilledMidDownloadCostsOnlyWhatWasInFlight() throws {
        let mesh = try Mesh(megabytes: 24)
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        // A slow seeder, so the kill lands mid-download; the CDN joins after its head start.
        let agentA = try mesh.agent(a, holding: true, ["--seed-rate", "3M"])
        defer { agentA.stop() }  // also when the test fails before it kills A
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)
        _ = try mesh.startPull(agentB)
        try waitUntil(timeout: 20) { try Self.seedBytes(agentA) >= 2 << 20 }
        let sentBeforeKill = try Self.seedBytes(agentA)
        agentA.stop()  // SIGKILL
        try waitUntil(timeout: 60) { try b.depot.run(["show", "big:swarm"]).status == 0 }
        let entry = try b.depot.json(ModelEntry.self, ["show", "big:swarm"])
        #expect(entry.weights?.sha256 == mesh.digest && entry.status == .ready)
        // What the CDN sent and what A sent before the kill: the file, plus at most what was in
        // flight from A (two requests of a megabyte) and what A sent between reading and the kill.
        let fromCDN = Int(mesh.nginx.bytesServed("big.gguf"))
        #expect(fromCDN < mesh.size, "A's verified pieces were kept")
        #expect(fromCDN + sentBeforeKill <= mesh.size + (3 << 20), "CDN \(fromCDN) + A \(sentBeforeKill) for \(mesh.size)")
    }

    @Test func seedersGoneAndTheCDNDownIsAClearErrorAndThePartialIsKept() throws {
        let mesh = try Mesh(megabytes: 24, cdnDown: true)
        defer { mesh.remove() }
        let (a, b) = (Workspace(), Workspace())
        defer { [a, b].forEach { $0.remove() } }
        let agentA = try mesh.agent(a, holding: true, ["--seed-rate", "3M"])
        defer { agentA.stop() }  // also when the test fails before it kills A
        let agentB = try mesh.agent(b, holding: false)
        defer { agentB.stop() }
        try mesh.waitForSeeders(1)
        let job = try mesh.startPull(agentB)
        try waitUntil(timeout: 20) { try Self.seedBytes(agentA) >= 6 << 20 }
        agentA.stop()  // SIGKILL: no seeder left, and the CDN refuses connections
        var failed: [String: Any] = [:]
        do {
            try waitUntil(timeout: 90) {
                let jobs = try JSONSerialization.jsonObject(with: Data(try agentB.get("/jobs").body.utf8)) as? [[String: Any]] ?? []
                failed = jobs.first { $0["id"] as? String == job } ?? [:]
                return failed["state"] as? String == "failed"
            }
        } catch {
            throw DepotFailure(message: "the job did not fail: \(try agentB.get("/jobs").body)")
        }
        let message = failed["message"] as? String ?? ""
        #expect(message.contains("127.0.0.1:9") && message.contains("partial download is kept"), "\(message)")
        let kept = failed["completedBytes"] as? Int ?? 0
        #expect(kept >= 4 << 20, "the verified pieces from A are kept: \(failed)")
        #expect(try b.depot.run(["show", "big:swarm"]).status != 0)

        // A seeder comes back: the pull resumes from the partial file.
        let again = try mesh.agent(a, holding: false)
        defer { again.stop() }
        try mesh.waitForAgent(of: a)
        try mesh.pull(agentB, into: b)
        #expect(try Self.seedBytes(again) <= mesh.size - kept + (2 << 20), "only what was missing came again")
    }
}
