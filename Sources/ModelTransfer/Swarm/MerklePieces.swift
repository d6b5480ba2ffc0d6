import Crypto
import Foundation
import MeshProtocol
import ModelStore

/// A file's pieces as BitTorrent v2 lays them out (BEP 52): SHA-256 of each 16 KiB block are
/// the leaves of a binary merkle tree, padded with zero hashes to a power of two; a piece is
/// the subtree over `pieceSize / 16 KiB` blocks, and the piece layer is the row of those
/// subtrees' roots. The tree's root (`piecesRoot`, 32 bytes) is all a signed catalog needs to
/// carry: a piece layer from any peer is checked against it, and each piece against the layer.
public struct MerklePieces: Sendable, Equatable {
    public static let blockSize = 16 << 10

    public let fileSize: UInt64
    public let pieceSize: UInt64
    /// The root of each piece's subtree (32 bytes each), in order.
    public let layer: [Data]
    /// 32 bytes.
    public let root: Data

    /// Refuses a piece size BEP 52 does not allow: a power of two of at least 16 KiB.
    public static func checkPieceSize(_ pieceSize: UInt64) throws(TransferError) {
        guard pieceSize >= UInt64(blockSize), pieceSize & (pieceSize - 1) == 0, pieceSize <= 1 << 30 else {
            throw TransferError(.invalidSource, "a piece size must be a power of two from 16 KiB to 1 GiB, not \(pieceSize) bytes")
        }
    }

    /// The piece size libtorrent and most clients pick: about 1,500 pieces, at least 16 KiB,
    /// at most 16 MiB (more pieces mean a bigger piece layer; fewer, coarser retries).
    public static func defaultPieceSize(fileSize: UInt64) -> UInt64 {
        var size = UInt64(blockSize)
        while size < 16 << 20 && fileSize / size > 1_500 { size <<= 1 }
        return size
    }

    /// Reads `count` bytes at `offset` of the file into the buffer: the one way this type
    /// touches the file, so a partial download and a stored blob are hashed alike.
    public typealias Reader = (_ buffer: UnsafeMutableRawBufferPointer, _ count: Int, _ offset: UInt64) throws -> Void

    /// Hashes a whole file of `fileSize` bytes, piece by piece.
    public init(fileSize: UInt64, pieceSize: UInt64, read: Reader) throws {
        try Self.checkPieceSize(pieceSize)
        guard fileSize > 0 else { throw TransferError(.invalidSource, "an empty file has no pieces") }
        let count = Int((fileSize + pieceSize - 1) / pieceSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(pieceSize), alignment: 4096)
        defer { buffer.deallocate() }
        var layer: [Data] = []
        layer.reserveCapacity(count)
        for index in 0..<count {
            let start = UInt64(index) * pieceSize
            let length = Int(min(pieceSize, fileSize - start))
            try read(buffer, length, start)
            layer.append(Self.pieceHash(UnsafeRawBufferPointer(rebasing: buffer[0..<length]), pieceSize: pieceSize, fileSize: fileSize))
        }
        try self.init(fileSize: fileSize, pieceSize: pieceSize, layer: layer)
    }

    /// A piece layer as a peer sent it; refused unless it has one hash per piece.
    public init(fileSize: UInt64, pieceSize: UInt64, layer: [Data]) throws(TransferError) {
        try Self.checkPieceSize(pieceSize)
        guard fileSize > 0, layer.count == Int((fileSize + pieceSize - 1) / pieceSize) else {
            throw TransferError(.invalidSource, "a piece layer of \(layer.count) hashes does not describe \(fileSize) bytes in pieces of \(pieceSize)")
        }
        self.fileSize = fileSize
        self.pieceSize = pieceSize
        self.layer = layer
        root = Self.root(of: layer, pieceSize: pieceSize, fileSize: fileSize)
    }

    /// A piece layer from an untrusted source, accepted only if it leads to `root`.
    public init(fileSize: UInt64, pieceSize: UInt64, layer: [Data], expectedRoot: Data) throws(TransferError) {
        try self.init(fileSize: fileSize, pieceSize: pieceSize, layer: layer)
        guard root == expectedRoot else {
            throw TransferError(.checksumMismatch, "the piece layer does not lead to the pieces root \(Self.hex(expectedRoot)) (it leads to \(Self.hex(root)))")
        }
    }

