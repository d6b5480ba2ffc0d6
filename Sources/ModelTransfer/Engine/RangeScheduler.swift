import Foundation

/// Hands out the byte ranges of one file to parallel connections and keeps track of what
/// has been written. A connection that runs out of work takes the upper half of the largest
/// range still in progress (work stealing), so one slow connection never holds up the end.
///
/// Called for every received chunk, so it is a lock, not an actor: no suspension per chunk.
final class RangeScheduler: @unchecked Sendable {
    // All state below is guarded by `lock`.
    private var pending: [Range<UInt64>]
    private var assignments: [Int: (next: UInt64, end: UInt64)] = [:]
    private var written: IntervalSet
    private var writtenSinceCheckpoint: UInt64 = 0
    private let lock = NSLock()

    let size: UInt64
    let minimumSplit: UInt64
    let checkpointBytes: UInt64

    /// `completed` is what the journal says is already on disk.
    init(size: UInt64, completed: IntervalSet, connections: Int, minimumSplit: UInt64, checkpointBytes: UInt64) {
        self.size = size
        self.minimumSplit = max(minimumSplit, 1)
        self.checkpointBytes = checkpointBytes
        written = completed
        var pieces = completed.gaps(upTo: size)
        // Start with at least one range per connection, splitting the largest gap in half.
        while pieces.count < connections, let largest = pieces.indices.max(by: { pieces[$0].count < pieces[$1].count }),
              UInt64(pieces[largest].count) >= 2 * self.minimumSplit {
            let range = pieces[largest]
            let middle = range.lowerBound + UInt64(range.count) / 2
            pieces.replaceSubrange(largest...largest, with: [range.lowerBound..<middle, middle..<range.upperBound])
        }
        pending = pieces
    }

    /// Bytes written so far, including what the journal had.
    var writtenBytes: UInt64 { lock.withLock { written.count } }
    /// End of the contiguous written prefix, which the whole-file hash may read up to.
    var contiguousPrefix: UInt64 { lock.withLock { written.contiguousPrefix } }
    /// What is written, for a checkpoint.
    var writtenRanges: IntervalSet { lock.withLock { written } }

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
                  work.end - work.next >= 2 * minimumSplit else {
                assignments[worker] = nil
                return nil
            }
            let middle = work.next + (work.end - work.next) / 2
            assignments[victim] = (work.next, middle)
            assignments[worker] = (middle, work.end)
            return middle..<work.end
        }
    }

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

    /// Whether the worker's range is fully claimed.
    func isFinished(worker: Int) -> Bool {
        lock.withLock { assignments[worker].map { $0.next >= $0.end } ?? true }
    }

    /// Records written bytes; true when enough accumulated for a checkpoint.
    func recordWritten(_ range: Range<UInt64>) -> Bool {
        lock.withLock {
            written.insert(range)
            writtenSinceCheckpoint += UInt64(range.count)
            return writtenSinceCheckpoint >= checkpointBytes
        }
    }

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
