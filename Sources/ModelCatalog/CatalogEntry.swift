import Foundation
import ModelTransfer

/// A curated list of models with what is needed to fetch and verify them (EdgeCoder's catalog
/// fields, plus projector, mirrors, license and a piece manifest).
public struct Catalog: Codable, Sendable, Equatable {
    /// Format version; this build reads version 1.
    public var version: Int
    /// The publisher's edition number, raised with every release; inside the signed bytes, so
    /// an older signed catalog replayed by a network attacker is refused (nil counts as 0).
    public var serial: Int?
    /// The models.
    public var models: [CatalogEntry]

    /// The entry with this id.
    public func entry(_ id: String) -> CatalogEntry? { models.first { $0.modelId == id } }
}

/// One downloadable model.
public struct CatalogEntry: Codable, Sendable, Equatable {
    /// Also the store entry's name, `family:tag`.
    public var modelId: String
    public var displayName: String
    /// Parameters in billions.
    public var paramSize: Double
    public var quantization: String
    public var fileSizeBytes: UInt64
    public var downloadUrl: String
    /// Lowercase hex; an entry without one downloads only with `--allow-unverified`.
    public var checksumSha256: String?
    /// `ios`, `node`, `all`, `linux`, `macos` or `android`.
    public var platform: String
    public var languages: [String]
    public var minMemoryMB: UInt64
    public var projector: CatalogFile?
    public var mirrors: [String]?
    public var license: String?
    public var pieces: PieceManifest?
    /// The weights' BitTorrent v2 pieces root (BEP 52, lowercase hex; `depot catalog pieces`
    /// prints it): with it, a piece layer from any peer is checked against the signed catalog,
    /// and each piece from a peer against the layer.
    public var piecesRoot: String?
    /// The piece size peers are asked to lay the pieces out in (default: `MerklePieces.defaultPieceSize`).
    public var pieceSize: UInt64?

    /// Whether this entry runs on `device`.
    public func fits(_ device: DeviceProfile) -> Bool {
        Platform.matches(platform, device.platform) && minMemoryMB <= device.memoryMB
    }
}

/// A second file of an entry (the multimodal projector).
public struct CatalogFile: Codable, Sendable, Equatable {
    public var url: String
    public var sizeBytes: UInt64
    public var checksumSha256: String?
}

/// What this device is, for filtering.
public struct DeviceProfile: Sendable, Equatable {
    public var platform: String
    public var memoryMB: UInt64

    public init(platform: String, memoryMB: UInt64) {
        self.platform = platform
        self.memoryMB = memoryMB
    }

    /// This machine: its OS and total memory (from /proc/meminfo on Linux).
    public static var current: DeviceProfile {
        #if os(Linux)
        let platform = "linux"
        #elseif os(macOS)
        let platform = "macos"
        #else
        let platform = "unknown"
        #endif
        return DeviceProfile(platform: platform, memoryMB: ProcessInfo.processInfo.physicalMemory / (1 << 20))
    }
}

enum Platform {
    static let known: Set<String> = ["ios", "node", "all", "linux", "macos", "android"]

    /// `all` runs anywhere; `node` (a Node.js agent) runs on desktop systems.
    static func matches(_ entry: String, _ device: String) -> Bool {
        entry == "all" || entry == device || (entry == "node" && (device == "linux" || device == "macos"))
    }
}
