import Crypto
import Foundation
import MeshProtocol
import ModelStore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// An expected SHA-256 and what vouches for it.
public struct ExpectedHash: Sendable, Equatable, Codable {
    /// Lowercase hex.
    public var sha256: String
    /// Where it came from.
    public var source: HashSource

    /// Checks the hex form.
    public init(sha256: String, source: HashSource) throws(TransferError) {
        let hex = sha256.lowercased()
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
            throw TransferError(.invalidSource, "'\(sha256)' is not a SHA-256 (64 hexadecimal digits)")
        }
        self.sha256 = hex
        self.source = source
    }
}

/// Downloads one file into the store's `tmp/`: probe, resume from the journal or start
/// clean, fetch ranges in parallel with retries, hash the contiguous prefix as it grows,
/// and check the result. The file is not visible to anyone until the store records it.
struct FileDownload: Sendable {
    let role: FileRole
    let source: TransferSource
    /// The journal's name for the file (`PullRequest.fileKey`).
    let key: String
    let expected: ExpectedHash?
    let pieces: PieceManifest?
    let fetcher: HTTPFetcher
    let journal: TransferJournal
    let store: ModelStore
    let configuration: ModelDownloader.Configuration
    let progress: ProgressReporter
    /// Other agents that hold the same bytes (`…/p2p/blobs/sha256/<hex>` with a ticket, or a
    /// radio link). Used only with a piece manifest, so each piece a peer sends is checked
    /// before it counts.
    var peers: [any RangeSource] = []
    /// Asks for more peers while the download runs.
    var findPeers: PeerFinder?

    /// A finished file and the journal job to remove once the store has recorded it. Holds
    /// the partial file's lock until then, so a process waiting for the same file finds it
    /// in the store rather than half-moved.
    struct Result: Sendable {
        let file: DownloadedFile
        let jobID: String?
        var partial: PartialFile? = nil
        /// The verified pieces peers may fetch, still offered until the store has the blob.
        var offer: SwarmBoard.Offer? = nil
    }

    func probe() async throws -> RemoteFile {
        let remote: RemoteFile
        if isSwarm {
            do { remote = try await fetcher.probe() } catch FetchFailure.transient(let reason), FetchFailure.busy(let reason) {
                // The primary source is down: the peers say how large the file is, and the
                // pieces check every byte wherever it comes from.
                guard let size = await peerSize() else { throw TransferError(.unreachable, "\(reason); no peer answered either") }
                remote = RemoteFile(url: source.url, size: size, etag: nil, lastModified: nil, acceptsRanges: true, publishedSHA256: nil)
            }
        } else {
            remote = try await retrying("reaching \(source.redacted)") { try await fetcher.probe() }
        }
        progress.setTotal(remote.size, for: role)
        return remote
    }

    /// Whether peers take part: only when a piece manifest checks what they send and the
    /// whole file's hash is known.
    private var isSwarm: Bool { (!peers.isEmpty || findPeers != nil) && pieces != nil && expected != nil }

    /// The size the first peer that answers gives.
    private func peerSize() async -> UInt64? {
        for peer in peers { if let remote = try? await peer.probe(), remote.acceptsRanges { return remote.size } }
        return nil
    }

    func run(_ firstProbe: RemoteFile) async throws -> Result {
        var remote = firstProbe
        var restarts = 0
        var rangesWork = true
        while true {
            let expectedHash = try expected ?? remote.publishedSHA256.map { try ExpectedHash(sha256: $0, source: .server) }
            try pieces?.check(fileSize: remote.size, source: source.redacted)
            let origin = FileOrigin(sourceURL: source.redacted, originalFilename: source.filename,
                                    etag: remote.etag, lastModified: remote.lastModified)
            progress.stage(.checkingCache, file: role)
            if let cached = try cachedFile(expectedHash, origin: origin, size: remote.size) { return cached }

            let job = try prepareJob(remote, expected: expectedHash)
            guard let partial = try await PartialFile.open(path: job.partialPath, create: false, whileWaiting: showSharedProgress)
            else { continue }
            progress.shared(false)
            // While we waited for the file lock, another process may have finished this download.
            if let cached = try cachedFile(expectedHash, origin: origin, size: remote.size) { return cached }
            guard let (current, durable) = try journal.job(forKey: key), current.id == job.id else { continue }
            let hashSource = expectedHash?.source ?? .firstDownload

            if let digest = current.sha256, partial.currentSize == remote.size {
                try check(digest, against: expectedHash, partial: partial, jobID: job.id)
                progress.setResumed(remote.size, for: role)
                return Result(file: DownloadedFile(role: role, path: partial.path, sha256: digest, origin: origin,
                                                   hashSource: hashSource), jobID: job.id, partial: partial)
            }
            // Without a validator, pieces fetched at different times could come from different
            // versions: such a file is fetched whole, in one response, and never resumed.
            // In a swarm the pieces pin every byte, so ranges need no validator.
            let useRanges = rangesWork && remote.acceptsRanges && (remote.rangeValidator != nil || isSwarm)
            let resumeFrom = useRanges ? durable : IntervalSet()
            do {
                try checkFreeSpace(for: remote.size, partial: partial)
            } catch {
                if partial.currentSize == 0 { try? discard(job.id, partial: partial) }
                throw error
            }
            partial.reserveOnFirstWrite(remote.size)
            progress.setResumed(resumeFrom.count, for: role)
            progress.stage(.downloading, file: role)
            do {
                let digest: String
                let offer: SwarmBoard.Offer?
                do {
                    (digest, offer) = try await transfer(remote, into: partial, resuming: resumeFrom, jobID: job.id, useRanges: useRanges)
                } catch {
                    // Nothing arrived: no partial file and no job are left behind to resume.
                    if partial.currentSize == 0 { try? discard(job.id, partial: partial) }
                    throw error
                }
                try journal.recordFinished(job.id, sha256: digest)
                try check(digest, against: expectedHash, partial: partial, jobID: job.id)
                return Result(file: DownloadedFile(role: role, path: partial.path, sha256: digest, origin: origin,
                                                   hashSource: hashSource), jobID: job.id, partial: partial, offer: offer)
            } catch let failure as FetchFailure {
                // The server's file is not the one the partial holds, or ranges do not work:
                // throw the partial away and start clean, never splicing two versions.
                var limit = 3
                switch failure {
                case .rangeIgnored: rangesWork = false
                case .remoteChanged: break
                case .wholeFileInterrupted: limit = configuration.maximumAttempts
                default: throw failure
                }
                try discard(job.id, partial: partial)
                restarts += 1
                guard restarts <= limit else {
                    if case .wholeFileInterrupted(let reason) = failure {
                        throw TransferError(.unreachable, "\(reason); the server cannot resume this file, and \(restarts) whole attempts failed")
                    }
                    throw TransferError(.unreachable, "\(source.redacted) kept changing while it was downloaded; try again later")
                }
                if case .wholeFileInterrupted = failure { try await Task.sleep(for: configuration.backoff(attempt: restarts)) }
                remote = try await probe()
            }
        }
    }

