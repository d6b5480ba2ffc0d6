import Foundation
import MeshProtocol

/// The downloads of this process that peers may already fetch from: for each blob being
/// pulled with a piece manifest, where its partial file is, which pieces are verified (only
/// those are ever served) and which are on their way from the primary source (so other
/// downloaders fetch different ones from theirs). Downloads publish here; an agent's peer
/// routes read it.
public final class SwarmBoard: @unchecked Sendable {
    struct Partial {
        let token: UUID
        let path: String
        let size: UInt64
        let pieces: PieceManifest
        var verified: PieceBitfield
        var fetching: PieceBitfield
    }

    // Guarded by `lock`.
    private var partials: [String: Partial] = [:]
    private let lock = NSLock()

    public init() {}

    /// A download's verified pieces, offered to peers until the offer is released (once the
    /// store holds the blob, peers are served from there).
    public final class Offer: Sendable {
        let board: SwarmBoard
        let sha256: String
        let token: UUID

        init(board: SwarmBoard, sha256: String, token: UUID) {
            self.board = board
            self.sha256 = sha256
            self.token = token
        }

        /// The name this download's have-maps carry.
        var download: String { token.uuidString }

        func verified(_ piece: Int) { board.update(sha256, token) { $0.verified.insert(piece) } }

        func fetching(_ pieces: Range<Int>, _ isFetching: Bool) {
            board.update(sha256, token) { partial in
                for piece in pieces { if isFetching { partial.fetching.insert(piece) } else { partial.fetching.remove(piece) } }
            }
        }

        deinit { board.lock.withLock { if board.partials[sha256]?.token == token { board.partials[sha256] = nil } } }
    }

    /// Offers a download's partial file, `verified` already.
    func publish(sha256: String, path: String, size: UInt64, pieces: PieceManifest, verified: IntervalSet) -> Offer {
        let count = PieceManifest.pieceCount(fileSize: size, pieceSize: pieces.pieceSize)
        var have = PieceBitfield(count: count)
        for index in 0..<count where verified.covers(pieces.range(of: index, fileSize: size)) { have.insert(index) }
        let token = UUID()
        lock.withLock {
            partials[sha256] = Partial(token: token, path: path, size: size, pieces: pieces, verified: have,
                                       fetching: PieceBitfield(count: count))
        }
        return Offer(board: self, sha256: sha256, token: token)
    }

    private func update(_ sha256: String, _ token: UUID, _ change: (inout Partial) -> Void) {
        lock.withLock {
            guard var partial = partials[sha256], partial.token == token else { return }
            change(&partial)
            partials[sha256] = partial
        }
    }

    /// The SHA-256 of each blob being downloaded here.
    public var downloading: [String] { lock.withLock { Array(partials.keys) } }

    /// What this process can serve of a blob it is downloading.
    public func haveMap(of sha256: String) -> HaveMap? {
        lock.withLock {
            partials[sha256].map { partial in
                HaveMap(sha256: sha256, size: partial.size, pieceSize: partial.pieces.pieceSize, complete: false,
                        have: partial.verified, fetching: partial.fetching, download: partial.token.uuidString)
            }
        }
    }

    /// The partial file and the blob's size, when every piece `range` touches is verified (an
    /// empty range: when the blob is being downloaded).
    public func readablePartial(_ sha256: String, range: Range<UInt64>) -> (path: String, size: UInt64)? {
        lock.withLock {
            guard let partial = partials[sha256] else { return nil }
            guard range.upperBound <= partial.size,
                  partial.pieces.pieces(touching: range).allSatisfy(partial.verified.contains) else { return nil }
            return (partial.path, partial.size)
        }
    }

    /// The piece layer (BEP 52) of a blob being downloaded, when its manifest is one with
    /// pieces of `pieceSize` (the asker checks it against its catalog's root).
    public func layer(of sha256: String, pieceSize: UInt64?) -> Data? {
        lock.withLock {
            guard let pieces = partials[sha256]?.pieces, pieces.scheme == .bep52,
                  pieceSize == nil || pieceSize == pieces.pieceSize else { return nil }
            return pieces.sha256.reduce(into: Data()) { layer, hex in layer.append(Data(hexDigits: hex) ?? Data()) }
        }
    }
}