    /// The hash of one piece's bytes: the root of its 16 KiB blocks, the blocks past the end of
    /// the file counted as zero hashes (BEP 52). A file of one piece or less pads only up to its
    /// own power of two of blocks, so its piece hash is its root.
    public static func pieceHash(_ bytes: UnsafeRawBufferPointer, pieceSize: UInt64, fileSize: UInt64) -> Data {
        var leaves: [Data] = []
        var offset = 0
        repeat {
            let end = min(offset + blockSize, bytes.count)
            leaves.append(Data(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))))
            offset = end
        } while offset < bytes.count
        let blocksPerPiece = Int(pieceSize) / blockSize
        let width = fileSize <= pieceSize ? Self.powerOfTwo(atLeast: leaves.count) : blocksPerPiece
        return merkleRoot(leaves, width: width, padding: Data(count: 32))
    }

    /// The root over the piece layer, padded with the hash of a piece made of zero leaves.
    static func root(of layer: [Data], pieceSize: UInt64, fileSize: UInt64) -> Data {
        guard layer.count > 1 || fileSize > pieceSize else { return layer[0] }
        let blocksPerPiece = Int(pieceSize) / blockSize
        let zeroPiece = merkleRoot([], width: blocksPerPiece, padding: Data(count: 32))
        return merkleRoot(layer, width: powerOfTwo(atLeast: layer.count), padding: zeroPiece)
    }

    /// The root of a tree of `width` leaves (a power of two): `nodes`, then `padding`.
    static func merkleRoot(_ nodes: [Data], width: Int, padding: Data) -> Data {
        var row = nodes
        var pad = padding
        var width = width
        while width > 1 {
            var next: [Data] = []
            next.reserveCapacity((row.count + 1) / 2)
            var index = 0
            while index < row.count {
                var hasher = SHA256()
                hasher.update(data: row[index])
                hasher.update(data: index + 1 < row.count ? row[index + 1] : pad)
                next.append(Data(hasher.finalize()))
                index += 2
            }
            var hasher = SHA256()
            hasher.update(data: pad)
            hasher.update(data: pad)
            pad = Data(hasher.finalize())
            row = next
            width /= 2
        }
        return row.first ?? pad
    }

    static func powerOfTwo(atLeast count: Int) -> Int {
        var width = 1
        while width < count { width <<= 1 }
        return width
    }

    /// Lowercase hex, as catalogs and logs spell a root.
    public static func hex(_ bytes: Data) -> String { bytes.lowercaseHex }

    /// Bytes of piece `index`.
    public func range(of index: Int) -> Range<UInt64> {
        let start = UInt64(index) * pieceSize
        return start..<min(start + pieceSize, fileSize)
    }

    /// Whether `bytes` are piece `index`.
    public func matches(_ bytes: UnsafeRawBufferPointer, piece index: Int) -> Bool {
        layer.indices.contains(index) && bytes.count == range(of: index).count
            && Self.pieceHash(bytes, pieceSize: pieceSize, fileSize: fileSize) == layer[index]
    }

    /// The piece layer as BEP 52 stores it (`piece layers` in a torrent): the hashes concatenated.
    public var layerBytes: Data { layer.reduce(into: Data()) { $0.append($1) } }
}

extension MerklePieces {
    /// Hashes a file on disk.
    public init(path: String, pieceSize: UInt64? = nil) throws {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try self.init(fileSize: size, pieceSize: pieceSize ?? Self.defaultPieceSize(fileSize: size)) { buffer, count, offset in
            try handle.seek(toOffset: offset)
            var filled = 0
            while filled < count {
                guard let data = try handle.read(upToCount: count - filled), !data.isEmpty else {
                    throw TransferError(.io, "\(path) ended at \(offset + UInt64(filled)) bytes while it was hashed")
                }
                data.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<filled + data.count]))
                filled += data.count
            }
        }
    }
}