    /// While another process downloads this file, shows its progress from the journal.
    private func showSharedProgress() {
        progress.shared(true)
        if let (_, done) = try? journal.progress(forKey: key) ?? (0, 0) { progress.setCompleted(done, for: role) }
    }

    /// A stored blob with the expected bytes makes the download unnecessary.
    private func cachedFile(_ expected: ExpectedHash?, origin: FileOrigin, size: UInt64) throws -> Result? {
        guard let expected, let path = try store.storedBlobPath(sha256: expected.sha256) else { return nil }
        progress.setResumed(size, for: role)
        return Result(file: DownloadedFile(role: role, path: path, sha256: expected.sha256, origin: origin,
                                           hashSource: expected.source), jobID: nil)
    }

    /// The journal's job when it holds the same version of the file, else a fresh one.
    /// A partial whose bytes are pinned by a hash known in advance continues from any address
    /// of them (a mirror); the hash check at the end catches an address that lied.
    private func prepareJob(_ remote: RemoteFile, expected: ExpectedHash?) throws -> TransferJobRecord {
        let now = Date().timeIntervalSince1970
        let fresh = TransferJobRecord(id: UUID().uuidString, sourceKey: key, source: source.redacted,
                                      partialPath: store.temporaryDirectoryPath + "/download-\(UUID().uuidString).partial",
                                      size: Int64(remote.size), etag: remote.etag, lastModified: remote.lastModified,
                                      expectedSHA256: expected?.sha256, sha256: nil, createdAt: now, updatedAt: now)
        var moved = false
        let (job, isNew) = try journal.job(forKey: key, orStart: fresh) { job in
            let sameVersion = remote.isSameVersion(as: (UInt64(job.size), job.etag, job.lastModified))
            let movedToMirror = job.source != source.redacted && self.expected != nil && UInt64(job.size) == remote.size
            // In a swarm the validators may be the peers' or none (the CDN was down).
            let pinnedByPieces = isSwarm && UInt64(job.size) == remote.size
            moved = !sameVersion && (movedToMirror || pinnedByPieces)
            return (sameVersion || moved) && job.expectedSHA256 == expected?.sha256
        }
        if !isNew && moved { try journal.moveJob(job.id, to: source.redacted, etag: remote.etag, lastModified: remote.lastModified) }
        return job
    }

    /// Free space the store's disk keeps after a download.
    static let freeSpaceMargin: UInt64 = 256 << 20

    /// Refuses a download the disk cannot hold, before anything is allocated.
    private func checkFreeSpace(for size: UInt64, partial: PartialFile) throws(TransferError) {
        let needed = size - min(size, partial.currentSize)
        guard let available = availableBytes(at: store.temporaryDirectoryPath), needed + Self.freeSpaceMargin > available else { return }
        throw TransferError(.diskFull, "\(source.redacted) is \(ByteCount.format(size)); the store's disk has \(ByteCount.format(available)) free and keeps \(ByteCount.format(Self.freeSpaceMargin)) spare. Free some space or use a store on another disk")
    }

    private func check(_ digest: String, against expected: ExpectedHash?, partial: PartialFile, jobID: String) throws {
        guard let expected, expected.sha256 != digest else { return }
        try discard(jobID, partial: partial)
        throw TransferError(.checksumMismatch, "\(source.redacted) does not match its expected SHA-256 (from the \(expected.source.rawValue)): expected \(expected.sha256), found \(digest); the download was discarded")
    }

