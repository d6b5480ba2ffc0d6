import AsyncHTTPClient
import Foundation
import MeshProtocol
import NIOCore
import NIOHTTP1

// Registers made-up agents with a coordinator for the mesh benchmarks, each with a key of its
// own: mesh-agents URL COUNT [FIRST]. Prints "INDEX AGENTID CREDENTIAL ADDRESS" per agent, so
// load generators can send its heartbeats (the credential goes in Authorization: Bearer, and the
// address must stay the one registered).
let arguments = CommandLine.arguments
guard arguments.count >= 3, let count = Int(arguments[2]), count > 0 else {
    print("usage: mesh-agents URL COUNT [FIRST]")
    exit(64)
}
let coordinator = arguments[1], first = arguments.count > 3 ? Int(arguments[3]) ?? 0 : 0
let client = HTTPClient(eventLoopGroupProvider: .singleton)

func call(_ method: HTTPMethod, _ path: String, _ body: Data? = nil) async throws -> Data {
    var request = HTTPClientRequest(url: coordinator + path)
    request.method = method
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await client.execute(request, timeout: .seconds(30))
    let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
    guard response.status == .ok else { throw MeshProtocolError("\(path): \(response.status.code) \(String(decoding: data, as: UTF8.self))") }
    return data
}

func register(_ index: Int) async throws -> String {
    let identity = MeshIdentity()
    let address = "http://10.0.\(index % 250).\(index % 200):4302"
    let heartbeat = Heartbeat(agentId: identity.id, platform: "linux", freeMemoryMB: 8192, address: address,
                              activeModel: nil, activeModelParamSize: nil, modelSwapInProgress: false, currentLoad: 0, installedModels: [])
    let challenge = try JSONDecoder().decode(RegistrationChallenge.self, from: try await call(.GET, "/mesh/challenge"))
    let registration = try AgentRegistration(identity: identity, challenge: challenge, heartbeat: heartbeat, joinToken: nil)
    let receipt = try JSONDecoder().decode(RegistrationReceipt.self, from: try await call(.POST, "/register", try JSONEncoder().encode(registration)))
    return "\(index) \(identity.id) \(receipt.credential) \(address)"
}

var lines: [String] = []
try await withThrowingTaskGroup(of: [String].self) { group in
    let workers = 16
    for worker in 0..<workers {
        group.addTask {
            var done: [String] = []
            for index in stride(from: first + worker, to: first + count, by: workers) { done.append(try await register(index)) }
            return done
        }
    }
    for try await part in group { lines += part }
}
try await client.shutdown()
print(lines.joined(separator: "\n"))
