import Foundation

/// `GET /p2p/blobs/sha256/<hex>/pieces`: which pieces of a blob an agent can serve (all of
/// them once it holds the blob; while it downloads, those it has verified), and which it is
/// fetching from its CDN right now, so other downloaders fetch different pieces from theirs.
public struct HaveMap: Codable, Sendable, Equatable {
    public var sha256: String
    public var size: UInt64
    public var pieceSize: UInt64
    public var complete: Bool
    /// Verified pieces (all when `complete`).
    public var have: PieceBitfield
    /// Pieces this agent is fetching from its primary source.
    public var fetching: PieceBitfield
    /// A random name for this download, the same in every map it answers, so downloaders can
    /// share out which pieces each fetches from its primary source. Nil when complete.
    public var download: String?

    public init(sha256: String, size: UInt64, pieceSize: UInt64, complete: Bool, have: PieceBitfield, fetching: PieceBitfield,
                download: String? = nil) {
        self.sha256 = sha256
        self.size = size
        self.pieceSize = pieceSize
        self.complete = complete
        self.have = have
        self.fetching = fetching
        self.download = download
    }

    /// A complete blob's map.
    public static func complete(sha256: String, size: UInt64, pieceSize: UInt64) -> HaveMap {
        let count = pieceCount(size: size, pieceSize: pieceSize)
        return HaveMap(sha256: sha256, size: size, pieceSize: pieceSize, complete: true,
                       have: PieceBitfield(count: count, all: true), fetching: PieceBitfield(count: count))
    }

    public static func pieceCount(size: UInt64, pieceSize: UInt64) -> Int {
        pieceSize == 0 ? 0 : Int((size + pieceSize - 1) / pieceSize)
    }

    /// Why the map cannot describe a blob of `size` bytes in pieces of `pieceSize`, or nil.
    public func problem(size expectedSize: UInt64, pieceSize expectedPieceSize: UInt64) -> String? {
        guard size == expectedSize, pieceSize == expectedPieceSize else {
            return "the have-map is for \(size) bytes in pieces of \(pieceSize), not \(expectedSize) in \(expectedPieceSize)"
        }
        let count = Self.pieceCount(size: size, pieceSize: pieceSize)
        guard have.count == count, fetching.count == count else { return "the have-map's bitfields do not have \(count) pieces" }
        guard (download?.utf8.count ?? 0) <= 64 else { return "the have-map's download name is longer than 64 bytes" }
        return nil
    }
}

/// One bit a piece, most significant bit first (BitTorrent's bitfield order), sent as base64.
public struct PieceBitfield: Sendable, Equatable {
    public private(set) var count: Int
    public private(set) var bytes: [UInt8]

    public init(count: Int, all: Bool = false) {
        self.count = max(0, count)
        bytes = [UInt8](repeating: all ? 0xFF : 0, count: (self.count + 7) / 8)
        if all, self.count % 8 != 0 { bytes[bytes.count - 1] = UInt8(0xFF << (8 - self.count % 8) & 0xFF) }
    }

    /// Nil when `bytes` does not hold exactly `count` bits with the spare bits clear.
    public init?(count: Int, bytes: [UInt8]) {
        guard count >= 0, bytes.count == (count + 7) / 8 else { return nil }
        if count % 8 != 0, let last = bytes.last, last & (0xFF >> (count % 8)) != 0 { return nil }
        self.count = count
        self.bytes = bytes
    }

    public func contains(_ index: Int) -> Bool {
        index >= 0 && index < count && bytes[index / 8] & (0x80 >> (index % 8)) != 0
    }

    public mutating func insert(_ index: Int) {
        guard index >= 0 && index < count else { return }
        bytes[index / 8] |= 0x80 >> (index % 8)
    }

    public mutating func remove(_ index: Int) {
        guard index >= 0 && index < count else { return }
        bytes[index / 8] &= ~(0x80 >> (index % 8))
    }

    /// Pieces set.
    public var population: Int { bytes.reduce(0) { $0 + $1.nonzeroBitCount } }
}

extension PieceBitfield: Codable {
    private enum CodingKeys: String, CodingKey { case count, bits }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let count = try container.decode(Int.self, forKey: .count)
        guard count <= 1 << 24 else {
            throw DecodingError.dataCorruptedError(forKey: .count, in: container, debugDescription: "more than 2^24 pieces")
        }
        guard let data = Data(base64Encoded: try container.decode(String.self, forKey: .bits)),
              let field = PieceBitfield(count: count, bytes: Array(data)) else {
            throw DecodingError.dataCorruptedError(forKey: .bits, in: container, debugDescription: "bits must be base64 of exactly count bits")
        }
        self = field
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(count, forKey: .count)
        try container.encode(Data(bytes).base64EncodedString(), forKey: .bits)
    }
}
