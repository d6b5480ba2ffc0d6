import DepotTestSupport
import Foundation
import MeshProtocol

/// A made-up agent speaking the mesh protocol over HTTP with its own key, as a third party
/// (or an attacker with a key of its own) would.
struct MeshAgent {
    let identity = MeshIdentity()
    var credential: String?

    func heartbeat(model: String? = "tiny:new", load: Int = 0, address: String = "http://127.0.0.1:9",
                   installed: [Heartbeat.InstalledModel] = []) -> Heartbeat {
        Heartbeat(agentId: identity.id, platform: "linux", freeMemoryMB: 1, address: address, activeModel: model,
                  activeModelParamSize: 1, modelSwapInProgress: false, currentLoad: load, installedModels: installed)
    }

    /// Fetches a challenge, signs it and registers; keeps the credential when it is granted.
    @discardableResult
    mutating func register(with coordinator: AgentProcess, heartbeat: Heartbeat? = nil, token: String? = nil) throws -> AgentProcess.Reply {
        let challenge = try JSONDecoder().decode(RegistrationChallenge.self, from: Data(try coordinator.get("/mesh/challenge").body.utf8))
        let registration = try AgentRegistration(identity: identity, challenge: challenge, heartbeat: heartbeat ?? self.heartbeat(), joinToken: token)
        let reply = try coordinator.post("/register", Self.text(registration))
        if reply.status == 200 { credential = reply.object["credential"] as? String }
        return reply
    }

    func beat(_ coordinator: AgentProcess, _ heartbeat: Heartbeat? = nil) throws -> AgentProcess.Reply {
        try coordinator.post("/heartbeat", Self.text(heartbeat ?? self.heartbeat()), headers: credential.map { ["Authorization: Bearer \($0)"] } ?? [])
    }

    static func text(_ value: some Encodable) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }
}

extension AgentProcess {
    /// POSTs many bodies through one curl process (one connection, kept alive); the statuses.
    func postMany(_ path: String, bodies: [Data], headers: [String] = [], in directory: String) throws -> [Int] {
        var config = ""
        for (index, body) in bodies.enumerated() {
            let file = directory + "/body-\(index)"
            try body.write(to: URL(fileURLWithPath: file))
            config += "url = \"\(base + path)\"\ndata-binary = \"@\(file)\"\noutput = \"/dev/null\"\nheader = \"Content-Type: application/json\"\n"
            for header in headers { config += "header = \"\(header)\"\n" }
            config += "write-out = \"%{http_code}\\n\"\nnext\n"
        }
        try config.write(toFile: directory + "/curl.config", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "--max-time", "120", "-K", directory + "/curl.config"]
        let out = try OutputFile()
        process.standardOutput = out.handle
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        for index in bodies.indices { try? FileManager.default.removeItem(atPath: directory + "/body-\(index)") }
        return out.contents().split(separator: "\n").compactMap { Int($0) }
    }
}
