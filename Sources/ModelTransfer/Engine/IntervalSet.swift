/// Disjoint, sorted, merged byte ranges: what of a file is written (or durable).
struct IntervalSet: Sendable, Equatable {
    private(set) var ranges: [Range<UInt64>] = []

    init(_ ranges: [Range<UInt64>] = []) {
        for range in ranges { insert(range) }
    }

    /// Bytes covered.
    var count: UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }

    /// Adds `range`, merging it with neighbours it touches.
    mutating func insert(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return }
        var merged = range
        var result: [Range<UInt64>] = []
        result.reserveCapacity(ranges.count + 1)
        var placed = false
        for existing in ranges {
            if existing.upperBound < merged.lowerBound {
                result.append(existing)
            } else if merged.upperBound < existing.lowerBound {
                if !placed { result.append(merged); placed = true }
                result.append(existing)
            } else {
                merged = min(existing.lowerBound, merged.lowerBound)..<max(existing.upperBound, merged.upperBound)
            }
        }
        if !placed { result.append(merged) }
        ranges = result
    }

    /// Takes `range` out, splitting a range that straddles it.
    mutating func remove(_ range: Range<UInt64>) {
        ranges = ranges.flatMap { existing -> [Range<UInt64>] in
            guard existing.overlaps(range) else { return [existing] }
            return [existing.lowerBound..<range.lowerBound, range.upperBound..<existing.upperBound].filter { !$0.isEmpty }
        }
    }

    /// Whether every byte of `range` is covered.
    func covers(_ range: Range<UInt64>) -> Bool {
        ranges.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }
    }

    /// End of the run of bytes starting at 0.
    var contiguousPrefix: UInt64 { ranges.first.map { $0.lowerBound == 0 ? $0.upperBound : 0 } ?? 0 }

    /// The gaps within `0..<size`.
    func gaps(upTo size: UInt64) -> [Range<UInt64>] {
        var gaps: [Range<UInt64>] = []
        var position: UInt64 = 0
        for range in ranges where range.lowerBound < size {
            if range.lowerBound > position { gaps.append(position..<range.lowerBound) }
            position = max(position, range.upperBound)
        }
        if position < size { gaps.append(position..<size) }
        return gaps
    }
}
