import Foundation

/// Hands out the byte ranges of one file to parallel connections and keeps track of what
/// has been written. A connection that runs out of work takes the upper half of the largest
/// range still in progress (work stealing), so one slow connection never holds up the end.
///
/// With a piece manifest, bytes count as done only once their piece is checked: a bad piece
/// goes back to the pending ranges, and the hash and the journal see only checked pieces.
///
/// Called for every received chunk, so it is a lock, not an actor: no suspension per chunk.
final class RangeScheduler: @unchecked Sendable {
    // All state below is guarded by `lock`.
    private var pending: [Range<UInt64>]
    private var assignments: [Int: (next: UInt64, end: UInt64)] = [:]
    private var written: IntervalSet
    /// Pieces checked good (with a manifest); otherwise the same as `written`.
    private var verified: IntervalSet
    /// Pieces being checked now, and how often each was found bad.
    private var checking: Set<Int> = []
    private var pieceFailures: [Int: Int] = [:]
    /// The workers that wrote into each unchecked piece (with a manifest), so a bad piece
    /// names the sources it came from.
    private var writers: [Int: Set<Int>] = [:]
    private var writtenSinceCheckpoint: UInt64 = 0
    private let lock = NSLock()

    let size: UInt64
    let pieces: PieceManifest?
    let minimumSplit: UInt64
    let checkpointBytes: UInt64

    /// `completed` is what the journal says is already on disk.
    init(size: UInt64, completed: IntervalSet, pieces: PieceManifest? = nil, connections: Int,
         minimumSplit: UInt64, checkpointBytes: UInt64) {
        self.size = size
        self.pieces = pieces
        self.minimumSplit = max(minimumSplit, 1)
        self.checkpointBytes = checkpointBytes
        var done = completed
        if let pieces {
            // Only whole pieces count: with a manifest the journal records nothing else.
            let count = PieceManifest.pieceCount(fileSize: size, pieceSize: pieces.pieceSize)
            done = IntervalSet((0..<count).map { pieces.range(of: $0, fileSize: size) }.filter { completed.covers($0) })
        }
        written = done
        verified = done
        var pieces = done.gaps(upTo: size)
        // Start with at least one range per connection, splitting the largest gap in half.
        while pieces.count < connections, let largest = pieces.indices.max(by: { pieces[$0].count < pieces[$1].count }),
              UInt64(pieces[largest].count) >= 2 * self.minimumSplit,
              let middle = Self.middle(of: pieces[largest], pieceSize: self.pieces?.pieceSize) {
            let range = pieces[largest]
            pieces.replaceSubrange(largest...largest, with: [range.lowerBound..<middle, middle..<range.upperBound])
        }
        pending = pieces
    }

    /// Bytes written so far, including what the journal had.
    var writtenBytes: UInt64 { lock.withLock { written.count } }
    /// End of the contiguous prefix the whole-file hash may read: written, and checked when
    /// there is a manifest.
    var contiguousPrefix: UInt64 { lock.withLock { (pieces == nil ? written : verified).contiguousPrefix } }
    /// What a checkpoint may record as done.
    var checkpointRanges: IntervalSet { lock.withLock { pieces == nil ? written : verified } }

    /// The next range for `worker`: a pending one (lowest first, so the hash can start), else
    /// the upper half of the largest range another connection is still fetching.
    func take(worker: Int) -> Range<UInt64>? {
        lock.withLock {
            if !pending.isEmpty {
                let range = pending.removeFirst()
                assignments[worker] = (range.lowerBound, range.upperBound)
                return range
            }
            guard let (victim, work) = assignments.filter({ $0.key != worker })
                .max(by: { $0.value.end - $0.value.next < $1.value.end - $1.value.next }),
                  work.end - work.next >= 2 * minimumSplit,
                  let middle = Self.middle(of: work.next..<work.end, pieceSize: pieces?.pieceSize) else {
                assignments[worker] = nil
                return nil
            }
            assignments[victim] = (work.next, middle)
            assignments[worker] = (middle, work.end)
            return middle..<work.end
        }
    }