    private func discard(_ jobID: String, partial: PartialFile) throws {
        unlink(partial.path)
        try journal.removeJob(jobID)
    }

    // MARK: The transfer

    /// What ends a task of a download: a lane (connection) stopping, the whole-file hash,
    /// peers found to join, or a helper stopping.
    private enum LaneEvent: Sendable {
        case laneEnded
        case hashed(String)
        case joined([Lane])
        case helperEnded
    }

    /// Fetches the file over its lanes. In a swarm (a hash known, a piece manifest, peers or a
    /// way to find them) lanes pick pieces: a peer's the rarest of those it has, the primary
    /// source's those no peer has or fetches; verified pieces are offered to other peers on
    /// the board, and peers that join later get lanes of their own.
    private func transfer(_ remote: RemoteFile, into partial: PartialFile, resuming done: IntervalSet,
                          jobID: String, useRanges: Bool) async throws -> (String, SwarmBoard.Offer?) {
        let swarmMode = useRanges && isSwarm
        let swarm = Swarm()
        var peerLanes: [Lane] = []
        if swarmMode { for peer in peers { peerLanes += await join(peer, size: remote.size, swarm: swarm) } }
        let primary = Lane(fetcher: fetcher, address: CurrentAddress(remote), peer: nil)
        // With a peer that holds the whole file, one connection to the primary source fills in
        // behind the peers, after their head start; peers still downloading have only part.
        let view = swarm.view
        let completePeer = peerLanes.contains { lane in lane.peer.map { view.peers[$0].map == nil } ?? false }
        let lanes = peerLanes + Array(repeating: primary, count: completePeer || !useRanges ? 1 : max(1, configuration.connections))
        for lane in lanes { _ = swarm.addWorker(peer: lane.peer) }
        let scheduler = RangeScheduler(size: remote.size, completed: done, pieces: pieces, connections: lanes.count,
                                       minimumSplit: configuration.minimumSplitBytes,
                                       checkpointBytes: configuration.checkpointBytes)
        let checkpoint = Checkpoint(scheduler: scheduler, partial: partial, journal: journal, jobID: jobID)
        var offer: SwarmBoard.Offer?
        if swarmMode, let board = configuration.board, let expected, let pieces {
            offer = board.publish(sha256: expected.sha256, path: partial.path, size: remote.size, pieces: pieces, verified: done)
            offer.map { swarm.share(as: $0.download) }
        }
        let context = LaneContext(swarm: swarm, partial: partial, scheduler: scheduler, checkpoint: checkpoint,
                                  offer: offer, swarmMode: swarmMode, firstPrimaryWorker: peerLanes.count)
        do {
            let digest = try await withThrowingTaskGroup(of: LaneEvent.self) { group in
                func start(_ worker: Int, _ lane: Lane, headStart: Bool) {
                    group.addTask {
                        if headStart && lane.peer == nil { try await Task.sleep(for: configuration.peerHeadStart) }
                        do {
                            try await work(worker, lane: lane, context, useRanges: lane.peer != nil || useRanges)
                        } catch where swarmMode && !(error is CancellationError) {
                            // In a swarm a source that fails or lies costs only its own
                            // connections; the download fails when every source has.
                            scheduler.release(worker: worker)
                            if let peer = lane.peer { swarm.drop(peer, because: "\(error)") } else { swarm.primaryFailed(error) }
                        }
                        return .laneEnded
                    }
                }
                for (worker, lane) in lanes.enumerated() { start(worker, lane, headStart: completePeer) }
                group.addTask { .hashed(try await hashPrefix(of: partial, scheduler: scheduler, size: remote.size)) }
                group.addTask { try await keepCheckpointing(checkpoint, scheduler: scheduler); return .helperEnded }
                if swarmMode {
                    group.addTask { try await refreshHaveMaps(swarm, size: remote.size); return .helperEnded }
                    if let findPeers { group.addTask { .joined(try await search(findPeers, swarm: swarm, size: remote.size)) } }
                }
                var running = lanes.count
                for try await event in group {
                    switch event {
                    case .hashed(let digest):
                        // A source may still be backing off from a failure: the file is complete.
                        group.cancelAll()
                        return digest
                    case .joined(let joined):
                        for lane in joined { start(swarm.addWorker(peer: lane.peer), lane, headStart: false) }
                        running += joined.count
                        if let findPeers { group.addTask { .joined(try await search(findPeers, swarm: swarm, size: remote.size)) } }
                    case .laneEnded:
                        running -= 1
                        if running == 0 && !scheduler.isComplete { throw swarm.failure(of: source.redacted) }
                    case .helperEnded:
                        break
                    }
                }
                throw CancellationError()
            }
            try checkpoint.take()
            return (digest, offer)
        } catch {
            // Keep what arrived: the next run resumes from here.
            try? checkpoint.take()
            throw error
        }
    }

