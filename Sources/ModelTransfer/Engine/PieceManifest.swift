import Crypto
import ModelStore
import Foundation

/// The SHA-256 of each fixed-size piece of a file (the last piece may be shorter). With one,
/// each piece is checked as soon as it is on disk and only a bad piece is fetched again,
/// instead of failing the whole file at the end.
public struct PieceManifest: Codable, Sendable, Equatable {
    /// Bytes per piece.
    public var pieceSize: UInt64
    /// Lowercase hex SHA-256 of each piece, in order.
    public var sha256: [String]

    public init(pieceSize: UInt64, sha256: [String]) {
        self.pieceSize = pieceSize
        self.sha256 = sha256.map { $0.lowercased() }
    }

    /// The manifest of `data`, for catalog authors and tests.
    public init(of data: Data, pieceSize: UInt64) {
        let size = Int(pieceSize)
        self.init(pieceSize: pieceSize, sha256: stride(from: 0, to: data.count, by: size).map { start in
            SHA256.hash(data: data[start..<min(start + size, data.count)]).hexString
        })
    }

    /// Pieces a file of `size` bytes has.
    static func pieceCount(fileSize size: UInt64, pieceSize: UInt64) -> Int {
        pieceSize == 0 ? 0 : Int((size + pieceSize - 1) / pieceSize)
    }

    /// Bytes of piece `index` in a file of `size` bytes.
    func range(of index: Int, fileSize size: UInt64) -> Range<UInt64> {
        let start = UInt64(index) * pieceSize
        return start..<min(start + pieceSize, size)
    }

    /// Refuses a manifest that does not describe a file of `size` bytes.
    func check(fileSize size: UInt64, source: String) throws(TransferError) {
        guard pieceSize > 0, sha256.count == Self.pieceCount(fileSize: size, pieceSize: pieceSize),
              sha256.allSatisfy({ $0.count == 64 && $0.allSatisfy(\.isHexDigit) }) else {
            throw TransferError(.invalidSource, "the piece manifest for \(source) does not describe its \(size) bytes (\(sha256.count) pieces of \(pieceSize) bytes)")
        }
    }
}
