import Crypto
import ModelStore
import Foundation

/// The hash of each fixed-size piece of a file (the last piece may be shorter). With one,
/// each piece is checked as soon as it is on disk and only a bad piece is fetched again,
/// instead of failing the whole file at the end; and a peer that sent a bad piece is known.
public struct PieceManifest: Codable, Sendable, Equatable {
    /// How a piece's hash is computed.
    public enum Scheme: String, Codable, Sendable {
        /// SHA-256 of the piece's bytes (Depot's flat manifest).
        case sha256
        /// BitTorrent v2's: the merkle root of the piece's 16 KiB blocks (`MerklePieces`), so
        /// the manifest is a piece layer that a catalog's one `piecesRoot` vouches for.
        case bep52
    }

    /// Bytes per piece.
    public var pieceSize: UInt64
    /// Lowercase hex hash of each piece, in order.
    public var sha256: [String]
    /// Nil (older manifests) is `.sha256`.
    public var scheme: Scheme?

    public init(pieceSize: UInt64, sha256: [String], scheme: Scheme? = nil) {
        self.pieceSize = pieceSize
        self.sha256 = sha256.map { $0.lowercased() }
        self.scheme = scheme
    }

    /// A piece layer, checked against its root, as a manifest.
    public init(_ pieces: MerklePieces) {
        self.init(pieceSize: pieces.pieceSize, sha256: pieces.layer.map(MerklePieces.hex), scheme: .bep52)
    }

    /// The hash of piece bytes under this manifest's scheme, in lowercase hex.
    func hash(of bytes: UnsafeRawBufferPointer, fileSize: UInt64) -> String {
        switch scheme ?? .sha256 {
        case .sha256: SHA256.hash(data: bytes).hexString
        case .bep52: MerklePieces.hex(MerklePieces.pieceHash(bytes, pieceSize: pieceSize, fileSize: fileSize))
        }
    }

    /// The manifest of `data`, for catalog authors and tests.
    public init(of data: Data, pieceSize: UInt64) {
        let size = Int(pieceSize)
        self.init(pieceSize: pieceSize, sha256: stride(from: 0, to: data.count, by: size).map { start in
            SHA256.hash(data: data[start..<min(start + size, data.count)]).hexString
        })
    }

    /// A piece is read back whole to be checked.
    static let maximumPieceSize: UInt64 = 64 << 20

    /// Pieces a file of `size` bytes has.
    static func pieceCount(fileSize size: UInt64, pieceSize: UInt64) -> Int {
        pieceSize == 0 ? 0 : Int((size + pieceSize - 1) / pieceSize)
    }

    /// Bytes of piece `index` in a file of `size` bytes.
    func range(of index: Int, fileSize size: UInt64) -> Range<UInt64> {
        let start = UInt64(index) * pieceSize
        return start..<min(start + pieceSize, size)
    }

    /// The pieces a byte range touches.
    func pieces(touching range: Range<UInt64>) -> Range<Int> {
        range.isEmpty ? 0..<0 : Int(range.lowerBound / pieceSize)..<Int((range.upperBound - 1) / pieceSize) + 1
    }

    /// Refuses a manifest that does not describe a file of `size` bytes.
    func check(fileSize size: UInt64, source: String) throws(TransferError) {
        if scheme == .bep52 { try MerklePieces.checkPieceSize(pieceSize) }
        guard pieceSize > 0, pieceSize <= Self.maximumPieceSize, sha256.count == Self.pieceCount(fileSize: size, pieceSize: pieceSize),
              sha256.allSatisfy({ $0.count == 64 && $0.allSatisfy(\.isHexDigit) }) else {
            throw TransferError(.invalidSource, "the piece manifest for \(source) does not describe its \(size) bytes (\(sha256.count) pieces of \(pieceSize) bytes; a piece is at most 64 MiB)")
        }
    }
}