    /// A peer that answers for a file of `size` bytes with ranges, and a have-map of this
    /// download's pieces if it has one (a peer without one holds the whole blob), as lanes;
    /// none for a peer that does not fit.
    private func join(_ peer: any RangeSource, size: UInt64, swarm: Swarm) async -> [Lane] {
        guard let pieces, let remote = try? await peer.probe(), remote.size == size, remote.acceptsRanges else { return [] }
        let map = await peer.haveMap(pieceSize: pieces.pieceSize)
        if let map, map.problem(size: size, pieceSize: pieces.pieceSize) != nil { return [] }
        let index = swarm.addPeer(peer, map: map?.complete == true ? nil : map)
        return Array(repeating: Lane(fetcher: peer, address: CurrentAddress(remote), peer: index),
                     count: max(1, peer.connectionLimit ?? configuration.connectionsPerPeer))
    }

    /// Asks for peers until some new ones answer; their lanes. Soon at first, then less and
    /// less often (up to `peerSearchInterval`): agents that start together learn of each
    /// other before their CDN connections overlap much, and a swarm that is still forming
    /// is asked again soon after each newcomer.
    private func search(_ finder: PeerFinder, swarm: Swarm, size: UInt64) async throws -> [Lane] {
        var interval = configuration.haveMapInterval
        while true {
            try await Task.sleep(for: interval)
            interval = min(interval * 2, configuration.peerSearchInterval)
            var lanes: [Lane] = []
            for source in await finder.find() where !swarm.knows(source.url) {
                guard let peer = try? HTTPFetcher.peer(source, client: fetcher.client, stallTimeout: configuration.stallTimeout) else { continue }
                lanes += await join(peer, size: size, swarm: swarm)
            }
            if !lanes.isEmpty { return lanes }
        }
    }

    /// Keeps the have-maps of peers that are still downloading current; a peer whose map is
    /// missing three times in a row is dropped.
    private func refreshHaveMaps(_ swarm: Swarm, size: UInt64) async throws {
        guard let pieces else { return }
        while true {
            try await Task.sleep(for: configuration.haveMapInterval)
            for (peer, fetcher) in swarm.partialPeers {
                let map = await fetcher.haveMap(pieceSize: pieces.pieceSize)
                swarm.update(peer, map: map.flatMap { $0.problem(size: size, pieceSize: pieces.pieceSize) == nil ? $0 : nil })
            }
        }
    }

    /// What the lanes of one transfer share.
    private struct LaneContext: Sendable {
        let swarm: Swarm
        let partial: PartialFile
        let scheduler: RangeScheduler
        let checkpoint: Checkpoint
        let offer: SwarmBoard.Offer?
        let swarmMode: Bool
        /// Workers from this one on fetch from the primary source.
        let firstPrimaryWorker: Int
    }

    /// The next range for a lane in a swarm: a peer's lane takes the rarest pieces that peer
    /// has; the primary source's, pieces no peer has and none is fetching from its own
    /// primary source (other downloaders' CDN pieces come to this one through them), unless
    /// it has waited `patience` for them; and of those, only this download's share (the
    /// others' come through them), again unless it has waited `patience`. The primary source's connections are shared out:
    /// with n peers a download keeps 1/(n + 1) of them busy, so a swarm's downloaders together
    /// hold about as many CDN connections as one would, and few chase the same last pieces.
    private func takeInSwarm(_ worker: Int, lane: Lane, _ context: LaneContext, patient: Bool, continuing: UInt64?) -> Range<UInt64>? {
        guard let pieces else { return nil }
        let step = Self.requestStep(pieceSize: pieces.pieceSize)
        let view = context.swarm.view
        let scheduler = context.scheduler
        if let peer = lane.peer {
            let offered = { view.offers(peer, $0) }
            return scheduler.takePieces(worker: worker, maximumBytes: step, offered: offered, holders: view.holders)
                ?? scheduler.stealPieces(worker: worker, age: configuration.endgameAfter, offered: offered)
        }
        // The primary source takes no piece from a peer's range, only copies of slow ones
        // (`endgamePiece`), checked before they are written.
        guard isPrimaryLaneInUse(worker, view: view, context) else { return nil }
        let blockPieces = Int(step / pieces.pieceSize)
        return scheduler.takePieces(worker: worker, maximumBytes: step, continuing: continuing, offered: { piece in
            view.holders(piece) == 0 && (!patient || (!view.isFetchedElsewhere(piece) && view.isOwnShare(piece, blockPieces: blockPieces)))
        }, holders: { _ in 0 })
    }

    /// Whether a primary source's lane takes work now: with n peers, a download keeps
    /// 1/(n + 1) of its primary connections busy.
    private func isPrimaryLaneInUse(_ worker: Int, view: Swarm.View, _ context: LaneContext) -> Bool {
        let activePeers = view.peers.count - view.dropped.count
        return worker - context.firstPrimaryWorker < max(1, configuration.connections / (activePeers + 1))
    }

