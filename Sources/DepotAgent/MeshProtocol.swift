import Foundation

/// What an agent tells its coordinator (`POST /register`, `POST /heartbeat`). Versioned;
/// unknown fields are ignored, and a missing required field is refused naming it.
public struct Heartbeat: Codable, Sendable, Equatable {
    public static let protocolVersion = 1

    public struct InstalledModel: Codable, Sendable, Equatable {
        public var name: String
        public var sha256: String
        public var sizeBytes: UInt64

        public init(name: String, sha256: String, sizeBytes: UInt64) {
            self.name = name
            self.sha256 = sha256
            self.sizeBytes = sizeBytes
        }
    }

    public var protocolVersion: Int
    /// Stable per store (kept in `<store>/agent-id`).
    public var agentId: String
    public var platform: String
    public var freeMemoryMB: UInt64
    /// Where peers reach this agent (its HTTP address).
    public var address: String
    public var activeModel: String?
    public var activeModelParamSize: Double?
    public var modelSwapInProgress: Bool
    /// -1 while a model loads (routers skip the agent), else requests in flight.
    public var currentLoad: Int
    public var installedModels: [InstalledModel]

    public init(agentId: String, platform: String, freeMemoryMB: UInt64, address: String, activeModel: String?,
                activeModelParamSize: Double?, modelSwapInProgress: Bool, currentLoad: Int, installedModels: [InstalledModel]) {
        protocolVersion = Self.protocolVersion
        self.agentId = agentId
        self.platform = platform
        self.freeMemoryMB = freeMemoryMB
        self.address = address
        self.activeModel = activeModel
        self.activeModelParamSize = activeModelParamSize
        self.modelSwapInProgress = modelSwapInProgress
        self.currentLoad = currentLoad
        self.installedModels = installedModels
    }
}
