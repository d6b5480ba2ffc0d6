import MeshProtocol
import NIOCore

/// Where a download's lanes fetch byte ranges of one file: the primary source or another
/// agent over HTTP (`HTTPFetcher`), or a phone over a radio link (`RadioPeer`). Whatever a
/// source sends counts only once its piece matches the manifest.
protocol RangeSource: Sendable {
    /// Names the source in a swarm (a peer found twice joins once) and in messages.
    var address: String { get }
    /// What the download owes this source, for receipts; nil where there is nobody to pay.
    var account: PeerAccount? { get }
    /// Connections this source takes at once; nil: as many as the configuration gives a peer.
    var connectionLimit: Int? { get }

    /// Learns the file's size and validators.
    func probe() async throws(FetchFailure) -> RemoteFile
    /// Streams `range` (or the whole file) in order, passing each chunk with its offset to
    /// `consume`, which returns false to stop early.
    func fetch(_ remote: RemoteFile, range: Range<UInt64>?, validator: String?,
               consume: @escaping @Sendable (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure)
    /// The pieces of size `pieceSize` this source can send now; nil when it cannot say.
    func haveMap(pieceSize: UInt64) async -> HaveMap?
}

extension HTTPFetcher: RangeSource {
    var address: String { source.url.absoluteString }
    var connectionLimit: Int? { nil }
}