    /// The endgame: a piece another source has been slow to finish, for this lane to fetch
    /// as well, if its source has it.
    private func endgamePiece(_ worker: Int, lane: Lane, _ context: LaneContext) -> Int? {
        let (swarm, view) = (context.swarm, context.swarm.view)
        let otherSource = { (victim: Int) in swarm.peer(of: victim) != lane.peer }
        if let peer = lane.peer {
            return context.scheduler.endgamePiece(worker: worker, age: configuration.endgameAfter, slower: otherSource) { view.offers(peer, $0) }
        }
        guard isPrimaryLaneInUse(worker, view: view, context) else { return nil }
        return context.scheduler.endgamePiece(worker: worker, age: configuration.endgameAfter, slower: otherSource) { _ in true }
    }

    /// Fetches a second copy of a piece into memory. A copy that matches the manifest takes
    /// the piece over from the slower source (which stops) and is written; one that does not
    /// is dropped unwritten, and its peer with it: a liar never overwrites a piece.
    private func duplicate(_ index: Int, worker: Int, lane: Lane, _ context: LaneContext) async throws {
        guard let pieces else { return }
        let scheduler = context.scheduler
        let range = pieces.range(of: index, fileSize: scheduler.size)
        let copy = PieceCopy(capacity: range.count)
        let remote = await lane.address.remote
        do {
            try await lane.fetcher.fetch(remote, range: range, validator: remote.rangeValidator) { _, chunk in
                guard !scheduler.isSettled(index) else { return false }
                copy.append(chunk)
                return true
            }
        } catch {
            scheduler.endgameEnded(index)
            throw error
        }
        guard copy.count == range.count, !scheduler.isSettled(index) else { return scheduler.endgameEnded(index) }
        guard copy.hash(pieces, fileSize: scheduler.size) == pieces.sha256[index].lowercased() else {
            // The piece stays marked as copied: no source is asked for another copy of it.
            if let peer = lane.peer {
                context.swarm.drop(peer, because: "sent a bad piece \(index)")
                context.swarm.account(of: peer)?.badPiece(index)
            }
            return
        }
        guard let counted = scheduler.takeOver(index, by: worker) else { return }
        while scheduler.isWriting(into: range) { try await Task.sleep(for: .milliseconds(1)) }
        // The slower source may have finished the piece meanwhile: its own check decides.
        guard !scheduler.isSettled(index) else { return }
        try copy.write(to: context.partial, at: range.lowerBound)
        progress.add(range.count - Int(counted), for: role)
        _ = scheduler.takeWriters(of: index)
        for piece in scheduler.recordWritten(range, by: worker) { try checkPiece(piece, context) }
    }

    /// How long the primary source's lane leaves pieces to the downloaders that fetch them
    /// from theirs.
    static let patience: Duration = .seconds(10)

