import AsyncHTTPClient
import Foundation
import MeshProtocol
import NIOCore

extension PieceManifest {
    /// The piece manifest of a blob whose catalog vouches only for its pieces root (BEP 52): the
    /// piece layer of the first peer whose layer leads to that root, or nil.
    public static func fromPeers(_ peers: [PeerSource], piecesRoot: String, pieceSize: UInt64?, fileSize: UInt64,
                                 client: HTTPClient = .shared) async -> PieceManifest? {
        guard let root = Data(hexDigits: piecesRoot) else { return nil }
        let size = pieceSize ?? MerklePieces.defaultPieceSize(fileSize: fileSize)
        for peer in peers {
            if let layer = await peer.pieceLayer(pieceSize: size, fileSize: fileSize, root: root, client: client) { return PieceManifest(layer) }
        }
        return nil
    }
}

extension PeerSource {
    /// This peer's piece layer for the blob, if it leads to `root`. Ten seconds at most (a
    /// layer is 32 bytes a piece; the HTTP client tries a refused connection again until then).
    func pieceLayer(pieceSize: UInt64, fileSize: UInt64, root: Data, client: HTTPClient) async -> MerklePieces? {
        var request = HTTPClientRequest(url: "\(url)/layer?pieceSize=\(pieceSize)")
        if let ticket { request.headers.add(name: Self.ticketHeader, value: ticket) }
        let hashes = Int((fileSize + pieceSize - 1) / pieceSize)
        guard let response = try? await client.execute(request, timeout: .seconds(10)), response.status == .ok,
              let body = try? await response.body.collect(upTo: hashes * 32), body.readableBytes == hashes * 32 else { return nil }
        let bytes = Data(body.readableBytesView)
        let layer = stride(from: 0, to: bytes.count, by: 32).map { bytes[$0..<$0 + 32] }.map { Data($0) }
        return try? MerklePieces(fileSize: fileSize, pieceSize: pieceSize, layer: layer, expectedRoot: root)
    }
}
