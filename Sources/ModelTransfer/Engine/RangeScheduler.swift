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
    /// Bytes each worker has claimed and not yet reported written.
    private var inFlight: [Int: Range<UInt64>] = [:]
    /// When each worker's range was handed out.
    private var assignedAt: [Int: ContinuousClock.Instant] = [:]
    /// Pieces a second source is fetching in the endgame.
    private var duplicated: Set<Int> = []
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
                assign(worker, range)
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
            assign(worker, middle..<work.end)
            return middle..<work.end
        }
    }

    /// Whether `worker` has had its range for at least `age` (lock held).
    private func hasHeld(_ worker: Int, for age: Duration, at now: ContinuousClock.Instant) -> Bool {
        assignedAt[worker].map { now - $0 >= age } ?? false
    }

    private func assign(_ worker: Int, _ range: Range<UInt64>) {
        assignments[worker] = (range.lowerBound, range.upperBound)
        assignedAt[worker] = .now
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
            assign(worker, start..<end)
            return start..<end
        }
    }

    // MARK: The end of a swarm download

    /// Once nothing is pending (with a manifest): the pieces another worker has been given
    /// at least `age` ago but not started, the upper half of the largest such run (a single
    /// piece whole), when `offered` says this worker's source has them all. The other worker
    /// stops at the split. (A fresh range is left alone, so two idle workers do not take the
    /// same pieces back and forth.)
    func stealPieces(worker: Int, age: Duration, offered: (Int) -> Bool) -> Range<UInt64>? {
        lock.withLock {
            guard let pieces, pending.isEmpty else { return nil }
            let pieceSize = pieces.pieceSize
            let now = ContinuousClock.now
            let unstarted = assignments.filter { $0.key != worker }.compactMap { victim, work -> (Int, Range<UInt64>)? in
                guard hasHeld(victim, for: age, at: now) else { return nil }
                let firstUnstarted = (work.next + pieceSize - 1) / pieceSize * pieceSize
                return firstUnstarted < work.end ? (victim, firstUnstarted..<work.end) : nil
            }
            guard let (victim, run) = unstarted.max(by: { $0.1.count < $1.1.count }) else { return nil }
            let runPieces = pieces.pieces(touching: run)
            let start = run.lowerBound + UInt64(runPieces.count / 2) * pieceSize
            let stolen = start..<run.upperBound
            guard pieces.pieces(touching: stolen).allSatisfy(offered) else { return nil }
            assignments[victim]?.end = start
            assign(worker, stolen)
            return stolen
        }
    }

    /// Once nothing is pending or left to steal: a piece another worker (one `slower` accepts:
    /// a copy from the same source would be no faster) has been writing for at least `age`,
    /// that no second source fetches yet and `offered` says this worker's source has; its
    /// index. The copy goes to memory, and only a verified copy takes the piece over
    /// (`takeOver`); `endgameEnded` when it does not.
    func endgamePiece(worker: Int, age: Duration, slower: (Int) -> Bool, offered: (Int) -> Bool) -> Int? {
        lock.withLock {
            guard let pieces, pending.isEmpty else { return nil }
            let now = ContinuousClock.now
            for (victim, work) in assignments where victim != worker && work.next < work.end && slower(victim) {
                guard hasHeld(victim, for: age, at: now) else { continue }
                let piece = Int(work.next / pieces.pieceSize)
                guard !duplicated.contains(piece), !checking.contains(piece), offered(piece) else { continue }
                duplicated.insert(piece)
                return piece
            }
            return nil
        }
    }

    /// Whether piece `index` is written whole or checked: an endgame copy of it is too late.
    func isSettled(_ index: Int) -> Bool {
        lock.withLock {
            guard let pieces else { return true }
            return checking.contains(index) || written.covers(pieces.range(of: index, fileSize: size))
        }
    }

    /// A verified endgame copy of piece `index` takes it over from the worker writing it:
    /// that worker stops at once (the pieces after it in its range are pending again) and
    /// its bytes in the piece no longer count. Returns how many bytes of the piece it had
    /// claimed (so progress counts the piece once), or nil when the piece is already settled
    /// or nobody is writing it; then the copy is dropped. The caller waits until
    /// `isWriting(into:)` clears, then writes the copy and reports it written.
    func takeOver(_ index: Int, by worker: Int) -> UInt64? {
        lock.withLock {
            guard let pieces else { return nil }
            defer { duplicated.remove(index) }
            let piece = pieces.range(of: index, fileSize: size)
            guard !checking.contains(index), !written.covers(piece),
                  let (victim, work) = assignments.first(where: { $0.key != worker && piece.contains($0.value.next) })
            else { return nil }
            assignments[victim]?.end = work.next
            if piece.upperBound < work.end { pending.insert(piece.upperBound..<work.end, at: 0) }
            return work.next - piece.lowerBound
        }
    }

    /// Forgets an endgame copy that lost the race or failed.
    func endgameEnded(_ index: Int) { lock.withLock { _ = duplicated.remove(index) } }

    /// Whether a worker has claimed bytes in `range` that it has not reported written yet.
    func isWriting(into range: Range<UInt64>) -> Bool { lock.withLock { inFlight.values.contains { $0.overlaps(range) } } }

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
            inFlight[worker] = offset..<offset + allowed
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

    /// Records bytes `worker` wrote. Returns the pieces this write completed, which the caller
    /// checks and reports to `pieceChecked`.
    func recordWritten(_ range: Range<UInt64>, by worker: Int? = nil) -> [Int] {
        lock.withLock {
            if let worker { inFlight[worker] = nil }
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
            return completed
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

    /// Bytes written since the last checkpoint.
    var bytesSinceCheckpoint: UInt64 { lock.withLock { writtenSinceCheckpoint } }
    /// Whether enough was written since the last checkpoint for another.
    var isCheckpointDue: Bool { lock.withLock { writtenSinceCheckpoint >= checkpointBytes } }

    /// Gives back the unfetched rest of a failed worker's range, for it or another to retry.
    func release(worker: Int) {
        lock.withLock {
            inFlight[worker] = nil
            if let work = assignments.removeValue(forKey: worker), work.next < work.end {
                pending.insert(work.next..<work.end, at: 0)
            }
        }
    }
}