    /// One connection: takes ranges until none are left, retrying with back-off. In a swarm,
    /// a connection waits for work until the file is complete (a peer may fail, or a piece be
    /// found bad, after it ran out; a partial peer verifies more); a peer's stops once it is
    /// dropped, or when it has had nothing to offer for the stall timeout.
    private func work(_ worker: Int, lane: Lane, _ context: LaneContext, useRanges: Bool) async throws {
        let (swarm, partial, scheduler) = (context.swarm, context.partial, context.scheduler)
        var failures = 0, busy = 0
        let role = self.role, progress = self.progress
        let clock = ContinuousClock()
        var idleSince = clock.now
        // Once a lane has waited `patience` for work, it no longer leaves pieces to others.
        var impatient = false
        var lastEnd: UInt64?
        while true {
            if let peer = lane.peer, swarm.isDropped(peer) { return }
            impatient = impatient || clock.now - idleSince >= Self.patience
            let taken = scheduler.remaining(worker: worker)
                ?? (context.swarmMode ? takeInSwarm(worker, lane: lane, context, patient: !impatient, continuing: lastEnd)
                                      : scheduler.take(worker: worker))
            guard let range = taken else {
                guard context.swarmMode, !scheduler.isComplete else { return }
                if let piece = endgamePiece(worker, lane: lane, context) {
                    do {
                        try await duplicate(piece, worker: worker, lane: lane, context)
                        (failures, idleSince) = (0, clock.now)
                        continue
                    } catch FetchFailure.transient(let reason), FetchFailure.busy(let reason) {
                        // The copy was a spare (the slower source still has the piece), but a
                        // source that keeps failing stops like any other.
                        failures += 1
                        guard failures <= (lane.peer == nil ? configuration.maximumAttempts : 2) else {
                            throw TransferError(.unreachable, "\(reason); gave up after \(failures) attempts")
                        }
                        try await Task.sleep(for: configuration.backoff(attempt: failures))
                        continue
                    }
                }
                if lane.peer != nil && clock.now - idleSince > configuration.stallTimeout { return }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            idleSince = clock.now
            let request = lane.peer == nil ? range : Self.peerRequest(range, pieceSize: pieces?.pieceSize)
            lastEnd = request.upperBound
            let fromPrimary = context.swarmMode && lane.peer == nil ? pieces?.pieces(touching: request) : nil
            if let fromPrimary { context.offer?.fetching(fromPrimary, true) }
            defer { if let fromPrimary { context.offer?.fetching(fromPrimary, false) } }
            let received = ByteCounter()
            let remote = await lane.address.remote
            do {
                try await lane.fetcher.fetch(remote, range: useRanges ? request : nil, validator: remote.rangeValidator) { offset, chunk in
                    if let peer = lane.peer, swarm.isDropped(peer) { return false }
                    let allowed = scheduler.claim(worker: worker, offset: offset, length: chunk.readableBytes)
                    guard allowed > 0 else { return false }
                    try partial.write(chunk, count: allowed, at: offset)
                    received.add(allowed)
                    progress.add(allowed, for: role)
                    for piece in scheduler.recordWritten(offset..<offset + UInt64(allowed), by: worker) {
                        try checkPiece(piece, context)
                    }
                    return !scheduler.isFinished(worker: worker)
                }
                if let peer = lane.peer, swarm.isDropped(peer) { throw FetchFailure.transient("dropped") }
                if let rest = scheduler.remaining(worker: worker), rest.lowerBound < request.upperBound {
                    throw FetchFailure.transient("the server ended the response before the range was complete")
                }
                (failures, busy) = (0, 0)
            } catch FetchFailure.addressExpired(let failed) {
                scheduler.release(worker: worker)
                failures += 1
                guard failures <= configuration.maximumAttempts else {
                    throw TransferError(.rejected, "the download address for \(source.redacted) keeps being refused; the partial download is kept: pull again to resume")
                }
                // Only the primary source redirects to signed addresses.
                guard lane.peer == nil else { throw FetchFailure.transient("\(lane.fetcher.address) refused its own address") }
                _ = try await lane.address.refresh(after: failed, using: fetcher)
            } catch FetchFailure.busy(let reason) where lane.peer != nil {
                // A peer serving others now: ask again shortly, for a while.
                scheduler.release(worker: worker)
                busy += 1
                guard busy <= Self.busyRetries else {
                    throw TransferError(.unreachable, "\(reason); it stayed busy for \(busy) attempts")
                }
                try await Task.sleep(for: configuration.backoff(attempt: min(busy, 3)))
            } catch FetchFailure.transient(let reason) where !useRanges, FetchFailure.busy(let reason) where !useRanges {
                throw FetchFailure.wholeFileInterrupted(reason)
            } catch FetchFailure.transient(let reason), FetchFailure.busy(let reason) {
                scheduler.release(worker: worker)
                // A peer gets one retry: others hold the same bytes.
                failures = received.value > 0 ? 1 : failures + 1
                guard failures <= (lane.peer == nil ? configuration.maximumAttempts : 2) else {
                    throw TransferError(.unreachable, "\(reason); gave up after \(failures) attempts. The partial download is kept: pull again to resume")
                }
                try await Task.sleep(for: configuration.backoff(attempt: failures))
            } catch {
                scheduler.release(worker: worker)
                throw error
            }
        }
    }

    /// Times in a row a peer may answer that it is busy before its connection stops.
    static let busyRetries = 40

    /// Bytes asked for at once in a swarm: a megabyte or a piece, whichever is larger, in
    /// whole pieces.
    static func requestStep(pieceSize: UInt64) -> UInt64 { max(pieceSize, (1 << 20) / pieceSize * pieceSize) }

    /// What a peer is asked for at once: a megabyte or a piece, whichever is larger, ending on
    /// a piece boundary, so each request carries a receipt for nearly all that came before.
    static func peerRequest(_ range: Range<UInt64>, pieceSize: UInt64?) -> Range<UInt64> {
        guard let pieceSize, pieceSize > 0 else { return range }
        let step = requestStep(pieceSize: pieceSize)
        return range.lowerBound..<min(range.upperBound, (range.lowerBound / step + 1) * step)
    }

    /// Reads a completed piece back and compares it with the manifest; a bad piece goes back
    /// to be fetched again, up to `pieceAttempts` times.
    private func checkPiece(_ index: Int, _ context: LaneContext) throws {
        guard let pieces else { return }
        let (partial, scheduler, swarm) = (context.partial, context.scheduler, context.swarm)
        let writers = scheduler.takeWriters(of: index)
        let range = pieces.range(of: index, fileSize: scheduler.size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 4096)
        defer { buffer.deallocate() }
        try partial.read(into: buffer, count: range.count, at: range.lowerBound)
        let found = pieces.hash(of: UnsafeRawBufferPointer(buffer), fileSize: scheduler.size)
        let good = found == pieces.sha256[index].lowercased()
        let failures = scheduler.pieceChecked(index, good: good)
        // Pieces are split on their boundaries, so the writers are the sources of these bytes.
        let peers = Set(writers.compactMap { swarm.peer(of: $0) })
        guard !good else {
            context.offer?.verified(index)
            for peer in peers { swarm.account(of: peer)?.verified(UInt64(range.count / peers.count)) }
            return
        }
        progress.add(-range.count, for: role)
        for peer in peers {
            swarm.drop(peer, because: "sent a bad piece \(index)")
            swarm.account(of: peer)?.badPiece(index)
        }
        guard failures < configuration.pieceAttempts else {
            throw TransferError(.checksumMismatch, "piece \(index) (bytes \(range.lowerBound)–\(range.upperBound - 1)) of \(source.redacted) does not match the piece manifest after \(failures) fetches: expected \(pieces.sha256[index]), found \(found). The pieces that matched are kept")
        }
    }

    /// Takes journal checkpoints beside the connections: once `checkpointBytes` were written
    /// since the last, or `checkpointInterval` passed with anything new. Between checkpoints
    /// the kernel is asked to start writing back what arrived, so a checkpoint's flush finds
    /// little left to write, and no connection waits for a flush.
    private func keepCheckpointing(_ checkpoint: Checkpoint, scheduler: RangeScheduler) async throws {
        var last = ContinuousClock.now
        while true {
            try await Task.sleep(for: .milliseconds(50))
            guard scheduler.bytesSinceCheckpoint > 0 else { continue }
            if scheduler.isCheckpointDue || ContinuousClock.now - last >= configuration.checkpointInterval {
                try await checkpoint.takeOffThread()
                last = .now
            } else {
                checkpoint.partial.startWriteback()
            }
        }
    }

    /// The whole-file SHA-256, computed over the written prefix as it grows, so verifying
    /// adds little after the last byte arrives.
    private func hashPrefix(of partial: PartialFile, scheduler: RangeScheduler, size: UInt64) async throws -> String {
        var hasher = SHA256()
        var hashed: UInt64 = 0
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        while hashed < size {
            let available = scheduler.contiguousPrefix
            guard available > hashed else {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            let count = Int(min(UInt64(chunk), available - hashed))
            try partial.read(into: buffer, count: count, at: hashed)
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            hashed += UInt64(count)
        }
        return hasher.finalize().hexString
    }

    private func retrying<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do { return try await body() } catch FetchFailure.transient(let reason), FetchFailure.busy(let reason) {
                attempt += 1
                guard attempt <= configuration.maximumAttempts else {
                    throw TransferError(.unreachable, "\(reason); gave up \(what) after \(attempt) attempts")
                }
                try await Task.sleep(for: configuration.backoff(attempt: attempt))
            }
        }
    }
}

