import Foundation

/// What an agent tells its coordinator: the body of `POST /heartbeat` (with the session
/// credential from its registration in `Authorization: Bearer`) and part of `POST /register`.
/// Versioned; unknown fields are ignored, and a missing required field is refused naming it.
public struct Heartbeat: Codable, Sendable, Equatable {
    /// 2: agents have Ed25519 identities and register with a signature.
    public static let protocolVersion = 2

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
    /// The agent's id: derived from its public key (`MeshIdentity.id`).
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
    /// Set when the agent seeds its installed models to peers (`depot serve --seed`).
    public var seeding: SeedingPolicy?

    public init(agentId: String, platform: String, freeMemoryMB: UInt64, address: String, activeModel: String?,
                activeModelParamSize: Double?, modelSwapInProgress: Bool, currentLoad: Int, installedModels: [InstalledModel],
                seeding: SeedingPolicy? = nil) {
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
        self.seeding = seeding
    }
}

extension Heartbeat {
    /// Bounds every receiver applies, so one message can neither overflow a tally nor fill memory.
    public enum Limits {
        public static let platformBytes = 32
        public static let addressBytes = 256
        public static let currentLoad = -1...1_000_000
        /// Billions of parameters.
        public static let paramSize = 0.0...1_000_000
        public static let freeMemoryMB: UInt64 = 1 << 40
        public static let defaultInstalledModels = 512
    }

    /// What is wrong with this heartbeat, naming the field, or nil. `modelNameProblem` applies
    /// the store's name rules (which this module does not know).
    public func problem(maximumInstalledModels: Int = Limits.defaultInstalledModels,
                        modelNameProblem: (String) -> String?) -> String? {
        guard protocolVersion == Self.protocolVersion else {
            return "protocolVersion \(protocolVersion) is not supported; this coordinator speaks \(Self.protocolVersion)"
        }
        guard Self.isAgentID(agentId) else { return "field 'agentId' must be the 16 hex digits derived from the agent's public key" }
        guard !platform.isEmpty, platform.utf8.count <= Limits.platformBytes, platform.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            return "field 'platform' must be 1 to \(Limits.platformBytes) printable ASCII characters"
        }
        guard freeMemoryMB <= Limits.freeMemoryMB else { return "field 'freeMemoryMB' must be at most \(Limits.freeMemoryMB)" }
        guard address.utf8.count <= Limits.addressBytes, Self.isHTTPAddress(address) else {
            return "field 'address' must be an http(s) URL of at most \(Limits.addressBytes) bytes"
        }
        if let activeModel, let problem = modelNameProblem(activeModel) { return "field 'activeModel': \(problem)" }
        guard Limits.paramSize.contains(activeModelParamSize ?? 0) else {
            return "field 'activeModelParamSize' must be 0 to 1000000 (billions of parameters)"
        }
        guard Limits.currentLoad.contains(currentLoad) else { return "field 'currentLoad' must be -1 (loading) or 0 to 1000000" }
        guard installedModels.count <= maximumInstalledModels else {
            return "field 'installedModels' lists \(installedModels.count) models; at most \(maximumInstalledModels) are taken"
        }
        if let seeding, !SeedingPolicy.uploads.contains(seeding.maximumUploads) {
            return "field 'seeding.maximumUploads' must be \(SeedingPolicy.uploads.lowerBound) to \(SeedingPolicy.uploads.upperBound)"
        }
        for (index, model) in installedModels.enumerated() {
            if let problem = modelNameProblem(model.name) { return "field 'installedModels.\(index).name': \(problem)" }
            guard Self.isSHA256(model.sha256) else { return "field 'installedModels.\(index).sha256' must be 64 lowercase hex digits" }
        }
        return nil
    }

    /// `http://` or `https://`, a host, and nothing but printable ASCII without spaces (by
    /// bytes: checked on every heartbeat, where Foundation's URL parser is the slow part).
    static func isHTTPAddress(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ (0x21...0x7E).contains($0) }) else { return false }
        let rest: ArraySlice<UInt8>
        if bytes.starts(with: "http://".utf8) { rest = bytes.dropFirst(7) } else if bytes.starts(with: "https://".utf8) {
            rest = bytes.dropFirst(8)
        } else {
            return false
        }
        let host = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        return !host.isEmpty && host.first != UInt8(ascii: ":") && !host.contains(UInt8(ascii: "@"))
    }

    public static func isAgentID(_ text: String) -> Bool { isLowercaseHex(text, digits: 16) }

    public static func isSHA256(_ text: String) -> Bool { isLowercaseHex(text, digits: 64) }

    static func isLowercaseHex(_ text: String, digits: Int) -> Bool {
        text.utf8.count == digits && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
