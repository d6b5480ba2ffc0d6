import Foundation

/// Split GGUF models as llama.cpp writes them: `NAME-00001-of-00003.gguf` and so on, each
/// shard carrying `split.no` and `split.count` in its header.
enum SplitModel {
    /// The shard file name pattern's parts, or nil when `path` does not follow it.
    static func parts(of path: String) -> (prefix: String, index: Int, count: Int)? {
        guard path.hasSuffix(".gguf") else { return nil }
        let stem = path.dropLast(5)
        let pieces = stem.split(separator: "-", omittingEmptySubsequences: false)
        guard pieces.count >= 4, pieces[pieces.count - 2] == "of",
              let index = Int(pieces[pieces.count - 3]), let count = Int(pieces[pieces.count - 1]),
              pieces[pieces.count - 3].count == 5, pieces[pieces.count - 1].count == 5 else { return nil }
        return (pieces.dropLast(3).joined(separator: "-"), index, count)
    }

    /// Path of shard `index` (1-based) of `count`.
    static func path(prefix: String, index: Int, count: Int) -> String {
        prefix + "-" + zeroPadded(index) + "-of-" + zeroPadded(count) + ".gguf"
    }

    /// Every shard of the split model `first` belongs to, checked against their headers.
    static func shards(of first: InspectedFile) throws(StoreError) -> [InspectedFile] {
        guard let count = first.facts.splitCount, count > 1 else { return [first] }
        guard let parts = parts(of: first.path), parts.count == count else {
            throw StoreError(.invalidInput, "\(first.path) is shard \((first.facts.splitIndex ?? 0) &+ 1) of \(count), but its name does not follow NAME-0000i-of-\(zeroPadded(count)).gguf, so the other shards cannot be found; rename the shards as llama.cpp wrote them")
        }
        var shards: [InspectedFile] = []
        for index in 1...count {
            let path = path(prefix: parts.prefix, index: index, count: count)
            let shard = try InspectedFile(path: path, role: .shard, shardIndex: index - 1)
            guard shard.facts.splitIndex == index - 1, shard.facts.splitCount == count else {
                throw StoreError(.invalidInput, "\(path) does not say it is shard \(index) of \(count) (split.no/split.count); the shards do not belong together")
            }
            shards.append(shard)
        }
        return shards
    }

    private static func zeroPadded(_ value: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }
}