/// Flushes the partial file, then records what is written in the journal: after a kill, the
/// journal never claims bytes that were not on disk.
final class Checkpoint: @unchecked Sendable {
    // `lock` serialises checkpoints from several connections and guards `flushFailed`.
    private let lock = NSLock()
    /// After a failed flush the kernel may report success for the same lost pages next time,
    /// so nothing more is ever recorded for this run.
    private var flushFailed = false
    let scheduler: RangeScheduler
    let partial: PartialFile
    let journal: TransferJournal
    let jobID: String

    init(scheduler: RangeScheduler, partial: PartialFile, journal: TransferJournal, jobID: String) {
        self.scheduler = scheduler
        self.partial = partial
        self.journal = journal
        self.jobID = jobID
    }

    func take() throws {
        try lock.withLock {
            guard !flushFailed else { return }
            let written = scheduler.checkpointRanges
            scheduler.checkpointTaken()
            do { try partial.sync() } catch {
                flushFailed = true
                throw error
            }
            try journal.recordRanges(written, of: jobID)
        }
    }
}

/// An endgame copy of one piece, received in order.
final class PieceCopy: @unchecked Sendable {
    // Guarded by `lock`.
    private var buffer: ByteBuffer
    private let lock = NSLock()

    init(capacity: Int) { buffer = ByteBufferAllocator().buffer(capacity: capacity) }

    func append(_ chunk: ByteBuffer) { lock.withLock { _ = buffer.writeImmutableBuffer(chunk) } }
    var count: Int { lock.withLock { buffer.readableBytes } }

    func hash(_ pieces: PieceManifest, fileSize: UInt64) -> String {
        lock.withLock { buffer.withUnsafeReadableBytes { pieces.hash(of: $0, fileSize: fileSize) } }
    }

    func write(to partial: PartialFile, at offset: UInt64) throws {
        try lock.withLock { try partial.write(buffer, count: buffer.readableBytes, at: offset) }
    }
}