    /// Swarm picking (with a manifest): the pending bytes of a piece that `offered` says this
    /// worker's source has, the one fewest sources hold (`holders`), ties at random so
    /// downloaders spread over the pieces; extended over the pending pieces right after it
    /// that are offered too, up to `maximumBytes`. With `continuing`, the piece that starts
    /// there comes first when it is offered (a connection walks on through its own run of
    /// pieces, rather than landing where another downloader just started). Nil when nothing
    /// pending is offered.
    func takePieces(worker: Int, maximumBytes: UInt64, continuing: UInt64? = nil, offered: (Int) -> Bool,
                    holders: (Int) -> Int) -> Range<UInt64>? {
        lock.withLock {
            guard let pieces else { return nil }
            let pieceSize = pieces.pieceSize
            var rarest: [(piece: Int, pending: Int)] = []
            var fewest = Int.max
            for (position, range) in pending.enumerated() where !range.isEmpty {
                for piece in pieces.pieces(touching: range) where offered(piece) {
                    let count = holders(piece)
                    if count < fewest { (fewest, rarest) = (count, []) }
                    if count == fewest { rarest.append((piece, position)) }
                }
            }
            let next = continuing.map { Int($0 / pieceSize) }
            guard let (first, position) = rarest.first(where: { $0.piece == next }) ?? rarest.randomElement() else {
                assignments[worker] = nil
                return nil
            }
            let range = pending[position]
            let start = max(range.lowerBound, UInt64(first) * pieceSize)
            var end = min(range.upperBound, (UInt64(first) + 1) * pieceSize)
            while end < range.upperBound, end - start < maximumBytes, offered(Int(end / pieceSize)) {
                end = min(range.upperBound, end + pieceSize)
            }
            pending.replaceSubrange(position...position, with: [range.lowerBound..<start, end..<range.upperBound].filter { !$0.isEmpty })
            assignments[worker] = (start, end)
            return start..<end
        }
    }

    /// Whether bytes are still waiting for a source (not counting those being fetched).
    var hasPending: Bool { lock.withLock { !pending.isEmpty } }

    /// How many of `length` bytes at `offset` the worker may write (its range may have been
    /// shortened by a thief); claims them.
    func claim(worker: Int, offset: UInt64, length: Int) -> Int {
        lock.withLock {
            guard var work = assignments[worker], offset == work.next, offset < work.end else { return 0 }
            let allowed = min(UInt64(length), work.end - offset)
            work.next += allowed
            assignments[worker] = work
            return Int(allowed)
        }
    }

    /// The unclaimed rest of the worker's range, if any.
    func remaining(worker: Int) -> Range<UInt64>? {
        lock.withLock { assignments[worker].flatMap { $0.next < $0.end ? $0.next..<$0.end : nil } }
    }

    /// Whether the worker's range is fully claimed.
    func isFinished(worker: Int) -> Bool {
        lock.withLock { assignments[worker].map { $0.next >= $0.end } ?? true }
    }

    /// Where to split a range between two workers: its middle, moved to a piece boundary when
    /// there are pieces (so each piece comes from one source, and a bad one names it); nil
    /// when no boundary lies inside.
    static func middle(of range: Range<UInt64>, pieceSize: UInt64?) -> UInt64? {
        let middle = range.lowerBound + UInt64(range.count) / 2
        guard let pieceSize else { return middle }
        let down = middle / pieceSize * pieceSize
        if down > range.lowerBound { return down }
        let up = down + pieceSize
        return up < range.upperBound ? up : nil
    }

    /// Records bytes `worker` wrote. Returns whether enough accumulated for a checkpoint, and
    /// the pieces this write completed, which the caller checks and reports to `pieceChecked`.
    func recordWritten(_ range: Range<UInt64>, by worker: Int? = nil) -> (checkpointDue: Bool, completedPieces: [Int]) {
        lock.withLock {
            written.insert(range)
            writtenSinceCheckpoint += UInt64(range.count)
            var completed: [Int] = []
            if let pieces {
                for index in pieces.pieces(touching: range) where !checking.contains(index) {
                    if let worker { writers[index, default: []].insert(worker) }
                    let piece = pieces.range(of: index, fileSize: size)
                    if written.covers(piece) && !verified.covers(piece) {
                        checking.insert(index)
                        completed.append(index)
                    }
                }
            }
            return (writtenSinceCheckpoint >= checkpointBytes, completed)
        }
    }

    /// The outcome of checking a piece. A bad piece is pending again, lowest first; returns
    /// how many times this piece has been found bad.
    @discardableResult
    func pieceChecked(_ index: Int, good: Bool) -> Int {
        lock.withLock {
            guard let pieces else { return 0 }
            let piece = pieces.range(of: index, fileSize: size)
            checking.remove(index)
            if good {
                verified.insert(piece)
                return pieceFailures[index, default: 0]
            }
            written.remove(piece)
            pending.insert(piece, at: pending.firstIndex { $0.lowerBound > piece.lowerBound } ?? pending.endIndex)
            pieceFailures[index, default: 0] += 1
            return pieceFailures[index]!
        }
    }

    /// The workers that wrote piece `index` since it was last checked; forgets them.
    func takeWriters(of index: Int) -> Set<Int> { lock.withLock { writers.removeValue(forKey: index) ?? [] } }

    /// Whether every byte is written (and checked, with a manifest).
    var isComplete: Bool { lock.withLock { (pieces == nil ? written : verified).count == size } }

    func checkpointTaken() { lock.withLock { writtenSinceCheckpoint = 0 } }

    /// Gives back the unfetched rest of a failed worker's range, for it or another to retry.
    func release(worker: Int) {
        lock.withLock {
            if let work = assignments.removeValue(forKey: worker), work.next < work.end {
                pending.insert(work.next..<work.end, at: 0)
            }
        }
    }
}