extension Checkpoint {
    /// `take`, on a thread of its own: a flush may block for a while, and the cooperative
    /// threads carry the connections.
    func takeOffThread() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async {
                do {
                    try self.take()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// Bytes one attempt received, to tell a failing connection from one that made progress.
final class ByteCounter: @unchecked Sendable {
    // Guarded by `lock`.
    private var count = 0
    private let lock = NSLock()
    func add(_ bytes: Int) { lock.withLock { count += bytes } }
    var value: Int { lock.withLock { count } }
}

/// One source a connection fetches from: the primary source (and its mirrors' fallbacks), or a
/// peer (`peer` is its index in `FileDownload.peers`).
struct Lane: Sendable {
    let fetcher: any RangeSource
    let address: CurrentAddress
    let peer: Int?
}

/// The sources of one download: its peers (with their have-maps, for those still
/// downloading), which connection fetches from which, and which peers were dropped (failed,
/// or sent a bad piece): their connections stop, and the rest comes from the others.
final class Swarm: @unchecked Sendable {
    struct Peer {
        let fetcher: any RangeSource
        /// Nil for a peer that holds the whole blob.
        var map: HaveMap? { didSet { seed = map?.download.map(Swarm.seed(of:)) } }
        var missedMaps = 0
        /// The share seed of the peer's download, from its map.
        private(set) var seed: UInt64?

        init(fetcher: any RangeSource, map: HaveMap?) {
            self.fetcher = fetcher
            self.map = map
            seed = map?.download.map(Swarm.seed(of:))
        }
    }

    /// A download name's seed for sharing out blocks: FNV-1a, the same in every process.
    static func seed(of download: String) -> UInt64 {
        download.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    }

    /// A download's score for a block (SplitMix64's finaliser): the highest score's owns it.
    static func score(_ seed: UInt64, _ block: UInt64) -> UInt64 {
        var z = seed &+ (block &+ 1) &* 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A consistent copy for picking pieces, read without the lock.
    struct View {
        let peers: [Peer]
        let dropped: Set<Int>
        /// This download's share seed (`Swarm.seed(of:)`), when peers can see its name.
        let ownSeed: UInt64?

        /// Whether piece `piece` falls in this download's share of what the downloaders fetch
        /// from their primary sources: blocks of `blockPieces` pieces are shared out by
        /// rendezvous hashing over the names of the downloads (this one and the peers still
        /// downloading), so downloaders that started together fetch different blocks from
        /// the CDN without asking each other, and each knows at once whose a block is.
        func isOwnShare(_ piece: Int, blockPieces: Int) -> Bool {
            guard let ownSeed else { return true }
            let block = UInt64(piece / max(1, blockPieces))
            let own = Swarm.score(ownSeed, block)
            return !peers.indices.contains { index in
                !dropped.contains(index) && peers[index].map != nil && peers[index].seed.map { Swarm.score($0, block) > own } == true
            }
        }

        func offers(_ peer: Int, _ piece: Int) -> Bool {
            !dropped.contains(peer) && (peers[peer].map.map { $0.have.contains(piece) } ?? true)
        }
        func holders(_ piece: Int) -> Int { peers.indices.count { offers($0, piece) } }
        func isFetchedElsewhere(_ piece: Int) -> Bool {
            peers.indices.contains { !dropped.contains($0) && peers[$0].map?.fetching.contains(piece) == true }
        }
    }

    // Guarded by `lock`.
    private var peers: [Peer] = []
    private var peerOfWorker: [Int?] = []
    private var dropped: [Int: String] = [:]
    private var primaryFailure: (any Error)?
    private var ownSeed: UInt64?
    private let lock = NSLock()

    /// Names this download as its have-maps do, so its share of the primary source's pieces
    /// is counted.
    func share(as download: String) { lock.withLock { ownSeed = Self.seed(of: download) } }

    /// Adds a peer; its index.
    func addPeer(_ fetcher: any RangeSource, map: HaveMap?) -> Int {
        lock.withLock {
            peers.append(Peer(fetcher: fetcher, map: map))
            return peers.count - 1
        }
    }

    /// Adds a connection to `peer` (nil: the primary source); its worker number.
    func addWorker(peer: Int?) -> Int {
        lock.withLock {
            peerOfWorker.append(peer)
            return peerOfWorker.count - 1
        }
    }

    func knows(_ url: String) -> Bool { lock.withLock { peers.contains { $0.fetcher.address == url } } }
    var view: View { lock.withLock { View(peers: peers, dropped: Set(dropped.keys), ownSeed: ownSeed) } }
    func peer(of worker: Int) -> Int? { lock.withLock { peerOfWorker.indices.contains(worker) ? peerOfWorker[worker] : nil } }
    func account(of peer: Int) -> PeerAccount? { lock.withLock { peers[peer].fetcher.account } }

    /// The peers still downloading, whose maps change.
    var partialPeers: [(Int, any RangeSource)] {
        lock.withLock { peers.indices.filter { dropped[$0] == nil && peers[$0].map != nil }.map { ($0, peers[$0].fetcher) } }
    }

    /// A peer's latest map (nil: it did not answer with one). A complete map ends the
    /// refreshing; three misses in a row drop the peer.
    func update(_ peer: Int, map: HaveMap?) {
        lock.withLock {
            guard let map else {
                peers[peer].missedMaps += 1
                if peers[peer].missedMaps >= 3, dropped[peer] == nil { dropped[peer] = "its have-map stopped answering" }
                return
            }
            peers[peer].missedMaps = 0
            peers[peer].map = map.complete ? nil : map
        }
    }

    func isDropped(_ peer: Int) -> Bool { lock.withLock { dropped[peer] != nil } }
    func drop(_ peer: Int, because reason: String) { lock.withLock { if dropped[peer] == nil { dropped[peer] = reason } } }

    func primaryFailed(_ error: any Error) { lock.withLock { primaryFailure = error } }

    /// Why the download failed once every source stopped: the primary source's error, with
    /// the peers' reasons.
    func failure(of source: String) -> any Error {
        lock.withLock {
            let peers = dropped.sorted { $0.key < $1.key }.map(\.value).joined(separator: "; ")
            if let error = primaryFailure as? TransferError {
                return TransferError(error.code, error.message + (peers.isEmpty ? "" : " (peers: \(peers))"))
            }
            return TransferError(.unreachable, "\(source) and every peer failed\(primaryFailure.map { ": \($0)" } ?? "")\(peers.isEmpty ? "" : " (peers: \(peers))"). The partial download is kept: pull again to resume")
        }
    }
}
